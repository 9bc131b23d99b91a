"""Loading BEIR-layout retrieval datasets (a local folder or a Hub id) into ``datasets.Dataset`` objects.

A local folder holds ``corpus.jsonl`` (or ``corpus.jsonl.gz``), ``queries.jsonl`` and ``qrels/<split>.tsv``. Every
record is validated while it streams into an Arrow file on disk, so a corpus of millions of documents loads in
memory proportional to its ids, not its texts. Errors name the file, the line, the bad value and the fix.

The schemas are in :mod:`syntriever_hf.data.schema`. The split is explicit everywhere: ``training_queries`` refuses
evaluation splits.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets import Dataset

from syntriever_hf.data.schema import CORPUS_FEATURES, EVALUATION_SPLITS, QRELS_FEATURES, QUERIES_FEATURES

__all__ = ["BeirDataset", "BeirFormatError", "load_beir"]

logger = logging.getLogger(__name__)

_QRELS_HEADER = ("query-id", "corpus-id", "score")


class BeirFormatError(ValueError):
    """A BEIR file or Hub dataset that does not follow the layout; the message names where and how to fix it."""


@dataclass
class BeirDataset:
    """A retrieval dataset in BEIR layout: one corpus, one set of queries, and relevance judgements per split.

    Attributes:
        name: Short name (the folder name or the Hub id).
        corpus: ``id``, ``title``, ``text``.
        queries: ``id``, ``text`` (queries of every split).
        qrels: split name -> ``query_id``, ``corpus_id``, ``score``; rows naming unknown ids are already dropped.
        source: The folder path or Hub id it was loaded from.
    """

    name: str
    corpus: Dataset
    queries: Dataset
    qrels: dict[str, Dataset]
    source: str
    _query_ids_by_split: dict[str, set[str]] = field(default_factory=dict, repr=False)

    @property
    def splits(self) -> list[str]:
        return sorted(self.qrels)

    def _check_split(self, split: str) -> None:
        if split not in self.qrels:
            raise KeyError(f"{self.name} has no split {split!r}; its splits are {self.splits}.")

    def relevant_docs(self, split: str) -> dict[str, dict[str, int]]:
        """``{query_id: {corpus_id: score}}`` for one split (all scores, including 0)."""
        self._check_split(split)
        relevant: dict[str, dict[str, int]] = defaultdict(dict)
        qrels = self.qrels[split]
        for query_id, corpus_id, score in zip(qrels["query_id"], qrels["corpus_id"], qrels["score"], strict=True):
            relevant[query_id][corpus_id] = int(score)
        return dict(relevant)

    def split_query_ids(self, split: str) -> set[str]:
        """Ids of the queries judged in ``split``."""
        self._check_split(split)
        if split not in self._query_ids_by_split:
            self._query_ids_by_split[split] = set(self.qrels[split]["query_id"])
        return self._query_ids_by_split[split]

    def evaluation_query_ids(self) -> set[str]:
        """Ids of every query judged in an evaluation split (``EVALUATION_SPLITS``)."""
        held_out: set[str] = set()
        for split in self.qrels:
            if split in EVALUATION_SPLITS:
                held_out |= self.split_query_ids(split)
        return held_out

    def queries_of_split(self, split: str) -> Dataset:
        """The queries judged in ``split`` (``id``, ``text``), in the order of ``queries.jsonl``."""
        return _select_ids(self.queries, self.split_query_ids(split))

    def training_queries(self, split: str = "train", *, allow_evaluation_split: bool = False) -> Dataset:
        """The queries of a training split; evaluation splits are refused.

        Queries that are also judged in an evaluation split are left out (and counted in the log), so that a
        dataset whose splits overlap cannot leak test queries into training.
        """
        self._check_split(split)
        if split in EVALUATION_SPLITS and not allow_evaluation_split:
            training = [s for s in self.splits if s not in EVALUATION_SPLITS]
            raise ValueError(
                f"split={split!r} of {self.name} is an evaluation split: its queries are never used for synthesis, "
                f"retrieval or training. Use a training split ({training or 'none available'}), or pass "
                "allow_evaluation_split=True if you really mean to train on evaluation queries."
            )
        queries = self.queries_of_split(split)
        if allow_evaluation_split:
            return queries
        overlap = self.split_query_ids(split) & self.evaluation_query_ids()
        if overlap:
            logger.warning("%s: %d %s queries are also evaluation queries; they are left out of training.",
                           self.name, len(overlap), split)
            queries = _select_ids(queries, self.split_query_ids(split) - overlap)
        return queries

    def corpus_texts(self) -> dict[str, str]:
        """``{corpus_id: text}`` with the title joined in front, as BEIR and MTEB encode documents."""
        return {
            doc_id: f"{title} {text}".strip() if title else text.strip()
            for doc_id, title, text in zip(self.corpus["id"], self.corpus["title"], self.corpus["text"], strict=True)
        }

    def query_texts(self, split: str | None = None) -> dict[str, str]:
        """``{query_id: text}`` of all queries, or of the queries judged in ``split``."""
        queries = self.queries if split is None else self.queries_of_split(split)
        return dict(zip(queries["id"], queries["text"], strict=True))


def _select_ids(rows: Dataset, wanted: set[str]) -> Dataset:
    """The rows of ``rows`` whose ``id`` is in ``wanted``, in their original order."""
    return rows.select([index for index, row_id in enumerate(rows["id"]) if row_id in wanted])


def load_beir(
    path_or_hub_id: str | Path,
    *,
    splits: list[str] | None = None,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
) -> BeirDataset:
    """Load a BEIR-layout dataset from a local folder or the Hugging Face Hub.

    Args:
        path_or_hub_id: A folder with ``corpus.jsonl[.gz]``, ``queries.jsonl`` and ``qrels/<split>.tsv``, or a Hub
            dataset id in the BeIR layout (``BeIR/scifact`` with qrels in ``BeIR/scifact-qrels``) or the mteb
            layout (``mteb/scifact``: configs ``corpus``, ``queries`` and ``default`` for the qrels).
        splits: The qrels splits to load (default: every split found).
        revision: Hub revision (ignored for folders).
        cache_dir: Where the Arrow files are written (default: the ``datasets`` cache).

    Raises:
        FileNotFoundError: the folder lacks a required file, or neither a folder nor a Hub id was given.
        BeirFormatError: a malformed line, a record without ``_id`` or ``text``, a duplicate id, a non-integer
            score or an empty split; the message names the file and line.
    """
    folder = Path(path_or_hub_id).expanduser()
    if folder.is_dir():
        return _load_folder(folder, splits=splits, cache_dir=cache_dir)
    text = str(path_or_hub_id)
    if folder.exists() or text.startswith((".", "/", "~")) or text.count("/") != 1:
        raise FileNotFoundError(
            f"{text!r} is not a BEIR folder (no such directory) and not a Hub dataset id of the form 'org/name'. "
            "Pass a folder holding corpus.jsonl[.gz], queries.jsonl and qrels/<split>.tsv, or a Hub id."
        )
    from syntriever_hf.data.beir_hub import load_beir_from_hub

    return load_beir_from_hub(text, splits=splits, revision=revision, cache_dir=cache_dir)


# --- local folders ----------------------------------------------------------------------------------------------


def _load_folder(folder: Path, *, splits: list[str] | None, cache_dir: str | Path | None) -> BeirDataset:
    corpus_path = _corpus_path(folder)
    queries_path = _required_file(folder / "queries.jsonl", folder)
    qrels_paths = _qrels_paths(folder, splits)
    corpus = _records_to_dataset(corpus_path, CORPUS_FEATURES, cache_dir)
    queries = _records_to_dataset(queries_path, QUERIES_FEATURES, cache_dir)
    known_queries, known_docs = set(queries["id"]), set(corpus["id"])
    qrels = {split: _load_qrels(path, known_queries, known_docs) for split, path in qrels_paths.items()}
    logger.info("Loaded %s: %d documents, %d queries, qrels %s", folder.name, len(corpus), len(queries),
                {split: len(rows) for split, rows in qrels.items()})
    return BeirDataset(name=folder.name, corpus=corpus, queries=queries, qrels=qrels, source=str(folder))


def _required_file(path: Path, folder: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: a BEIR folder holds corpus.jsonl (or corpus.jsonl.gz), queries.jsonl and "
            f"qrels/<split>.tsv. Found in {folder}: {sorted(p.name for p in folder.iterdir())}."
        )
    return path


def _corpus_path(folder: Path) -> Path:
    for name in ("corpus.jsonl", "corpus.jsonl.gz"):
        if (folder / name).is_file():
            return folder / name
    return _required_file(folder / "corpus.jsonl", folder)


def _qrels_paths(folder: Path, splits: list[str] | None) -> dict[str, Path]:
    qrels_dir = folder / "qrels"
    if not qrels_dir.is_dir():
        _required_file(qrels_dir / "test.tsv", folder)
    available = {path.stem: path for path in sorted(qrels_dir.glob("*.tsv"))}
    if splits is None:
        if not available:
            _required_file(qrels_dir / "test.tsv", folder)
        return available
    for split in splits:
        if split not in available:
            raise FileNotFoundError(
                f"{qrels_dir / (split + '.tsv')} is missing: split {split!r} was asked for, but {qrels_dir} holds "
                f"{sorted(available) or 'no .tsv files'}. Ask for one of those splits."
            )
    return {split: available[split] for split in splits}


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


def _iter_json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with _open_text(path) as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise BeirFormatError(
                    f"{path}:{line_number}: malformed JSON ({error.msg} at column {error.colno}). Each line must be "
                    'one JSON object, e.g. {"_id": "d1", "title": "", "text": "..."}.'
                ) from None
            if not isinstance(record, dict):
                raise BeirFormatError(f"{path}:{line_number}: expected a JSON object, got {type(record).__name__}.")
            yield line_number, record


def validated_row(
    record: dict[str, Any], source: str, position: int, first_seen: dict[str, int], with_title: bool
) -> dict[str, str]:
    """Check one BEIR record (``_id``, ``text``, optional ``title``) and return it as a row of our schema.

    Errors name ``source:position`` (a file and line, or a Hub split and row). ``first_seen`` maps ids to the
    position where they were first seen and is updated, so a duplicate is reported with both places.
    """
    for key in ("_id", "text"):
        if key not in record or record[key] is None:
            raise BeirFormatError(
                f"{source}:{position}: record has no {key!r} field (keys: {sorted(record)}). Every BEIR record "
                "needs '_id' (a unique id) and 'text'."
            )
    record_id = str(record["_id"])
    if record_id in first_seen:
        raise BeirFormatError(
            f"{source}:{position}: duplicate _id {record_id!r} (first at {source}:{first_seen[record_id]}). Ids "
            "must be unique: remove or rename one of the records."
        )
    first_seen[record_id] = position
    row = {"id": record_id, "text": str(record["text"])}
    if with_title:
        row["title"] = str(record.get("title") or "")
    return row


def _validated_records(path: Path, with_title: bool) -> Iterator[dict[str, str]]:
    """Yield the rows of a JSON-lines file, checking required fields and unique ids."""
    first_seen: dict[str, int] = {}
    for line_number, record in _iter_json_lines(path):
        yield validated_row(record, str(path), line_number, first_seen, with_title)


def _generate_rows(path: str, with_title: bool, size: int, mtime_ns: int) -> Iterator[dict[str, str]]:
    # size and mtime_ns are unused here: they are part of the cache fingerprint, so an edited file is reloaded.
    count = 0
    for count, row in enumerate(_validated_records(Path(path), with_title), start=1):  # noqa: B007
        yield row
    if count == 0:
        raise BeirFormatError(f"{path} holds no records: a BEIR file needs at least one JSON line.")


def _records_to_dataset(path: Path, features, cache_dir: str | Path | None) -> Dataset:
    from datasets.exceptions import DatasetGenerationError

    stat = path.stat()
    kwargs = {"path": str(path.resolve()), "with_title": "title" in features, "size": stat.st_size,
              "mtime_ns": stat.st_mtime_ns}
    try:
        dataset = Dataset.from_generator(_generate_rows, gen_kwargs=kwargs, features=features,
                                         cache_dir=str(cache_dir) if cache_dir else None)
    except DatasetGenerationError as error:
        cause = error.__cause__
        if isinstance(cause, BeirFormatError):
            raise cause from None
        raise
    return dataset


def parse_qrels_row(where: str, row: list[str]) -> tuple[str, str, int]:
    if len(row) != 3:
        raise BeirFormatError(
            f"{where}: expected 3 tab-separated columns (query-id, corpus-id, score), got {len(row)}: "
            f"{row!r}."
        )
    query_id, corpus_id, score = row
    try:
        return query_id, corpus_id, int(score)
    except ValueError:
        raise BeirFormatError(
            f"{where}: score {score!r} is not an integer. BEIR relevance scores are integers "
            "(e.g. 0, 1, 2): fix the value or drop the row."
        ) from None


def _load_qrels(path: Path, known_queries: set[str], known_docs: set[str]) -> Dataset:
    def cells() -> Iterator[tuple[str, list[str]]]:
        with open(path, encoding="utf-8", newline="") as handle:
            for line_number, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
                stripped = [cell.strip() for cell in row]
                if stripped and not (line_number == 1 and tuple(stripped) == _QRELS_HEADER):
                    yield f"{path}:{line_number}", stripped

    return build_qrels(cells(), str(path), known_queries, known_docs)


def build_qrels(
    cells: Iterable[tuple[str, list[str]]], source: str, known_queries: set[str], known_docs: set[str]
) -> Dataset:
    """Parse ``(where, [query-id, corpus-id, score])`` rows into qrels; unknown ids are counted, not fatal."""
    rows: dict[str, list[Any]] = {"query_id": [], "corpus_id": [], "score": []}
    unknown_queries = unknown_docs = 0
    for where, row in cells:
        query_id, corpus_id, score = parse_qrels_row(where, row)
        if query_id not in known_queries:
            unknown_queries += 1
        elif corpus_id not in known_docs:
            unknown_docs += 1
        else:
            rows["query_id"].append(query_id)
            rows["corpus_id"].append(corpus_id)
            rows["score"].append(score)
    report_unknown_ids(source, unknown_queries, unknown_docs)
    if not rows["query_id"]:
        raise BeirFormatError(
            f"{source}: empty split: no usable qrels rows. Add 'query-id<TAB>corpus-id<TAB>score' rows whose ids "
            "exist in the queries and the corpus, or delete the split."
        )
    return Dataset.from_dict(rows, features=QRELS_FEATURES)


def report_unknown_ids(source: Path | str, unknown_queries: int, unknown_docs: int) -> None:
    if unknown_queries or unknown_docs:
        logger.warning(
            "%s: %d rows name a query id missing from the queries and %d a document id missing from the corpus; "
            "those rows are ignored.", source, unknown_queries, unknown_docs,
        )
