"""Prices, the budget that refuses requests before a limit passes, rate limits, and key redaction."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from syntriever_hf.llm.budget import Budget
from syntriever_hf.llm.client import ClientSettings, read_api_key, redact, redact_url
from syntriever_hf.llm.pricing import ModelPrice, PriceTable, load_price_table
from syntriever_hf.llm.ratelimit import RateLimiter
from syntriever_hf.llm.request import ChatRequest
from syntriever_hf.llm.store import StoreTotals


def request(model: str = "gpt-4o-mini", max_tokens: int | None = 1000, text: str = "x" * 300) -> ChatRequest:
    sampling = {} if max_tokens is None else {"max_tokens": max_tokens}
    return ChatRequest(model, ({"role": "user", "content": text},), sampling)


def test_prices_per_million_tokens_with_batch_discount_and_dated_snapshots() -> None:
    table = PriceTable({"m": ModelPrice(1.0, 4.0)})
    assert table.cost("m", 1_000_000, 500_000) == pytest.approx(3.0)
    assert table.cost("m", 1_000_000, 500_000, batch=True) == pytest.approx(1.5)
    assert table.cost("m-2025-01-31", 1_000_000, 0) == pytest.approx(1.0)
    assert table.cost("unknown", 10, 10) is None


def test_price_file_overrides_defaults(tmp_path: Path) -> None:
    yaml_file = tmp_path / "prices.yaml"
    yaml_file.write_text("gpt-4o-mini: {input: 1, output: 2}\nlocal: {input: 0, output: 0}\n")
    table = load_price_table(yaml_file)
    assert table.price("gpt-4o-mini") == ModelPrice(1.0, 2.0)
    assert table.price("local") == ModelPrice(0.0, 0.0)
    assert table.price("gpt-4o") is not None  # defaults kept


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"m": {"input": 1}}', "exactly the keys 'input' and 'output'"),
        ('{"m": {"input": -1, "output": 1}}', "must be a number >= 0"),
        ("[1, 2]", "expected a mapping of model name"),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_price_files_name_the_problem(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "prices.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_price_table(path)


def test_missing_price_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="--prices: no such file"):
        load_price_table(tmp_path / "nope.json")


def test_budget_refuses_the_request_that_could_pass_max_cost_and_stays_stopped() -> None:
    prices = PriceTable({"gpt-4o-mini": ModelPrice(1000.0, 1000.0)})  # 0.001 USD per token
    budget = Budget(prices, max_cost=2.5)
    one = request()  # 300 characters -> 108 input tokens (high estimate) + 1000 output tokens = 1.108 USD
    assert budget.worst_case_usd(one) == pytest.approx(1.108)
    first, second = budget.try_reserve(one), budget.try_reserve(one)
    assert first is not None and second is not None
    assert budget.try_reserve(one) is None  # 3 x 1.108 > 2.5
    assert "--max-cost 2.5000 USD would be passed" in budget.exhausted_reason
    budget.settle(first, 0.01)
    budget.settle(second, 0.01)
    assert budget.try_reserve(request(max_tokens=1)) is None  # stopped for good, even if a small one would fit
    assert budget.spent_usd == pytest.approx(0.02)


def test_budget_counts_earlier_runs_against_max_requests() -> None:
    budget = Budget(PriceTable(), max_requests=5, already=StoreTotals(4, 4, 0, 0, 0.0))
    assert budget.try_reserve(request()) is not None
    assert budget.try_reserve(request()) is None
    assert budget.exhausted_reason == "not sent: --max-requests 5 reached"


def test_budget_check_names_the_fix() -> None:
    budget = Budget(PriceTable(), max_cost=1.0)
    with pytest.raises(ValueError, match=r"needs a price for model 'my-model'.*--prices FILE"):
        budget.check(request(model="my-model"))
    with pytest.raises(ValueError, match="set max_tokens"):
        budget.check(request(max_tokens=None))
    Budget(PriceTable()).check(request(model="my-model"))  # no max_cost: nothing to enforce


def test_requests_per_minute_limit_spaces_requests() -> None:
    limiter = RateLimiter(requests_per_minute=1200)  # 20 per second, bucket of 20

    async def take(count: int) -> float:
        start = time.monotonic()
        for _ in range(count):
            await limiter.acquire(tokens=1)
        return time.monotonic() - start

    elapsed = asyncio.run(take(30))
    assert 0.45 <= elapsed < 2.0  # the 10 requests beyond the bucket wait 0.5 s in all


def test_tokens_per_minute_limit_waits_for_tokens() -> None:
    limiter = RateLimiter(tokens_per_minute=60_000)  # 1000 tokens per second

    async def take() -> float:
        start = time.monotonic()
        for _ in range(3):
            await limiter.acquire(tokens=500)
        return time.monotonic() - start

    assert 0.45 <= asyncio.run(take()) < 2.0  # 1500 tokens, 1000 in the bucket


def test_api_key_comes_from_the_named_variable_and_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_LLM_KEY", "sk-test-SECRET-123")
    assert read_api_key("MY_LLM_KEY") == "sk-test-SECRET-123"
    assert redact("HTTP 401: Incorrect API key provided: sk-test-SECRET-123.") == "HTTP 401: Incorrect API key provided: ***."
    assert redact("key sk-abcdefghijkl leaked") == "key sk-*** leaked"
    monkeypatch.delenv("MY_LLM_KEY")
    with pytest.raises(RuntimeError, match="environment variable MY_LLM_KEY is not set"):
        read_api_key("MY_LLM_KEY")


def test_api_key_env_must_be_a_variable_name_not_a_key() -> None:
    with pytest.raises(ValueError, match="must be the NAME of an environment variable") as error:
        ClientSettings(api_key_env="sk-test-SECRET-123")
    assert "SECRET" not in str(error.value)


def test_urls_lose_credentials_for_cards_and_logs() -> None:
    assert redact_url("https://user:pw@llm.example.org:8443/v1?key=abc") == "https://llm.example.org:8443/v1"
