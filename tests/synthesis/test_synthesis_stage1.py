"""Stage-1 synthesis end to end (in process) against the fake server: inputs, rows, verdicts, card, reruns."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml
from datasets import load_from_disk

from syntriever_hf.data.schema import STAGE1_SYNTHETIC_FEATURES
from syntriever_hf.llm import ClientSettings, EngineSettings, ModelPrice, PriceTable
from syntriever_hf.synthesis import (
    QuerySet,
    Stage1Settings,
    estimate_stage1,
    stage1_prompt,
    synthesize_stage1,
)
from tests.conftest import SCIFACT_DIR
from tests.fakes.openai_server import FakeOpenAIServer, FaultPlan, negative_verdict, positive_verdict

QUERIES = [f"Protein {i} expression increases tumor risk in mice." for i in range(12)]


def engine_settings(server: FakeOpenAIServer, **overrides) -> EngineSettings:
    client = ClientSettings(base_url=server.base_url, timeout=overrides.pop("timeout", 2.0), max_retries=6)
    return EngineSettings(client=client, concurrency=8, show_progress=False, **overrides)


def test_plain_query_ids_are_stable_and_repeats_are_kept_once() -> None:
    first = QuerySet.from_texts(["b query", "a query", "b query "])
    assert first.texts == ("b query", "a query")
    assert first.ids == QuerySet.from_texts(["b query", "a query"]).ids
    assert all(query_id.startswith("q-") and len(query_id) == 14 for query_id in first.ids)
    with pytest.raises(ValueError, match="query #1 is empty"):
        QuerySet.from_texts(["fine", "  "])


def test_beir_training_queries_come_with_their_gold_ids() -> None:
    queries = QuerySet.from_beir(SCIFACT_DIR, split="train")
    assert len(queries) == 809 and queries.split == "train" and queries.license == "cc-by-nc-2.0"
    qrels = {}
    for line in (SCIFACT_DIR / "qrels" / "train.tsv").read_text().splitlines()[1:]:
        query_id, doc_id, _ = line.split("\t")
        qrels.setdefault(query_id, set()).add(doc_id)
    assert {q: set(g) for q, g in zip(queries.ids, queries.gold_ids, strict=True)} == qrels


def test_evaluation_queries_are_refused_unless_explicitly_allowed() -> None:
    with pytest.raises(ValueError, match=r"split 'test' is an evaluation split.*--allow-evaluation-split"):
        QuerySet.from_beir(SCIFACT_DIR, split="test")
    allowed = QuerySet.from_beir(SCIFACT_DIR, split="test", allow_evaluation_split=True)
    assert len(allowed) == 300


def test_stage1_rows_follow_the_schema_and_the_verifier(server: FakeOpenAIServer, tmp_path: Path) -> None:
    queries = QuerySet.from_texts([*QUERIES, "An [[always-bad]] query about cells."])
    result = synthesize_stage1(queries, Stage1Settings(model="gpt-4o-mini"), tmp_path / "out",
                               engine_settings=engine_settings(server))
    train = result.dataset["train"]
    assert train.features == STAGE1_SYNTHETIC_FEATURES
    assert train["query_id"] == list(queries.ids)  # one row per query, in order, exactly once
    rows = {row["query"]: row for row in train}
    for query in QUERIES:
        row = rows[query]
        assert row["llm_positive"].startswith(f"Evidence about {query}")
        assert row["llm_negative"].startswith("Background on an adjacent topic")
        assert row["cot"].startswith("Step 1:")
        assert row["llm_positive_verdict"] == positive_verdict(query)
        assert row["llm_negative_verdict"] == negative_verdict(query)
        assert row["failures"] == []
    bad = rows["An [[always-bad]] query about cells."]
    assert bad["llm_positive"] is None and bad["llm_positive_verdict"] is None
    assert bad["failures"] == [f"{task}: unparseable after 3 attempt(s): empty answer"
                               for task in ("positive", "negative", "cot")]
    counts = {t.task: (t.requested, t.succeeded, t.failed) for t in result.counts.tasks}
    assert counts == {"positive": (13, 12, 1), "negative": (13, 12, 1), "cot": (13, 12, 1),
                      "verify_positive": (12, 12, 0), "verify_negative": (12, 12, 0)}
    verdicts = Counter(positive_verdict(q) for q in QUERIES)
    assert (result.counts.positives_verified, result.counts.positives_rejected) == (verdicts["yes"], verdicts["no"])
    reloaded = load_from_disk(str(tmp_path / "out"))
    assert reloaded["train"].to_list() == train.to_list()


def test_the_card_records_the_provenance(server: FakeOpenAIServer, tmp_path: Path) -> None:
    result = synthesize_stage1(QuerySet.from_beir(SCIFACT_DIR).head(4), Stage1Settings(model="gpt-4o-mini",
                               temperature=0.3), tmp_path, engine_settings=engine_settings(server),
                               source_path=str(SCIFACT_DIR))
    card = (tmp_path / "README.md").read_text()
    assert card == result.card
    front_matter = yaml.safe_load(card.split("---\n")[1])
    assert front_matter["license"] == "cc-by-nc-2.0"
    assert {"synthetic", "machine-generated"} <= set(front_matter["tags"])
    assert front_matter["task_categories"] == ["text-retrieval"]
    assert front_matter["size_categories"] == ["n<1K"]
    for prompt in ("positive", "negative", "cot", "verify"):
        template = stage1_prompt(prompt)
        assert f"| `{template.name}` | 1 | `{template.sha256}` |" in card
    assert '`{"max_tokens":512,"temperature":0.3}`' in card
    assert f"`{server.base_url}`" in card and "`gpt-4o-mini`" in card
    assert f"{result.totals.requests} request(s), {result.totals.prompt_tokens} prompt" in card
    assert "| positive | 4 | 4 | 0 |" in card
    assert "Queries from scifact" in card and "split `train`" in card


def test_a_rerun_sends_nothing_and_writes_the_same_rows(server: FakeOpenAIServer, tmp_path: Path) -> None:
    queries = QuerySet.from_texts(QUERIES[:5])
    first = synthesize_stage1(queries, Stage1Settings(model="gpt-4o-mini"), tmp_path,
                              engine_settings=engine_settings(server))
    rows, sent = first.dataset["train"].to_list(), len(server.chat_log())
    second = synthesize_stage1(queries, Stage1Settings(model="gpt-4o-mini"), tmp_path,
                               engine_settings=engine_settings(server))
    assert len(server.chat_log()) == sent == 25
    assert second.dataset["train"].to_list() == rows
    assert second.reports["generate"].cached == 15 and second.reports["verify"].cached == 10


def test_twenty_percent_faults_leave_one_row_per_query(server: FakeOpenAIServer, tmp_path: Path) -> None:
    server.faults = FaultPlan(fraction=0.2, seed=11, slow_seconds=0.6)
    queries = QuerySet.from_texts(QUERIES)
    result = synthesize_stage1(queries, Stage1Settings(model="gpt-4o-mini"), tmp_path,
                               engine_settings=engine_settings(server, timeout=0.3))
    train = result.dataset["train"]
    assert sorted(train["query_id"]) == sorted(queries.ids)
    for row in train:
        for task, column in (("positive", "llm_positive"), ("negative", "llm_negative"), ("cot", "cot")):
            failed = [line for line in row["failures"] if line.startswith(f"{task}: ")]
            assert (row[column] is None) == bool(failed)  # succeeded, or failed with its reason: never both
    assert {entry["fault"] for entry in server.chat_log()} >= {"429", "500", "drop", "slow", "malformed"}


def test_structured_output_and_unverified_negatives(server: FakeOpenAIServer, tmp_path: Path) -> None:
    settings = Stage1Settings(model="gpt-4o-mini", structured_output=True, verify_negative=False)
    result = synthesize_stage1(QuerySet.from_texts(QUERIES[:4]), settings, tmp_path,
                               engine_settings=engine_settings(server))
    train = result.dataset["train"]
    assert train["llm_positive_verdict"] == [positive_verdict(q) for q in QUERIES[:4]]
    assert train["llm_negative_verdict"] == [None] * 4
    assert all(text.startswith("Evidence about") for text in train["llm_positive"])
    assert len(server.chat_log()) == 4 * 4
    assert "structured (JSON-schema) output" in result.card


def test_dry_run_counts_what_is_missing_and_sends_nothing(server: FakeOpenAIServer, tmp_path: Path) -> None:
    prices = PriceTable({"gpt-4o-mini": ModelPrice(1.0, 2.0)})
    settings = Stage1Settings(model="gpt-4o-mini", max_tokens=100)
    queries = QuerySet.from_texts(QUERIES[:6])
    estimate = estimate_stage1(queries, settings, tmp_path, engine_settings=engine_settings(server), prices=prices)
    assert (estimate.generation.to_send, estimate.verification.to_send) == (18, 12)
    assert estimate.max_output_tokens == 18 * 100 + 12 * 16
    assert estimate.max_cost_usd == pytest.approx((estimate.input_tokens * 1.0 + estimate.max_output_tokens * 2.0)
                                                  / 1e6)
    assert server.chat_log() == [] and not any(tmp_path.iterdir())
    synthesize_stage1(queries.head(2), settings, tmp_path, engine_settings=engine_settings(server), prices=prices)
    again = estimate_stage1(queries, settings, tmp_path, engine_settings=engine_settings(server), prices=prices)
    assert (again.generation.cached, again.generation.to_send) == (6, 12)
    assert (again.verification.cached, again.verification.to_send) == (4, 8)
