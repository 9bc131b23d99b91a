"""Client-side helpers for tests of the engine against the fake OpenAI server."""

from __future__ import annotations

from syntriever_hf.llm import ChatRequest, Completion, ParseError


def requests(count: int, prefix: str = "question") -> list[ChatRequest]:
    """``count`` distinct small chat requests."""
    return [ChatRequest("gpt-4o-mini", ({"role": "user", "content": f"{prefix} {i}"},), {"max_tokens": 50},
                        "test/v1") for i in range(count)]


def parse_echo(completion: Completion) -> str:
    """The fake server's plain answer is ``echo <hash>``; anything else breaks the format."""
    if not completion.text.startswith("echo "):
        raise ParseError(f"expected 'echo <hash>', got {completion.text!r}")
    return completion.text
