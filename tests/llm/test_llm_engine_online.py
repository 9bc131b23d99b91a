"""The online engine against the fake OpenAI-compatible server, with the real ``openai`` client over HTTP."""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path

import pytest

from syntriever_hf.llm import (
    ClientSettings,
    Engine,
    EngineSettings,
    FatalEndpointError,
    ResponseStore,
)
from tests.fakes.chat_requests import parse_echo, requests
from tests.fakes.openai_server import FakeOpenAIServer, FaultPlan, messages_sha


def settings(server: FakeOpenAIServer, **overrides) -> EngineSettings:
    client = ClientSettings(base_url=server.base_url, timeout=overrides.pop("timeout", 2.0),
                            max_retries=overrides.pop("max_retries", 6))
    return EngineSettings(client=client, concurrency=overrides.pop("concurrency", 8), show_progress=False,
                          **overrides)


def test_every_request_is_answered_stored_and_parsed(server: FakeOpenAIServer, tmp_path: Path) -> None:
    batch = requests(20)
    with ResponseStore(tmp_path) as store:
        engine = Engine(store, settings(server))
        report = engine.run(batch, parse_echo)
        assert (report.items, report.succeeded, report.failed, report.requests_sent) == (20, 20, 0, 20)
        for request in batch:
            outcome = engine.outcome(request, parse_echo)
            assert outcome.status == "succeeded"
            assert outcome.value == f"echo {messages_sha(list(request.messages))[:12]}"
        assert store.totals().answered == 20
        assert report.prompt_tokens > 0 and report.cost_usd > 0


def test_a_rerun_sends_only_what_is_missing(server: FakeOpenAIServer, tmp_path: Path) -> None:
    with ResponseStore(tmp_path) as store:
        Engine(store, settings(server)).run(requests(10), parse_echo)
    sent_first = len(server.chat_log())
    with ResponseStore(tmp_path) as store:
        report = Engine(store, settings(server)).run(requests(15), parse_echo)
    assert (report.cached, report.requests_sent, report.succeeded) == (10, 5, 15)
    assert len(server.chat_log()) == sent_first + 5


def test_duplicate_requests_are_sent_once(server: FakeOpenAIServer, tmp_path: Path) -> None:
    with ResponseStore(tmp_path) as store:
        report = Engine(store, settings(server)).run(requests(5) + requests(5), parse_echo)
    assert (report.items, report.requests_sent) == (5, 5)
    assert len(server.chat_log()) == 5


def test_twenty_percent_faults_end_every_item_exactly_once(server: FakeOpenAIServer, tmp_path: Path) -> None:
    """429 with Retry-After, 500, dropped connections, slow answers past the timeout, malformed bodies and
    unparseable answers, 20% of all requests: each item ends succeeded or failed with a reason, none twice."""
    server.faults = FaultPlan(fraction=0.2, seed=7, slow_seconds=0.6)
    batch = requests(60) + requests(3, prefix="[[always-bad]]")
    with ResponseStore(tmp_path) as store:
        engine = Engine(store, settings(server, timeout=0.3, max_retries=6, concurrency=16, max_attempts=3))
        report = engine.run(batch, parse_echo)
        outcomes = [engine.outcome(request, parse_echo) for request in batch]
    faults = Counter(entry["fault"] for entry in server.chat_log())
    assert set(faults) >= {None, "429", "500", "drop", "slow", "malformed", "bad_format"}
    assert report.items == len(batch) == report.succeeded + report.failed
    assert all(o.status == "succeeded" or (o.status == "failed" and o.reason) for o in outcomes)
    assert sum(o.status == "succeeded" for o in outcomes) == report.succeeded >= 55
    always_bad = outcomes[-3:]
    assert [o.status for o in always_bad] == ["failed"] * 3
    assert always_bad[0].reason.startswith("unparseable after 3 attempt(s): expected 'echo <hash>'")


def test_retry_after_is_honoured(server: FakeOpenAIServer, tmp_path: Path) -> None:
    server.faults = FaultPlan(fraction=1.0, kinds=("429",), retry_after=1.0)
    started = time.monotonic()
    with ResponseStore(tmp_path) as store:
        report = Engine(store, settings(server, max_retries=1)).run(requests(1), parse_echo)
    elapsed = time.monotonic() - started
    assert len(server.chat_log()) == 2  # the first try and one retry, a second apart
    assert elapsed >= 1.0
    gap = server.chat_log()[1]["time"] - server.chat_log()[0]["time"]
    assert gap >= 0.95
    assert report.failed == 1
    assert list(report.failure_reasons) == ["HTTP 429: Rate limit reached (after 1 retries)"]


def test_timeouts_end_as_failures_with_reason_and_are_retried_by_the_next_run(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    server.faults = FaultPlan(fraction=1.0, kinds=("slow",), slow_seconds=0.5)
    batch = requests(2)
    with ResponseStore(tmp_path) as store:
        engine = Engine(store, settings(server, timeout=0.2, max_retries=1))
        engine.run(batch, parse_echo)
        outcome = engine.outcome(batch[0], parse_echo)
        assert outcome.status == "failed"
        assert outcome.reason == "timeout: no answer within 0.2 s (after 1 retries)"
        assert [a.status for a in store.attempts(batch[0].key)] == ["error"]
    server.faults = FaultPlan()
    with ResponseStore(tmp_path) as store:
        report = Engine(store, settings(server)).run(batch, parse_echo)
    assert (report.requests_sent, report.succeeded) == (2, 2)


def test_malformed_bodies_are_retried(server: FakeOpenAIServer, tmp_path: Path) -> None:
    server.faults = FaultPlan(fraction=0.3, kinds=("malformed",), seed=0)
    with ResponseStore(tmp_path) as store:
        report = Engine(store, settings(server)).run(requests(10), parse_echo)
    malformed = Counter(entry["fault"] for entry in server.chat_log())["malformed"]
    assert report.succeeded == 10 and malformed > 0
    assert len(server.chat_log()) == 10 + malformed  # each malformed body was asked again


def test_unparseable_attempts_are_stored_and_never_paid_twice(server: FakeOpenAIServer, tmp_path: Path) -> None:
    bad = requests(1, prefix="[[always-bad]]")
    with ResponseStore(tmp_path) as store:
        Engine(store, settings(server, max_attempts=2)).run(bad, parse_echo)
        assert [a.status for a in store.attempts(bad[0].key)] == ["ok", "ok"]
    with ResponseStore(tmp_path) as store:
        engine = Engine(store, settings(server, max_attempts=2))
        report = engine.run(bad, parse_echo)
        assert report.requests_sent == 0
        assert engine.outcome(bad[0], parse_echo).reason.startswith("unparseable after 2 attempt(s)")
        report = Engine(store, settings(server, max_attempts=3)).run(bad, parse_echo)
        assert report.requests_sent == 1  # a higher bound buys exactly one more attempt
    assert len(server.chat_log()) == 3


def test_max_requests_stops_cleanly(server: FakeOpenAIServer, tmp_path: Path) -> None:
    batch = requests(10)
    with ResponseStore(tmp_path) as store:
        engine = Engine(store, settings(server, max_requests=4, concurrency=2))
        report = engine.run(batch, parse_echo)
        outcomes = [engine.outcome(request, parse_echo) for request in batch]
    assert (report.succeeded, report.failed, report.not_sent) == (4, 6, 6)
    assert len(server.chat_log()) == 4
    assert {o.reason for o in outcomes if o.status == "failed"} == {"not sent: --max-requests 4 reached"}


def test_max_cost_is_never_passed(server: FakeOpenAIServer, tmp_path: Path) -> None:
    from syntriever_hf.llm import ModelPrice, PriceTable

    prices = PriceTable({"gpt-4o-mini": ModelPrice(1000.0, 1000.0)})  # 0.001 USD per token: ~0.008 per answer
    with ResponseStore(tmp_path) as store:
        engine = Engine(store, settings(server, max_cost=0.1, concurrency=4), prices=prices)
        report = engine.run(requests(20), parse_echo)
        spent = store.totals().cost_usd
    worst = engine.budget.worst_case_usd(requests(1)[0])
    assert 0.1 - worst < spent <= 0.1  # stopped only when the next request's worst case would not fit
    assert report.succeeded >= 4 and report.not_sent > 0 and report.succeeded + report.failed == 20


def test_a_bad_key_stops_the_run(server: FakeOpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key-000")
    caplog.set_level(logging.DEBUG)
    with ResponseStore(tmp_path) as store:
        with pytest.raises(FatalEndpointError, match=r"^HTTP 401: Incorrect API key provided$"):
            Engine(store, settings(server, concurrency=2)).run(requests(50), parse_echo)
        assert store.totals().requests <= 2  # the workers in flight, not all 50
    assert "sk-wrong-key-000" not in caplog.text


def test_concurrency_overlaps_requests(server: FakeOpenAIServer, tmp_path: Path) -> None:
    server.latency = 0.2
    started = time.monotonic()
    with ResponseStore(tmp_path) as store:
        Engine(store, settings(server, concurrency=20)).run(requests(20), parse_echo)
    assert time.monotonic() - started < 2.0  # sequentially: 4 s


def test_live_progress_shows_done_total_in_flight_tokens_cost_and_failures(
    server: FakeOpenAIServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = requests(6) + requests(1, prefix="[[always-bad]]")
    engine_settings = EngineSettings(client=ClientSettings(base_url=server.base_url), concurrency=4,
                                     max_attempts=1, show_progress=True)
    with ResponseStore(tmp_path) as store:
        report = Engine(store, engine_settings).run(batch, parse_echo, total=len(batch), description="demo")
    bar = capsys.readouterr().err.strip().split("\r")[-1]
    assert bar.startswith("demo: 100%") and "7/7" in bar
    assert f"in_flight=0, tokens={report.prompt_tokens + report.completion_tokens}" in bar
    assert f"cost=${report.cost_usd:.4f}, failed=1" in bar
