"""The BEIR data layer: schema, splits, and a precise error for every malformed input."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from syntriever_hf.data import BeirFormatError, load_beir
from syntriever_hf.data.beir_hub import beir_from_records
from tests.beir_folders import write_beir_folder, write_jsonl, write_qrels
from tests.conftest import SCIFACT_DIR


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_beir_folder(tmp_path / "toy")


def test_loads_schema_and_splits(folder: Path) -> None:
    beir = load_beir(folder)
    assert beir.name == "toy"
    assert beir.corpus.column_names == ["id", "title", "text"]
    assert beir.queries.column_names == ["id", "text"]
    assert beir.splits == ["test", "train"]
    assert beir.qrels["test"].column_names == ["query_id", "corpus_id", "score"]
    assert beir.relevant_docs("test") == {"q3": {"d2": 1}, "q4": {"d5": 2, "d4": 1}}
    assert beir.corpus_texts()["d0"] == "title 0 cancer risk increase in patients"
    assert beir.query_texts("train") == {"q1": "cancer risk", "q2": "protein in mice"}


def test_gzipped_corpus_loads_like_plain(tmp_path: Path) -> None:
    plain = load_beir(write_beir_folder(tmp_path / "plain"))
    gz = load_beir(write_beir_folder(tmp_path / "gz", gz=True))
    assert plain.corpus.to_list() == gz.corpus.to_list()


def test_only_requested_splits_are_loaded(folder: Path) -> None:
    assert load_beir(folder, splits=["train"]).splits == ["train"]


def test_training_queries_refuse_evaluation_split(folder: Path) -> None:
    beir = load_beir(folder)
    assert beir.training_queries("train")["id"] == ["q1", "q2"]
    with pytest.raises(ValueError, match=r"split='test' of toy is an evaluation split.*Use a training split \(\['train'\]\)"):
        beir.training_queries("test")
    assert beir.training_queries("test", allow_evaluation_split=True)["id"] == ["q3", "q4"]


def test_training_queries_drop_queries_also_judged_in_test(folder: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_qrels(folder / "qrels" / "train.tsv", [("q1", "d0", 1), ("q3", "d2", 1)])
    with caplog.at_level(logging.WARNING):
        ids = load_beir(folder).training_queries("train")["id"]
    assert ids == ["q1"]
    assert "1 train queries are also evaluation queries" in caplog.text


def test_unknown_split_is_named(folder: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"qrels/dev\.tsv is missing: split 'dev' was asked for.*\['test', 'train'\]"):
        load_beir(folder, splits=["dev"])


@pytest.mark.parametrize("name", ["queries.jsonl", "corpus.jsonl"])
def test_missing_file(folder: Path, name: str) -> None:
    (folder / name).unlink()
    with pytest.raises(FileNotFoundError, match=rf"{re.escape(str(folder / name))} is missing: a BEIR folder holds"):
        load_beir(folder)


def test_missing_qrels_folder(folder: Path) -> None:
    for path in (folder / "qrels").iterdir():
        path.unlink()
    (folder / "qrels").rmdir()
    with pytest.raises(FileNotFoundError, match=r"qrels/test\.tsv is missing"):
        load_beir(folder)


def test_not_a_folder_nor_hub_id(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"is not a BEIR folder .* and not a Hub dataset id"):
        load_beir(tmp_path / "nowhere" / "at" / "all")


def test_malformed_json_line_names_file_and_line(folder: Path) -> None:
    path = folder / "queries.jsonl"
    path.write_text('{"_id": "q1", "text": "ok"}\n{"_id": "q2", "text": oops}\n')
    with pytest.raises(BeirFormatError, match=rf"{re.escape(str(path))}:2: malformed JSON \(Expecting value at column 23\)"):
        load_beir(folder)


@pytest.mark.parametrize("missing", ["_id", "text"])
def test_record_without_required_field(folder: Path, missing: str) -> None:
    record = {"_id": "d9", "title": "t", "text": "x"}
    del record[missing]
    path = folder / "corpus.jsonl"
    write_jsonl(path, [{"_id": "d0", "text": "fine"}, record])
    with pytest.raises(BeirFormatError, match=rf"corpus\.jsonl:2: record has no '{missing}' field"):
        load_beir(folder)


def test_duplicate_ids_name_both_lines(folder: Path) -> None:
    write_jsonl(folder / "queries.jsonl", [{"_id": "q1", "text": "a"}, {"_id": "q2", "text": "b"},
                                           {"_id": "q1", "text": "c"}])
    with pytest.raises(BeirFormatError, match=r"queries\.jsonl:3: duplicate _id 'q1' \(first at .*queries\.jsonl:1\)"):
        load_beir(folder)


def test_non_integer_score(folder: Path) -> None:
    write_qrels(folder / "qrels" / "test.tsv", [("q3", "d2", 1), ("q4", "d5", "0.5")])
    with pytest.raises(BeirFormatError, match=r"test\.tsv:3: score '0\.5' is not an integer"):
        load_beir(folder)


def test_wrong_column_count(folder: Path) -> None:
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq3\td2\n")
    with pytest.raises(BeirFormatError, match=r"test\.tsv:2: expected 3 tab-separated columns"):
        load_beir(folder)


def test_empty_split(folder: Path) -> None:
    write_qrels(folder / "qrels" / "test.tsv", [])
    with pytest.raises(BeirFormatError, match=r"test\.tsv: empty split: no usable qrels rows"):
        load_beir(folder)


def test_empty_file(folder: Path) -> None:
    (folder / "queries.jsonl").write_text("\n")
    with pytest.raises(BeirFormatError, match=r"queries\.jsonl holds no records"):
        load_beir(folder)


def test_unknown_ids_are_counted_once_not_fatal(folder: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_qrels(folder / "qrels" / "test.tsv", [("q3", "d2", 1), ("qX", "d2", 1), ("qY", "d1", 1), ("q4", "dZ", 1)])
    with caplog.at_level(logging.WARNING):
        beir = load_beir(folder)
    assert beir.relevant_docs("test") == {"q3": {"d2": 1}}
    warnings = [r.getMessage() for r in caplog.records if "test.tsv" in r.getMessage()]
    assert len(warnings) == 1
    assert "2 rows name a query id missing from the queries and 1 a document id missing" in warnings[0]


def test_edited_file_is_reloaded_not_served_from_cache(folder: Path) -> None:
    assert len(load_beir(folder).queries) == 4
    write_jsonl(folder / "queries.jsonl", [{"_id": f"q{i}", "text": "t"} for i in range(1, 6)])
    assert len(load_beir(folder).queries) == 5


def test_hub_layout_records_get_the_same_validation() -> None:
    corpus = [{"_id": "d1", "title": "t", "text": "a"}, {"_id": "d2", "title": None, "text": "b"}]
    queries = [{"_id": "q1", "text": "x"}]
    beir = beir_from_records("org/toy", corpus, queries, {"test": [{"query-id": "q1", "corpus-id": "d2", "score": 1}]},
                             source="org/toy")
    assert beir.corpus["title"] == ["t", ""]
    assert beir.relevant_docs("test") == {"q1": {"d2": 1}}
    with pytest.raises(BeirFormatError, match=r"org/toy corpus row:1: duplicate _id 'd1'"):
        beir_from_records("org/toy", [*corpus[:1], corpus[0]], queries, {}, source="org/toy")


def test_bundled_scifact_counts() -> None:
    beir = load_beir(SCIFACT_DIR)
    assert (len(beir.corpus), len(beir.queries)) == (5183, 1109)
    assert (len(beir.qrels["train"]), len(beir.qrels["test"])) == (919, 339)
    assert len(beir.training_queries()) == 809
    assert len(beir.queries_of_split("test")) == 300
