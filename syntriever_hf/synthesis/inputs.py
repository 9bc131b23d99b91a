"""The queries a synthesis run works on: the training queries of a BEIR dataset, or a plain list of queries.

Evaluation splits (``EVALUATION_SPLITS``: test, dev, ...) are refused unless explicitly allowed: their queries
must never be used for synthesis, retrieval or training.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from syntriever_hf.data.schema import EVALUATION_SPLITS

__all__ = ["KNOWN_LICENSES", "QuerySet", "read_query_file"]

logger = logging.getLogger(__name__)

#: Licences of source datasets this project ships or has checked (Hugging Face licence identifiers).
KNOWN_LICENSES = {"scifact": "cc-by-nc-2.0"}


@dataclass(frozen=True)
class QuerySet:
    """Queries with stable ids, their gold document ids (may be empty) and where they came from.

    Build it with :meth:`from_beir` or :meth:`from_texts`.
    """

    ids: tuple[str, ...]
    texts: tuple[str, ...]
    gold_ids: tuple[tuple[str, ...], ...]
    source: str
    split: str | None = None
    license: str | None = None

    def __post_init__(self) -> None:
        if not (len(self.ids) == len(self.texts) == len(self.gold_ids)):
            raise ValueError(
                f"QuerySet: ids, texts and gold_ids differ in length ({len(self.ids)}, {len(self.texts)}, "
                f"{len(self.gold_ids)})"
            )
        if len(set(self.ids)) != len(self.ids):
            raise ValueError(f"QuerySet from {self.source}: query ids are not unique")

    def __len__(self) -> int:
        return len(self.ids)

    def head(self, limit: int | None) -> QuerySet:
        """The first ``limit`` queries (all when ``None``)."""
        if limit is None or limit >= len(self):
            return self
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        return QuerySet(self.ids[:limit], self.texts[:limit], self.gold_ids[:limit], self.source, self.split,
                        self.license)

    @classmethod
    def from_texts(cls, texts: Iterable[str], *, source: str = "query list", license: str | None = None) -> QuerySet:
        """Queries from plain texts; ids are ``q-`` + 12 hex digits of the text's sha1 (stable across runs).

        Empty texts are refused; repeated texts are kept once (with a warning), since they would share every
        request anyway.
        """
        ids: dict[str, str] = {}
        for index, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"{source}: query #{index} is empty; remove empty queries")
            query_id = "q-" + hashlib.sha1(text.strip().encode("utf-8")).hexdigest()[:12]
            ids.setdefault(query_id, text.strip())
        if not ids:
            raise ValueError(f"{source}: no queries")
        duplicates = index + 1 - len(ids)
        if duplicates:
            logger.warning("%s: %d repeated query text(s) kept once", source, duplicates)
        return cls(tuple(ids), tuple(ids.values()), tuple(() for _ in ids), source, None, license)

    @classmethod
    def from_beir(
        cls,
        path_or_hub_id: str | Path,
        *,
        split: str = "train",
        allow_evaluation_split: bool = False,
        license: str | None = None,
    ) -> QuerySet:
        """The queries of ``split`` that have qrels, with their gold document ids (score > 0).

        Raises:
            ValueError: ``split`` is an evaluation split and ``allow_evaluation_split`` is false.
        """
        if split in EVALUATION_SPLITS and not allow_evaluation_split:
            raise ValueError(
                f"split {split!r} is an evaluation split: its queries must not be used for synthesis (they would "
                f"leak into training). Use the training split (--split train), or pass allow_evaluation_split=True "
                f"(--allow-evaluation-split) if you really mean it."
            )
        from syntriever_hf.data import load_beir

        beir = load_beir(str(path_or_hub_id), splits=[split])
        if split in EVALUATION_SPLITS:
            logger.warning("Using the queries of the evaluation split %r, as explicitly allowed", split)
        queries = beir.training_queries(split, allow_evaluation_split=allow_evaluation_split)
        relevant = beir.relevant_docs(split)
        ids = list(queries["id"])
        gold = tuple(tuple(sorted(d for d, score in relevant.get(q, {}).items() if score > 0)) for q in ids)
        license = license or KNOWN_LICENSES.get(beir.name.lower().rsplit("/", 1)[-1])
        return cls(tuple(ids), tuple(queries["text"]), gold, beir.name, split, license)


def read_query_file(path: str | Path) -> list[str]:
    """One query per line of a UTF-8 text file; blank lines are skipped."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    queries = [line.strip() for line in lines if line.strip()]
    if not queries:
        raise ValueError(f"{path}: no queries (expected one query per line)")
    return queries
