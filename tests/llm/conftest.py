"""Fixtures of the engine tests: a fake OpenAI-compatible server on loopback and a secret API key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.openai_server import FakeOpenAIServer

API_KEY = "sk-test-SECRET-123"


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """The key in ``OPENAI_API_KEY``; the fake server accepts only this one."""
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    return API_KEY


@pytest.fixture
def server(api_key: str) -> Iterator[FakeOpenAIServer]:
    """A fake server with a little latency and no faults (tests change ``faults`` and ``batch_outcomes``)."""
    with FakeOpenAIServer(latency=0.005, api_key=api_key) as fake:
        yield fake
