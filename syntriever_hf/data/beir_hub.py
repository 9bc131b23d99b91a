"""BEIR datasets from the Hugging Face Hub, in the two layouts in common use (needs network access).

* BeIR layout: ``BeIR/<name>`` with configs ``corpus`` and ``queries``; qrels in the separate repo
  ``BeIR/<name>-qrels`` (one split per qrels file).
* mteb layout: ``mteb/<name>`` with configs ``corpus``, ``queries`` and ``default`` (the qrels, one split each).

Both are normalised, with the same validation as local folders, into a :class:`~syntriever_hf.data.beir.BeirDataset`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetDict, load_dataset

from syntriever_hf.data.beir import (
    BeirDataset,
    BeirFormatError,
    build_qrels,
    validated_row,
)
from syntriever_hf.data.schema import CORPUS_FEATURES, QUERIES_FEATURES

__all__ = ["beir_from_records", "load_beir_from_hub"]

logger = logging.getLogger(__name__)


def load_beir_from_hub(
    repo_id: str, *, splits: list[str] | None = None, revision: str | None = None,
    cache_dir: str | Path | None = None,
) -> BeirDataset:
    """Load ``repo_id`` (BeIR or mteb layout) from the Hub; see :func:`syntriever_hf.data.load_beir`."""
    cache = str(cache_dir) if cache_dir else None
    corpus = _single_split(load_dataset(repo_id, "corpus", revision=revision, cache_dir=cache), repo_id, "corpus")
    queries = _single_split(load_dataset(repo_id, "queries", revision=revision, cache_dir=cache), repo_id, "queries")
    qrels = _load_hub_qrels(repo_id, revision, cache)
    if splits is not None:
        missing = sorted(set(splits) - set(qrels))
        if missing:
            raise BeirFormatError(f"{repo_id} has no qrels split {missing}; its splits are {sorted(qrels)}.")
        qrels = {split: qrels[split] for split in splits}
    return beir_from_records(repo_id, corpus, queries, qrels, source=repo_id)


def _single_split(dataset: Dataset | DatasetDict, repo_id: str, config: str) -> Dataset:
    if isinstance(dataset, Dataset):
        return dataset
    if len(dataset) != 1:
        raise BeirFormatError(f"{repo_id} config {config!r} has splits {list(dataset)}; expected exactly one.")
    return next(iter(dataset.values()))


def _load_hub_qrels(repo_id: str, revision: str | None, cache_dir: str | None) -> DatasetDict:
    try:  # mteb layout: the qrels are the repo's default config
        qrels = load_dataset(repo_id, "default", revision=revision, cache_dir=cache_dir)
        if "query-id" in next(iter(qrels.values())).column_names:
            return qrels
    except ValueError:  # no "default" config: BeIR layout
        pass
    logger.info("%s has no qrels config; reading the BeIR qrels repo %s-qrels", repo_id, repo_id)
    return load_dataset(f"{repo_id}-qrels", revision=revision, cache_dir=cache_dir)


def beir_from_records(
    name: str,
    corpus: Iterable[Mapping[str, Any]],
    queries: Iterable[Mapping[str, Any]],
    qrels: Mapping[str, Iterable[Mapping[str, Any]]],
    *,
    source: str,
) -> BeirDataset:
    """Validate BEIR records (``_id``/``title``/``text``; ``query-id``/``corpus-id``/``score``) into a dataset."""
    corpus_rows = Dataset.from_list(list(_rows(corpus, f"{name} corpus row", True)), features=CORPUS_FEATURES)
    query_rows = Dataset.from_list(list(_rows(queries, f"{name} queries row", False)), features=QUERIES_FEATURES)
    known_queries, known_docs = set(query_rows["id"]), set(corpus_rows["id"])
    qrels_rows = {
        split: _qrels_dataset(rows, f"{name} qrels[{split}] row", known_queries, known_docs)
        for split, rows in qrels.items()
    }
    return BeirDataset(name=name, corpus=corpus_rows, queries=query_rows, qrels=qrels_rows, source=source)


def _rows(records: Iterable[Mapping[str, Any]], source: str, with_title: bool) -> Iterator[dict[str, str]]:
    first_seen: dict[str, int] = {}
    for index, record in enumerate(records):
        yield validated_row(dict(record), source, index, first_seen, with_title)


def _qrels_dataset(
    records: Iterable[Mapping[str, Any]], source: str, known_queries: set[str], known_docs: set[str]
) -> Dataset:
    cells = (
        (f"{source}:{index}", [str(record.get(key, "")).strip() for key in ("query-id", "corpus-id", "score")])
        for index, record in enumerate(records)
    )
    return build_qrels(cells, source, known_queries, known_docs)
