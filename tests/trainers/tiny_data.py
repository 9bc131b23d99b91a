"""Tiny BEIR folders and recorded synthetic data for trainer tests, written from the tiny model's vocabulary."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from tests.conftest import _WORDS

TRAIN_QUERIES = 32
TEST_QUERIES = 6
DOCUMENTS = 60


def _sentence(rng: random.Random, length: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(length))


def write_tiny_beir(folder: Path, seed: int = 0) -> Path:
    """A BEIR folder: ``DOCUMENTS`` documents, ``TRAIN_QUERIES`` training and ``TEST_QUERIES`` test queries.

    Every query is five words of its gold document (so training has something to learn); every fourth training
    query has a second gold document. All texts are distinct and made of words of the tiny model's vocabulary.
    """
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    documents = {f"d{i}": _sentence(rng, 14) for i in range(DOCUMENTS)}
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as handle:
        for doc_id, text in documents.items():
            handle.write(json.dumps({"_id": doc_id, "title": "", "text": text}) + "\n")
    queries: dict[str, str] = {}
    qrels: dict[str, list[tuple[str, str]]] = {"train": [], "test": []}
    for index in range(TRAIN_QUERIES + TEST_QUERIES):
        split = "train" if index < TRAIN_QUERIES else "test"
        query_id, doc_id = f"q{index}", f"d{index}"
        queries[query_id] = " ".join(documents[doc_id].split()[2:7])
        qrels[split].append((query_id, doc_id))
        if split == "train" and index % 4 == 0:
            qrels[split].append((query_id, f"d{TRAIN_QUERIES + TEST_QUERIES + index // 4}"))
    assert len(set(queries.values())) == len(queries), "query texts must be distinct; change the seed"
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as handle:
        for query_id, text in queries.items():
            handle.write(json.dumps({"_id": query_id, "text": text}) + "\n")
    (folder / "qrels").mkdir(exist_ok=True)
    for split, pairs in qrels.items():
        lines = ["query-id\tcorpus-id\tscore", *(f"{query_id}\t{doc_id}\t1" for query_id, doc_id in pairs)]
        (folder / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def write_tiny_recording(folder: Path, beir_folder: Path, seed: int = 1) -> Path:
    """Recorded LLM answers (``stage1.jsonl`` + ``verify.jsonl``) for the training queries of a tiny BEIR folder;
    every fifth positive is rejected by the verifier."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    queries = [json.loads(line) for line in (beir_folder / "queries.jsonl").read_text().splitlines()]
    train_ids = {line.split("\t")[0] for line in (beir_folder / "qrels" / "train.tsv").read_text().splitlines()[1:]}
    stage1: list[dict[str, Any]] = []
    verify: list[dict[str, Any]] = []
    for index, query in enumerate(q for q in queries if q["_id"] in train_ids):
        stage1.append({"query_id": query["_id"], "query": query["text"],
                       "positive": f"{query['text']} {_sentence(rng, 8)}", "negative": _sentence(rng, 12),
                       "cot": f"{query['text']} {_sentence(rng, 5)}"})
        verify.append({"query_id": query["_id"], "positive_verdict": "no" if index % 5 == 0 else "yes",
                       "negative_verdict": "no"})
    for name, rows in (("stage1.jsonl", stage1), ("verify.jsonl", verify)):
        (folder / name).write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return folder
