"""``syntriever synthesize``: in process for the options, as a subprocess for SIGKILL, resume, secrets and push."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from datasets import load_from_disk

from syntriever_hf.cli.main import main
from tests.conftest import REPO_ROOT, SCIFACT_DIR
from tests.fakes.hub_server import FakeHub
from tests.fakes.openai_server import FakeOpenAIServer, messages_sha

API_KEY = "sk-test-SECRET-123"  # what conftest's ``api_key`` fixture puts in OPENAI_API_KEY
QUERIES = [f"Gene {i} expression is higher in tumor cells than in blood cells." for i in range(10)]


def write_queries(tmp_path: Path, count: int = 10) -> Path:
    path = tmp_path / "queries.txt"
    path.write_text("\n".join(QUERIES[:count]) + "\n", encoding="utf-8")
    return path


def base_args(server: FakeOpenAIServer, data: Path | str, output: Path, *extra: str) -> list[str]:
    return ["synthesize", "--data", str(data), "--model", "gpt-4o-mini", "--base-url", server.base_url,
            "--output", str(output), "--no-progress", "--timeout", "5", *extra]


# -- in process ---------------------------------------------------------------------------------------------------


def test_dry_run_prints_the_estimate_and_sends_nothing(server: FakeOpenAIServer, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "out"
    assert main(base_args(server, write_queries(tmp_path, 4), output, "--dry-run")) == 0
    printed = capsys.readouterr().out
    assert "Dry run for 4 queries with gpt-4o-mini; nothing was sent." in printed
    assert "generation requests to send:   12 (0 already stored)" in printed
    assert "verification requests to send: 8 (0 already stored)" in printed
    assert "cost (at most):" in printed and "USD" in printed
    assert server.log == [] and not output.exists()


def test_the_evaluation_split_is_refused(server: FakeOpenAIServer, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="split 'test' is an evaluation split"):
        main(base_args(server, SCIFACT_DIR, tmp_path / "out", "--split", "test", "--limit", "2"))
    assert server.log == []


def test_a_spending_limit_writes_partial_output_and_exits_3(server: FakeOpenAIServer, tmp_path: Path) -> None:
    output = tmp_path / "out"
    assert main(base_args(server, SCIFACT_DIR, output, "--limit", "3", "--max-requests", "5")) == 3
    rows = load_from_disk(str(output))["train"]
    assert len(rows) == 3 and len(server.chat_log()) == 5
    assert any("not sent: --max-requests 5 reached" in line for row in rows["failures"] for line in row)
    assert main(base_args(server, SCIFACT_DIR, output, "--limit", "3")) == 0  # no limit: completes
    assert all(row == [] for row in load_from_disk(str(output))["train"]["failures"])
    assert len(server.chat_log()) == 3 * 5


def test_max_cost_needs_a_price(server: FakeOpenAIServer, tmp_path: Path) -> None:
    args = base_args(server, write_queries(tmp_path, 2), tmp_path / "out", "--max-cost", "1")
    args[args.index("gpt-4o-mini")] = "my-local-model"
    with pytest.raises(ValueError, match="--max-cost needs a price for model 'my-local-model'"):
        main(args)
    assert server.log == []


def test_a_missing_or_refused_key_exits_cleanly(server: FakeOpenAIServer, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    args = base_args(server, write_queries(tmp_path, 2), tmp_path / "out")
    monkeypatch.delenv("OPENAI_API_KEY")
    assert main(args) == 2
    assert "The environment variable OPENAI_API_KEY is not set" in caplog.text
    monkeypatch.setenv("OTHER_KEY", "sk-wrong-but-well-formed")
    assert main([*args, "--api-key-env", "OTHER_KEY"]) == 4
    assert "HTTP 401: Incorrect API key provided" in caplog.text
    assert "sk-wrong-but-well-formed" not in caplog.text


# -- as a subprocess ------------------------------------------------------------------------------------------------


def child_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "OPENAI_API_KEY": API_KEY, "HF_HOME": str(tmp_path / "hf-home"), **extra}
    env.pop("OPENAI_BASE_URL", None)
    return env


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "syntriever_hf.cli.main", "--log-level", "DEBUG", *args]
    return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def query_store(store: Path, sql: str) -> list[tuple]:
    if not store.exists():
        return []
    connection = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5)
    try:
        return connection.execute(sql).fetchall()
    except sqlite3.OperationalError:  # tables not created yet
        return []
    finally:
        connection.close()


def stored_message_hashes(store: Path) -> set[str]:
    rows = query_store(store, "SELECT r.body FROM requests r JOIN attempts a ON a.key = r.key WHERE a.status = 'ok'")
    return {messages_sha(json.loads(body)["messages"]) for (body,) in rows}


def assert_no_secret(secret: str, *places: Path, texts: tuple[str, ...] = ()) -> None:
    files = [path for place in places for path in ([place] if place.is_file() else place.rglob("*"))
             if path.is_file()]
    assert files, "nothing to search"
    assert [path for path in files if secret.encode() in path.read_bytes()] == []
    assert all(secret not in text for text in texts)


def test_sigkill_mid_run_then_rerun_completes_without_asking_twice(server: FakeOpenAIServer, tmp_path: Path) -> None:
    server.latency = 0.3
    output, store = tmp_path / "out", tmp_path / "out" / "responses.sqlite3"
    args = base_args(server, write_queries(tmp_path), output, "--concurrency", "4")
    env = child_env(tmp_path)
    first = start(args, env, tmp_path / "first.log")
    try:
        wait_for(lambda: len(stored_message_hashes(store)) >= 8, 60, "8 stored answers")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert first.returncode == -signal.SIGKILL
    stored_at_kill = stored_message_hashes(store)
    sent_before = len(server.chat_log())
    assert 8 <= len(stored_at_kill) < 50  # killed mid-run: 10 queries need 30 + 20 answers

    server.latency = 0.01
    second = start(args, env, tmp_path / "second.log")
    assert second.wait(timeout=120) == 0, (tmp_path / "second.log").read_text()[-3000:]
    resent = [entry["messages_sha"] for entry in server.chat_log()[sent_before:]]
    assert stored_at_kill.isdisjoint(resent)  # nothing already stored was asked again
    counts = Counter(entry["messages_sha"] for entry in server.chat_log())
    assert sum(count - 1 for count in counts.values()) <= 4  # at most the requests in flight at the kill
    assert len(counts) == 50
    rows = load_from_disk(str(output))["train"]
    assert len(rows) == 10 and all(row == [] for row in rows["failures"])
    assert rows["query"] == QUERIES
    logs = tuple((tmp_path / name).read_text() for name in ("first.log", "second.log"))
    assert "stage-1 generate" in logs[1] and "Sending HTTP Request" in logs[1]  # DEBUG logs were captured
    assert_no_secret(API_KEY, output, tmp_path / "first.log", tmp_path / "second.log", texts=logs)


def test_batch_mode_sigkill_after_submit_resumes_the_same_batch(server: FakeOpenAIServer, tmp_path: Path) -> None:
    server.hold_batches = True
    output, store = tmp_path / "out", tmp_path / "out" / "responses.sqlite3"
    args = base_args(server, write_queries(tmp_path, 4), output, "--mode", "batch", "--batch-poll-interval", "0.05")
    env = child_env(tmp_path)
    first = start(args, env, tmp_path / "first.log")
    try:
        wait_for(lambda: query_store(store, "SELECT batch_id FROM batch_jobs WHERE batch_id IS NOT NULL") != []
                 and any(e["kind"] == "batches.retrieve" for e in server.log), 60, "a submitted, polled batch")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    ((batch_id,),) = query_store(store, "SELECT batch_id FROM batch_jobs")
    server.hold_batches = False
    second = start(args, env, tmp_path / "second.log")
    assert second.wait(timeout=120) == 0, (tmp_path / "second.log").read_text()[-3000:]
    creates = [entry for entry in server.log if entry["kind"] == "batches.create"]
    assert creates[0]["batch_id"] == batch_id and len(creates) == 2  # generation once, then verification
    uploads = [entry for entry in server.log if entry["kind"] == "files.create"]
    assert len(uploads[0]["custom_ids"]) == 12 and len(uploads[1]["custom_ids"]) == 8
    assert set(uploads[0]["messages_sha"]).isdisjoint(uploads[1]["messages_sha"])
    rows = load_from_disk(str(output))["train"]
    assert len(rows) == 4 and all(row == [] for row in rows["failures"])
    assert "Resuming 1 batch job(s)" in (tmp_path / "second.log").read_text()
    assert_no_secret(API_KEY, output, tmp_path / "first.log", tmp_path / "second.log")


def test_push_to_hub_publishes_dataset_and_card(server: FakeOpenAIServer, tmp_path: Path) -> None:
    hf_token = "hf_fakeToken0123456789abcdefXYZ"
    output = tmp_path / "out"
    with FakeHub(tmp_path / "hub", token=hf_token) as hub:
        env = child_env(tmp_path, HF_ENDPOINT=hub.url, HF_HUB_DISABLE_XET="1", HF_TOKEN=hf_token)
        env.pop("HF_HUB_OFFLINE", None)
        args = base_args(server, SCIFACT_DIR, output, "--limit", "3", "--push-to-hub", "my-org/scifact-stage1")
        child = start(args, env, tmp_path / "push.log")
        assert child.wait(timeout=180) == 0, (tmp_path / "push.log").read_text()[-3000:]
        card = hub.read("my-org/scifact-stage1", "README.md", repo_type="dataset").decode()
    logs = (tmp_path / "push.log").read_text()
    assert "Pushed to " in logs
    assert "Syntriever stage-1 synthetic data: scifact" in card and "cc-by-nc-2.0" in card
    assert (output / "README.md").read_text().split("---\n")[2] in card  # the local card's body was pushed
    assert_no_secret(API_KEY, output, tmp_path / "push.log", texts=(card,))
    assert_no_secret(hf_token, output, tmp_path / "push.log", texts=(card,))
