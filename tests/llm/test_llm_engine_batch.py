"""Batch mode against the fake server's files and batches endpoints (real ``openai`` client over HTTP)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import pytest
from openai import OpenAI

from syntriever_hf.llm import (
    BatchSettings,
    ChatRequest,
    ClientSettings,
    Engine,
    EngineSettings,
    ResponseStore,
)
from syntriever_hf.llm.batch import custom_id
from tests.fakes.chat_requests import parse_echo, requests
from tests.fakes.openai_server import FakeOpenAIServer


def batch_settings(server: FakeOpenAIServer, **batch) -> EngineSettings:
    options = {"poll_interval": 0.02, "max_poll_interval": 0.05, **batch}
    return EngineSettings(client=ClientSettings(base_url=server.base_url, timeout=5, max_retries=2), mode="batch",
                          batch=BatchSettings(**options), show_progress=False)


def kinds(server: FakeOpenAIServer) -> Counter:
    return Counter(entry["kind"] for entry in server.log)


def run(tmp_path: Path, server: FakeOpenAIServer, batch: list[ChatRequest], **options):
    with ResponseStore(tmp_path) as store:
        engine = Engine(store, batch_settings(server, **options))
        report = engine.run(batch, parse_echo)
        return report, [engine.outcome(request, parse_echo) for request in batch]


def test_batch_mode_answers_everything_in_files_split_at_the_line_limit(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    batch = requests(25)
    report, outcomes = run(tmp_path, server, batch, max_requests_per_file=10)
    assert [o.status for o in outcomes] == ["succeeded"] * 25
    uploads = [entry for entry in server.log if entry["kind"] == "files.create"]
    assert [len(upload["custom_ids"]) for upload in uploads] == [10, 10, 5]
    assert sorted(cid for upload in uploads for cid in upload["custom_ids"]) == sorted(
        custom_id(request.key, 0) for request in batch)
    assert server.chat_log() == []  # nothing went through the online endpoint
    assert report.cost_usd > 0
    with ResponseStore(tmp_path) as store:
        assert {a.mode for r in batch for a in store.attempts(r.key)} == {"batch"}
        assert all(job.ingested for job in store.batch_jobs())
    rerun, _ = run(tmp_path, server, batch, max_requests_per_file=10)
    assert (rerun.cached, rerun.requests_sent) == (25, 0)
    assert kinds(server)["files.create"] == 3


def test_files_are_split_at_the_byte_limit(server: FakeOpenAIServer, tmp_path: Path) -> None:
    batch = requests(6)
    line = len(json.dumps({"custom_id": custom_id(batch[0].key, 0), "method": "POST",
                           "url": "/v1/chat/completions", "body": batch[0].body()}).encode()) + 1
    run(tmp_path, server, batch, max_bytes_per_file=2 * line + 1)
    assert [len(e["custom_ids"]) for e in server.log if e["kind"] == "files.create"] == [2, 2, 2]


@pytest.mark.parametrize("outcome", ["expired", "error_file"])
def test_expired_or_errored_lines_are_resubmitted_once(
    server: FakeOpenAIServer, tmp_path: Path, outcome: str
) -> None:
    server.batch_outcomes = [outcome]
    _, outcomes = run(tmp_path, server, requests(8))
    assert [o.status for o in outcomes] == ["succeeded"] * 8
    creates = [e for e in server.log if e["kind"] == "batches.create"]
    assert [e["outcome"] for e in creates] == [outcome, "completed"]
    uploads = [e["custom_ids"] for e in server.log if e["kind"] == "files.create"]
    assert len(uploads[0]) == 8 and len(uploads[1]) == 4  # the half without an answer, as attempt 1
    assert all(cid.endswith("-1") for cid in uploads[1])


def test_lines_failing_twice_are_recorded_as_failed_with_reason(server: FakeOpenAIServer, tmp_path: Path) -> None:
    server.batch_outcomes = ["failed", "failed"]
    report, outcomes = run(tmp_path, server, requests(3))
    assert kinds(server)["batches.create"] == 2  # submitted, resubmitted once, then given up
    assert (report.failed, report.succeeded) == (3, 0)
    assert all(o.status == "failed" for o in outcomes)
    assert outcomes[0].reason.startswith("batch batch-")
    assert outcomes[0].reason.endswith("ended failed without a result for this request "
                                       "(invalid_request: simulated failure)")


def test_unparseable_answers_get_new_attempts_in_later_batches(server: FakeOpenAIServer, tmp_path: Path) -> None:
    _, outcomes = run(tmp_path, server, requests(2) + requests(1, prefix="[[always-bad]]"))
    assert [o.status for o in outcomes] == ["succeeded", "succeeded", "failed"]
    assert outcomes[2].reason.startswith("unparseable after 3 attempt(s)")
    assert [len(e["custom_ids"]) for e in server.log if e["kind"] == "files.create"] == [3, 1, 1]


def test_an_interrupted_run_resumes_polling_the_same_batch(server: FakeOpenAIServer, tmp_path: Path) -> None:
    batch = requests(5)
    server.hold_batches = True

    async def interrupted() -> None:
        with ResponseStore(tmp_path) as store:
            await asyncio.wait_for(Engine(store, batch_settings(server)).arun(batch, parse_echo), timeout=1.0)

    with pytest.raises(asyncio.TimeoutError):
        asyncio.run(interrupted())
    (created,) = [e["batch_id"] for e in server.log if e["kind"] == "batches.create"]
    server.hold_batches = False
    _, outcomes = run(tmp_path, server, batch)
    assert [o.status for o in outcomes] == ["succeeded"] * 5
    assert kinds(server)["batches.create"] == 1 and kinds(server)["files.create"] == 1
    polled = {e["batch_id"] for e in server.log if e["kind"] == "batches.retrieve"}
    assert polled == {created}


def test_an_upload_whose_batch_id_was_never_recorded_is_found_not_resubmitted(
    server: FakeOpenAIServer, tmp_path: Path, api_key: str
) -> None:
    """The crash window between ``batches.create`` and recording its id: the batch is looked up by file id."""
    batch = requests(3)
    lines = [{"custom_id": custom_id(r.key, 0), "method": "POST", "url": "/v1/chat/completions", "body": r.body()}
             for r in batch]
    local = tmp_path / "crashed.jsonl"
    local.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with ResponseStore(tmp_path) as store:
        job_id = store.add_batch_job(str(local), [(line["custom_id"], r, 0) for line, r in zip(lines, batch,
                                                                                                strict=True)])
        client = OpenAI(base_url=server.base_url, api_key=api_key)
        uploaded = client.files.create(file=local, purpose="batch")
        store.update_batch_job(job_id, input_file_id=uploaded.id, status="uploaded")
        client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    _, outcomes = run(tmp_path, server, batch)
    assert [o.status for o in outcomes] == ["succeeded"] * 3
    assert (kinds(server)["batches.create"], kinds(server)["files.create"], kinds(server)["batches.list"]) == (
        1, 1, 1)
