"""Hard-negative mining by corpus id: never a known positive (nor a copy of one), ranked like an exact search."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import pytest

from syntriever_hf.data import BeirDataset, load_beir
from syntriever_hf.data.stage1 import build_stage1_examples
from syntriever_hf.retrieval import mine_hard_negatives, search
from tests.beir_folders import write_jsonl, write_qrels
from tests.conftest import SCIFACT_DIR


def _qrels(split: str) -> dict[str, list[str]]:
    qrels: dict[str, list[str]] = {}
    for line in (SCIFACT_DIR / "qrels" / f"{split}.tsv").read_text().splitlines()[1:]:
        query_id, doc_id, _ = line.split("\t")
        qrels.setdefault(query_id, []).append(doc_id)
    return qrels


def _write_small_scifact(folder: Path) -> str:
    """A BEIR folder cut from SciFact: 11 training and 2 test queries, their positives, 30 other documents, and
    ``dup-<id>``: a copy of a positive of the training query with five positives, whose id is returned."""
    train, test = _qrels("train"), _qrels("test")
    many = next(query_id for query_id, docs in train.items() if len(docs) == 5)
    chosen = {"train": {many: train[many], **dict(list(train.items())[:10])}, "test": dict(list(test.items())[:2])}
    with gzip.open(SCIFACT_DIR / "corpus.jsonl.gz", "rt") as handle:
        corpus = [json.loads(line) for line in handle]
    wanted = {doc for qrels in chosen.values() for docs in qrels.values() for doc in docs}
    others = [doc for doc in corpus if doc["_id"] not in wanted][:30]
    documents = [doc for doc in corpus if doc["_id"] in wanted] + others
    copied = next(doc for doc in documents if doc["_id"] == train[many][0])
    documents.append({**copied, "_id": f"dup-{copied['_id']}"})
    write_jsonl(folder / "corpus.jsonl", documents)
    kept = {query_id for qrels in chosen.values() for query_id in qrels}
    queries = [json.loads(line) for line in (SCIFACT_DIR / "queries.jsonl").read_text().splitlines()]
    write_jsonl(folder / "queries.jsonl", [query for query in queries if query["_id"] in kept])
    for split, qrels in chosen.items():
        write_qrels(folder / "qrels" / f"{split}.tsv", [(q, doc, 1) for q, docs in qrels.items() for doc in docs])
    return many


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[BeirDataset, str]:
    folder = tmp_path_factory.mktemp("small-scifact") / "small-scifact"
    many = _write_small_scifact(folder)
    return load_beir(folder), many


def _positives(beir: BeirDataset) -> dict[str, set[str]]:
    return {query_id: {doc for doc, score in docs.items() if score > 0}
            for query_id, docs in beir.relevant_docs("train").items()}


def test_every_candidate_but_the_positives_and_their_copies(tiny_model, small):
    beir, many = small
    positives = _positives(beir)
    corpus_ids = set(beir.corpus["id"])
    copy = next(doc for doc in corpus_ids if doc.startswith("dup-"))
    # Ask for as many negatives as the query with five positives has candidates: all of them must come back.
    mined = mine_hard_negatives(tiny_model, beir, num_negatives=len(corpus_ids) - 6)
    assert set(mined) == set(beir.training_queries("train")["id"])
    assert set(mined[many]) == corpus_ids - positives[many] - {copy}
    for query_id, negatives in mined.items():
        assert not set(negatives) & positives[query_id], query_id
        assert len(negatives) == len(set(negatives)) == len(corpus_ids) - 6


def test_top_negatives_follow_the_exact_ranking(tiny_model, small):
    beir, _ = small
    positives = _positives(beir)
    mined = mine_hard_negatives(tiny_model, beir, num_negatives=3, range_min=2)
    # Mining sees each distinct text once, under its first id: the copy never appears.
    copy = next(doc for doc in beir.corpus["id"] if doc.startswith("dup-"))
    exclude = {query_id: {*docs, copy} for query_id, docs in positives.items()}
    ranked = search(tiny_model, beir.query_texts("train"), beir.corpus_texts(), 5, exclude=exclude,
                    show_progress_bar=False)
    for query_id, negatives in mined.items():
        assert negatives == [doc for doc, _ in ranked[query_id][2:5]], query_id


def test_a_margin_keeps_negatives_below_the_positives(tiny_model, small, caplog):
    beir, _ = small
    positives = _positives(beir)
    with caplog.at_level(logging.INFO, logger="syntriever_hf.retrieval.negatives"):
        mined = mine_hard_negatives(tiny_model, beir, num_negatives=4, absolute_margin=0.0)
    scores = search(tiny_model, beir.query_texts("train"), beir.corpus_texts(), len(beir.corpus),
                    show_progress_bar=False)
    for query_id, negatives in mined.items():
        score = dict(scores[query_id])
        lowest_positive = min(score[doc] for doc in positives[query_id])
        assert all(score[doc] <= lowest_positive + 1e-5 for doc in negatives), query_id
    assert f"for {len(mined)} queries" in caplog.text


def test_evaluation_queries_are_never_mined(tiny_model, small):
    beir, _ = small
    with pytest.raises(ValueError, match=r"split='test' of small-scifact is an evaluation split"):
        mine_hard_negatives(tiny_model, beir, split="test")
    with pytest.raises(ValueError, match=r"num_negatives must be at least 1, got num_negatives=0"):
        mine_hard_negatives(tiny_model, beir, num_negatives=0)


def test_mined_negatives_feed_the_stage1_builder(tiny_model, small):
    beir, _ = small
    mined = mine_hard_negatives(tiny_model, beir, num_negatives=2)
    examples = build_stage1_examples(beir, mined_negatives=mined)
    corpus = beir.corpus_texts()
    for example in examples:
        assert example["mined_negative"] == [corpus[doc] for doc in mined[example["query_id"]]]
        assert not set(example["mined_negative"]) & set(example["gold"])
