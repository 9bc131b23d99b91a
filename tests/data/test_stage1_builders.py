"""Stage-1 training examples from BEIR qrels, synthetic data and mined negatives: roles, rules and counts."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from datasets import Dataset

from syntriever_hf.data import load_beir
from syntriever_hf.data.recorded import load_recorded_stage1
from syntriever_hf.data.schema import STAGE1_SYNTHETIC_FEATURES, STAGE1_TRAINING_FEATURES
from syntriever_hf.data.stage1 import Stage1DataError, build_stage1_examples, stage1_statistics
from tests.conftest import SCIFACT_DIR, SYNTHETIC_SCIFACT_DIR


@pytest.fixture(scope="module")
def scifact():
    return load_beir(SCIFACT_DIR)


@pytest.fixture(scope="module")
def train_ids(scifact) -> list[str]:
    return list(scifact.training_queries("train")["id"])


def _positives(scifact, query_id: str) -> list[str]:
    return [doc for doc, score in scifact.relevant_docs("train").get(query_id, {}).items() if score > 0]


def _synthetic(scifact, query_ids: list[str], **overrides: Any) -> Dataset:
    """Synthetic rows for real training queries: verified texts unless ``overrides`` says otherwise."""
    texts = scifact.query_texts()
    rows = []
    for query_id in query_ids:
        row = {"query_id": query_id, "query": texts[query_id], "gold_ids": _positives(scifact, query_id),
               "llm_positive": f"positive of {query_id}", "llm_positive_verdict": "yes",
               "llm_negative": f"negative of {query_id}", "llm_negative_verdict": "no",
               "cot": f"reasoning about {query_id}", "failures": []}
        rows.append({**row, **overrides})
    return Dataset.from_list(rows, features=STAGE1_SYNTHETIC_FEATURES)


def test_gold_only_examples_come_from_the_training_qrels(scifact, caplog):
    with caplog.at_level(logging.INFO, logger="syntriever_hf.data.stage1"):
        examples = build_stage1_examples(scifact)
    assert examples.features == STAGE1_TRAINING_FEATURES
    assert len(examples) == len(scifact.training_queries("train"))
    corpus = {row["id"]: row for row in scifact.corpus}
    test_ids = set(scifact.qrels["test"]["query_id"])
    for example in examples.select(range(0, len(examples), 20)):
        assert example["query_id"] not in test_ids
        gold_ids = _positives(scifact, example["query_id"])
        assert example["gold"] == [f"{corpus[doc]['title']} {corpus[doc]['text']}" for doc in gold_ids]
        assert [example[role] for role in ("llm_positive", "cot", "llm_negative", "rejected_positive")] == [None] * 4
        assert example["mined_negative"] == []
    assert stage1_statistics(examples)["gold"] == len(scifact.qrels["train"])
    assert f"{len(examples)} queries ({len(examples)} with gold" in caplog.text


def test_recorded_data_statistics(scifact):
    examples = build_stage1_examples(scifact, synthetic=load_recorded_stage1(SYNTHETIC_SCIFACT_DIR, scifact))
    statistics = stage1_statistics(examples)
    assert statistics == {
        "queries": 809, "queries_with_gold": 809, "gold": len(scifact.qrels["train"]), "llm_positive": 751,
        "cot": 809, "llm_negative": 809, "rejected_positive": 58, "mined_negative": 0,
        "queries_with_mined_negative": 0,
    }


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, {"llm_positive": "positive of Q", "rejected_positive": None, "llm_negative": "negative of Q"}),
        ({"llm_positive_verdict": "no"}, {"llm_positive": None, "rejected_positive": "positive of Q"}),
        ({"llm_positive_verdict": None}, {"llm_positive": None, "rejected_positive": None}),
        ({"llm_negative_verdict": "yes"}, {"llm_negative": None, "llm_positive": "positive of Q"}),
        ({"llm_negative_verdict": None}, {"llm_negative": None}),
        ({"llm_positive": None, "llm_positive_verdict": None, "cot": None},
         {"llm_positive": None, "rejected_positive": None, "cot": None, "llm_negative": "negative of Q"}),
    ],
)
def test_verdicts_decide_the_roles(scifact, train_ids, overrides, expected):
    query_id = train_ids[0]
    example = build_stage1_examples(scifact, synthetic=_synthetic(scifact, [query_id], **overrides))[0]
    for role, text in expected.items():
        assert example[role] == (text.replace("Q", query_id) if text else None), role


def test_decisions_are_counted_in_the_log(scifact, train_ids, caplog):
    synthetic = Dataset.from_list(
        [*_synthetic(scifact, train_ids[:2], llm_negative_verdict="yes"),
         *_synthetic(scifact, train_ids[2:5], llm_positive_verdict=None, llm_negative_verdict=None)],
        features=STAGE1_SYNTHETIC_FEATURES,
    )
    with caplog.at_level(logging.INFO, logger="syntriever_hf.data.stage1"):
        build_stage1_examples(scifact, synthetic=synthetic)
    assert "LLM positives 2 verified, 0 rejected (now negatives), 3 unverified (dropped)" in caplog.text
    assert "LLM negatives 0 kept, 2 dropped as relevant, 3 unverified (dropped)" in caplog.text


def test_zero_label_rows_keep_no_gold(scifact, train_ids):
    examples = build_stage1_examples(scifact, synthetic=_synthetic(scifact, train_ids[:3], gold_ids=[]))
    assert examples["gold"] == [[], [], []]
    assert stage1_statistics(examples)["queries_with_gold"] == 0


def test_mined_negatives_become_texts_and_known_positives_are_dropped(scifact, train_ids, caplog):
    query_id = next(q for q in train_ids if len(_positives(scifact, q)) > 1)
    positives = _positives(scifact, query_id)
    others = [doc for doc in scifact.corpus["id"][:10] if doc not in positives][:3]
    corpus = scifact.corpus_texts()
    mined = {query_id: [others[0], positives[1], others[1], others[0], others[2]]}
    for synthetic in (None, _synthetic(scifact, [query_id], gold_ids=positives[:1])):
        with caplog.at_level(logging.INFO, logger="syntriever_hf.data.stage1"):
            examples = build_stage1_examples(scifact, synthetic=synthetic, mined_negatives=mined)
        example = examples[examples["query_id"].index(query_id)]
        assert example["mined_negative"] == [corpus[doc] for doc in others]
        assert "3 mined negatives (1 known positives dropped)" in caplog.text
        caplog.clear()


def test_unknown_mined_id_is_an_error(scifact, train_ids):
    with pytest.raises(Stage1DataError, match=rf"query '{train_ids[0]}': mined negative ids \['nope'\] are not in "
                                              r"the corpus"):
        build_stage1_examples(scifact, mined_negatives={train_ids[0]: ["nope"]})


def test_an_evaluation_query_in_synthetic_data_is_refused(scifact, train_ids):
    test_id = scifact.qrels["test"][0]["query_id"]
    synthetic = _synthetic(scifact, [train_ids[0], test_id])
    with pytest.raises(Stage1DataError, match=rf"synthetic row 1: query_id '{test_id}' is an evaluation query"):
        build_stage1_examples(scifact, synthetic=synthetic)


def test_an_evaluation_split_is_refused(scifact):
    with pytest.raises(ValueError, match=r"split='test' of scifact is an evaluation split"):
        build_stage1_examples(scifact, split="test")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.remove_columns("cot"), r"synthetic lacks the columns \['cot'\]"),
        (lambda d: d.map(lambda row: {"llm_positive_verdict": "Yes"}),
         r"synthetic row 0 \(query '\w+'\): llm_positive_verdict is 'Yes'"),
        (lambda d: d.map(lambda row: {"query_id": "not-a-query"}),
         r"query_id 'not-a-query' is not a query of scifact"),
        (lambda d: d.map(lambda row: {"gold_ids": ["missing-doc"]}),
         r"gold ids \['missing-doc'\] are not in the corpus"),
    ],
)
def test_malformed_synthetic_data_is_refused(scifact, train_ids, mutate, message):
    with pytest.raises(Stage1DataError, match=message):
        build_stage1_examples(scifact, synthetic=mutate(_synthetic(scifact, train_ids[:1])))


def test_duplicate_synthetic_queries_are_refused(scifact, train_ids):
    synthetic = _synthetic(scifact, [train_ids[0], train_ids[0]])
    with pytest.raises(Stage1DataError, match=rf"synthetic row 1: duplicate query_id '{train_ids[0]}'"):
        build_stage1_examples(scifact, synthetic=synthetic)


def test_statistics_need_training_examples(scifact, train_ids):
    with pytest.raises(Stage1DataError, match=r"examples lacks the columns \['gold'"):
        stage1_statistics(_synthetic(scifact, train_ids[:1]))
