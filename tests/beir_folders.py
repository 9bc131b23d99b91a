"""Writing small BEIR-layout folders for tests."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from tests.conftest import SCIFACT_DIR


def write_jsonl(path: Path, records: Iterable[Mapping[str, object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    return path


def write_qrels(path: Path, rows: Iterable[tuple[str, str, object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["query-id\tcorpus-id\tscore", *(f"{q}\t{d}\t{s}" for q, d, s in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_beir_folder(folder: Path, *, gz: bool = False) -> Path:
    """A 6-document, 4-query BEIR folder with a train and a test split."""
    docs = [
        {"_id": f"d{i}", "title": f"title {i}", "text": text}
        for i, text in enumerate([
            "cancer risk increase in patients", "protein expression in mice cells", "blood levels of the virus",
            "brain and heart disease study", "gene treatment effect on the liver", "clinical trial dose response",
        ])
    ]
    queries = [
        {"_id": "q1", "text": "cancer risk"}, {"_id": "q2", "text": "protein in mice"},
        {"_id": "q3", "text": "virus in blood"}, {"_id": "q4", "text": "dose response trial"},
    ]
    write_jsonl(folder / ("corpus.jsonl.gz" if gz else "corpus.jsonl"), docs)
    write_jsonl(folder / "queries.jsonl", queries)
    write_qrels(folder / "qrels" / "train.tsv", [("q1", "d0", 1), ("q2", "d1", 1)])
    write_qrels(folder / "qrels" / "test.tsv", [("q3", "d2", 1), ("q4", "d5", 2), ("q4", "d4", 1)])
    return folder


def write_scifact_subset(folder: Path, *, num_docs: int = 300) -> Path:
    """A real slice of SciFact: test queries whose positives fall in the first ``num_docs`` documents."""
    with gzip.open(SCIFACT_DIR / "corpus.jsonl.gz", "rt", encoding="utf-8") as handle:
        docs = [json.loads(line) for _, line in zip(range(num_docs), handle, strict=False)]
    doc_ids = {doc["_id"] for doc in docs}
    rows = [line.split("\t") for line in (SCIFACT_DIR / "qrels" / "test.tsv").read_text().splitlines()[1:]]
    kept = [(q, d, s) for q, d, s in rows if d in doc_ids]
    query_ids = {q for q, _, _ in kept}
    with open(SCIFACT_DIR / "queries.jsonl", encoding="utf-8") as handle:
        queries = [q for q in map(json.loads, handle) if q["_id"] in query_ids]
    write_jsonl(folder / "corpus.jsonl", docs)
    write_jsonl(folder / "queries.jsonl", queries)
    write_qrels(folder / "qrels" / "test.tsv", kept)
    return folder
