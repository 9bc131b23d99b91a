"""Request keys, completion extraction and the SQLite response store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from syntriever_hf.llm.request import (
    ChatRequest,
    Completion,
    MalformedResponseError,
    completion_from_body,
    completion_from_text,
)
from syntriever_hf.llm.store import STORE_FILENAME, ResponseStore


def make_request(**overrides) -> ChatRequest:
    fields = {
        "model": "gpt-4o-mini",
        "messages": ({"role": "user", "content": "Is the sky blue?"},),
        "sampling": {"temperature": 0.7, "max_tokens": 16},
        "prompt_version": "demo/v1@abc",
    }
    return ChatRequest(**{**fields, **overrides})


def test_key_is_stable_and_independent_of_dict_order() -> None:
    first = make_request(sampling={"temperature": 0.7, "max_tokens": 16})
    second = make_request(sampling={"max_tokens": 16, "temperature": 0.7})
    assert first.key == second.key
    assert len(first.key) == 64


@pytest.mark.parametrize(
    "change",
    [
        {"model": "gpt-4o"},
        {"messages": ({"role": "user", "content": "Is the sky green?"},)},
        {"sampling": {"temperature": 0.0, "max_tokens": 16}},
        {"prompt_version": "demo/v2@def"},
        {"response_format": {"type": "json_object"}},
    ],
)
def test_key_changes_with_everything_that_determines_the_answer(change: dict) -> None:
    assert make_request(**change).key != make_request().key


def test_body_is_the_chat_completions_body() -> None:
    request = make_request(response_format={"type": "json_object"})
    assert request.body() == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Is the sky blue?"}],
        "temperature": 0.7,
        "max_tokens": 16,
        "response_format": {"type": "json_object"},
    }
    assert request.max_output_tokens == 16


def test_request_refuses_reserved_sampling_keys() -> None:
    with pytest.raises(ValueError, match="sampling must not contain 'model'"):
        make_request(sampling={"model": "x"})


def test_completion_from_body_reads_text_reason_and_usage() -> None:
    body = {"choices": [{"message": {"content": "yes"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 1}}
    assert completion_from_body(body) == Completion("yes", "stop", 12, 1)


def test_refusal_becomes_an_empty_refused_answer() -> None:
    body = {"choices": [{"message": {"content": None, "refusal": "I can't"}, "finish_reason": "stop"}]}
    assert completion_from_body(body) == Completion("", "refusal", 0, 0)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ('{"id": "chatcmpl-1", "choi', "not valid JSON"),
        ("[]", "expected a JSON object"),
        ('{"choices": []}', "no 'choices'"),
        ('{"choices": [{"message": {"content": 3}}]}', "no text 'content'"),
    ],
)
def test_malformed_bodies_are_rejected_with_a_reason(raw: str, reason: str) -> None:
    with pytest.raises(MalformedResponseError, match=reason):
        completion_from_text(raw)


def test_store_commits_answers_and_errors_and_survives_reopening(tmp_path: Path) -> None:
    request = make_request()
    with ResponseStore(tmp_path) as store:
        assert store.next_attempt(request.key) == 0
        store.record_error(request, 0, "timeout: no answer", mode="online")
        store.record_answer(request, 1, Completion("yes", "stop", 10, 1), cost_usd=0.5, mode="online")
    with ResponseStore(tmp_path / STORE_FILENAME) as store:
        attempts = store.attempts(request.key)
        assert [(a.attempt, a.status, a.text, a.error) for a in attempts] == [
            (0, "error", None, "timeout: no answer"), (1, "ok", "yes", None)]
        assert attempts[1].completion() == Completion("yes", "stop", 10, 1)
        assert store.next_attempt(request.key) == 2
        totals = store.totals()
        assert (totals.requests, totals.answered, totals.prompt_tokens, totals.cost_usd) == (2, 1, 10, 0.5)
        assert store.request(request.key) == request


def test_an_attempt_is_stored_once(tmp_path: Path) -> None:
    request = make_request()
    with ResponseStore(tmp_path) as store:
        store.record_answer(request, 0, Completion("yes", "stop", 1, 1), cost_usd=None, mode="online")
        with pytest.raises(sqlite3.IntegrityError):
            store.record_answer(request, 0, Completion("no", "stop", 1, 1), cost_usd=None, mode="online")
        assert [a.text for a in store.attempts(request.key)] == ["yes"]


def test_a_failed_transaction_leaves_nothing(tmp_path: Path) -> None:
    request = make_request()
    with ResponseStore(tmp_path) as store:
        with pytest.raises(RuntimeError), store.transaction() as connection:
            connection.execute("INSERT INTO attempts (key, attempt, status, mode, finished_at) "
                               "VALUES (?, 0, 'error', 'batch', 0)", (request.key,))
            raise RuntimeError("crash while ingesting")
        assert store.attempts(request.key) == []


def test_batch_bookkeeping_tracks_jobs_items_and_pending_keys(tmp_path: Path) -> None:
    first, second = make_request(), make_request(model="gpt-4o")
    with ResponseStore(tmp_path) as store:
        job_id = store.add_batch_job("batches/a.jsonl", [("c-1", first, 0), ("c-2", second, 0)])
        store.update_batch_job(job_id, input_file_id="file-1", batch_id="batch-1", status="in_progress")
        (job,) = store.batch_jobs(ingested=False)
        assert (job.n_requests, job.input_file_id, job.batch_id, job.status) == (2, "file-1", "batch-1",
                                                                                   "in_progress")
        assert [item.custom_id for item in store.batch_items(job_id)] == ["c-1", "c-2"]
        assert store.pending_batch_keys() == {first.key, second.key}
        assert store.next_attempt(first.key) == 1  # the batched attempt 0 is taken
        with store.transaction() as connection:
            store.mark_ingested(connection, job_id)
        assert store.batch_jobs(ingested=False) == []
        with pytest.raises(ValueError, match="unknown fields \\['batch'\\]"):
            store.update_batch_job(job_id, batch="x")

