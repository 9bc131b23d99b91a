"""The recorded synthetic SciFact data: counts of its README, strict reading, and refusal of evaluation queries."""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from syntriever_hf.data import load_beir
from syntriever_hf.data.recorded import RecordedDataError, load_recorded_stage1
from syntriever_hf.data.schema import STAGE1_SYNTHETIC_FEATURES
from syntriever_hf.data.stage1 import build_stage1_examples
from tests.conftest import SCIFACT_DIR, SYNTHETIC_SCIFACT_DIR

Record = dict[str, Any]


@pytest.fixture(scope="module")
def scifact():
    return load_beir(SCIFACT_DIR)


@pytest.fixture(scope="module")
def recorded(scifact):
    return load_recorded_stage1(SYNTHETIC_SCIFACT_DIR, scifact)


def _read(name: str) -> list[Record]:
    return [json.loads(line) for line in (SYNTHETIC_SCIFACT_DIR / name).read_text().splitlines()]


def _write(folder: Path, name: str, records: list[Record]) -> None:
    """Write JSON lines; a ``str`` record is written as is (a malformed line)."""
    lines = (record if isinstance(record, str) else json.dumps(record) for record in records)
    (folder / name).write_text("".join(line + "\n" for line in lines))


def _edited_copy(tmp_path: Path, edit_stage1: Callable[[list[Record]], None] | None = None,
                 edit_verify: Callable[[list[Record]], None] | None = None) -> Path:
    """A copy of the recorded folder whose two files went through the given in-place edits."""
    folder = tmp_path / "recorded"
    folder.mkdir()
    for name, edit in (("stage1.jsonl", edit_stage1), ("verify.jsonl", edit_verify)):
        records = _read(name)
        if edit is not None:
            edit(records)
        _write(folder, name, records)
    return folder


def test_counts_match_the_readme(recorded, scifact):
    assert recorded.features == STAGE1_SYNTHETIC_FEATURES
    assert len(recorded) == 809
    assert Counter(recorded["llm_positive_verdict"]) == {"yes": 751, "no": 58}
    assert Counter(recorded["llm_negative_verdict"]) == {"no": 809}
    assert all(failures == [] for failures in recorded["failures"])
    relevant = scifact.relevant_docs("train")
    for row in recorded.select(range(50)):
        assert set(row["gold_ids"]) == {doc for doc, score in relevant[row["query_id"]].items() if score > 0}
    assert sum(len(gold) for gold in recorded["gold_ids"]) == len(scifact.qrels["train"])


def test_rejected_positives_land_among_the_negatives(recorded, scifact):
    examples = build_stage1_examples(scifact, synthetic=recorded)
    rejected = {row["query_id"]: row["llm_positive"] for row in recorded if row["llm_positive_verdict"] == "no"}
    assert len(rejected) == 58
    for example in examples:
        if example["query_id"] in rejected:
            assert example["rejected_positive"] == rejected[example["query_id"]]
            assert example["llm_positive"] is None
        else:
            assert example["rejected_positive"] is None
            assert example["llm_positive"] is not None


def test_a_test_query_is_refused(tmp_path, scifact):
    test_id = scifact.qrels["test"][0]["query_id"]
    test_text = scifact.query_texts()[test_id]

    def to_test_query(records: list[Record]) -> None:
        records[3]["query_id"] = test_id
        if "query" in records[3]:
            records[3]["query"] = test_text

    folder = _edited_copy(tmp_path, to_test_query, to_test_query)
    with pytest.raises(RecordedDataError, match=rf"stage1\.jsonl:4: query_id '{test_id}' is a query of the "
                                                r"evaluation split 'test'"):
        load_recorded_stage1(folder, scifact)


def test_an_evaluation_split_is_refused(scifact):
    with pytest.raises(RecordedDataError, match=r"split='test' is an evaluation split"):
        load_recorded_stage1(SYNTHETIC_SCIFACT_DIR, scifact, split="test")


def test_a_query_outside_the_training_split_is_refused(tmp_path, caplog):
    train_only = load_beir(SCIFACT_DIR, splits=["train"])
    test_id = load_beir(SCIFACT_DIR).qrels["test"][0]["query_id"]

    def to_test_query(records: list[Record]) -> None:
        records[0]["query_id"] = test_id

    folder = _edited_copy(tmp_path, to_test_query, to_test_query)
    with caplog.at_level(logging.WARNING), pytest.raises(
        RecordedDataError, match=rf"stage1\.jsonl:1: query_id '{test_id}' is not a query of the training split 'train'"
    ):
        load_recorded_stage1(folder, train_only)
    assert "no evaluation split loaded" in caplog.text


@pytest.mark.parametrize(
    ("edit_stage1", "edit_verify", "message"),
    [
        (lambda r: r.__setitem__(2, "{not json"), None, r"stage1\.jsonl:3: malformed JSON"),
        (lambda r: r[4].pop("cot"), None, r"stage1\.jsonl:5: expected a JSON object with exactly the keys"),
        (lambda r: r[0].__setitem__("positve", "x"), None, r"stage1\.jsonl:1: expected a JSON object with exactly"),
        (None, lambda r: r[6].__setitem__("positive_verdict", "Yes"),
         r"verify\.jsonl:7: positive_verdict is 'Yes'; a verdict is exactly one of \['yes', 'no'\]"),
        (lambda r: r[1].__setitem__("positive", ""), None, r"stage1\.jsonl:2: positive must be a non-empty string"),
        (lambda r: r[0].__setitem__("query_id", 0), None, r"stage1\.jsonl:1: query_id must be a non-empty string"),
        (None, lambda r: r.insert(0, r.pop(1)),
         r"verify\.jsonl:1: query_id '2', but .*stage1\.jsonl:1 has '0': the two files must list the same queries"),
        (None, lambda r: r.pop(), r"has 809 rows but .*verify\.jsonl has 808"),
        (lambda r: r.__setitem__(1, dict(r[0])), lambda r: r.__setitem__(1, dict(r[0])),
         r"stage1\.jsonl:2: duplicate query_id '0' \(first at line 1\)"),
        (lambda r: r[0].__setitem__("query", "Another query."), None,
         r"stage1\.jsonl:1: the query text of '0' differs from scifact's"),
        (lambda r: r[0].__setitem__("positive", None), None,
         r"verify\.jsonl:1: positive_verdict is 'yes' but no positive passage was recorded"),
    ],
)
def test_malformed_recordings_name_the_file_and_line(tmp_path, scifact, edit_stage1, edit_verify, message):
    folder = _edited_copy(tmp_path, edit_stage1, edit_verify)
    with pytest.raises(RecordedDataError, match=message):
        load_recorded_stage1(folder, scifact)


def test_a_failed_request_is_recorded_as_a_failure(tmp_path, scifact):
    def fail_first(records: list[Record]) -> None:
        records[0]["cot"] = None
        records[0]["negative"] = None

    def unverified_first(records: list[Record]) -> None:
        records[0]["negative_verdict"] = None
        records[0]["positive_verdict"] = None

    row = load_recorded_stage1(_edited_copy(tmp_path, fail_first, unverified_first), scifact)[0]
    assert row["cot"] is None and row["llm_negative"] is None and row["llm_positive_verdict"] is None
    assert row["failures"] == ["negative: no answer recorded", "cot: no answer recorded",
                               "verify_positive: no verdict recorded"]


def test_a_missing_file_is_named(tmp_path, scifact):
    shutil.copy(SYNTHETIC_SCIFACT_DIR / "stage1.jsonl", tmp_path / "stage1.jsonl")
    with pytest.raises(FileNotFoundError, match=r"verify\.jsonl is missing"):
        load_recorded_stage1(tmp_path, scifact)
