"""The generic chat request and completion types of the engine, and their content-addressed key."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ChatRequest",
    "Completion",
    "MalformedResponseError",
    "canonical_json",
    "completion_from_body",
    "completion_from_text",
]

logger = logging.getLogger(__name__)

#: Sampling parameters that bound the length of an answer (the first one present is used for budgets).
MAX_TOKENS_PARAMS = ("max_completion_tokens", "max_tokens")


def canonical_json(value: object) -> str:
    """JSON with sorted keys and no whitespace: equal values always give equal text (and equal hashes)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class ChatRequest:
    """One chat-completions request, identified by a hash of everything that determines the answer.

    Args:
        model: the model name sent to the endpoint.
        messages: chat messages (``{"role", "content"}`` mappings).
        sampling: sampling parameters sent as is (``temperature``, ``top_p``, ``max_tokens``, ``seed``, ...).
        prompt_version: the name, version and hash of the template that produced ``messages``; part of the key,
            so that a new template never reuses answers given to an old one.
        response_format: an optional ``response_format`` (JSON mode or JSON schema) for structured output.
    """

    model: str
    messages: tuple[Mapping[str, str], ...]
    sampling: Mapping[str, Any] = field(default_factory=dict)
    prompt_version: str = ""
    response_format: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("ChatRequest.model is empty; pass the model name, e.g. model='gpt-4o-mini'.")
        if not self.messages:
            raise ValueError("ChatRequest.messages is empty; pass at least one {'role', 'content'} message.")
        for key in ("model", "messages", "response_format"):
            if key in self.sampling:
                raise ValueError(f"ChatRequest.sampling must not contain {key!r}; pass it as its own field.")
        object.__setattr__(self, "messages", tuple(dict(message) for message in self.messages))
        object.__setattr__(self, "sampling", dict(self.sampling))

    def body(self) -> dict[str, Any]:
        """The JSON body of ``POST /v1/chat/completions`` (also the ``body`` of a Batch API line)."""
        body: dict[str, Any] = {"model": self.model, "messages": [dict(m) for m in self.messages], **self.sampling}
        if self.response_format is not None:
            body["response_format"] = dict(self.response_format)
        return body

    @property
    def key(self) -> str:
        """sha256 of the canonical JSON of model, messages, sampling, prompt version and response format."""
        identity = {
            "model": self.model,
            "messages": list(self.messages),
            "sampling": self.sampling,
            "prompt_version": self.prompt_version,
            "response_format": self.response_format,
        }
        return hashlib.sha256(canonical_json(identity).encode("utf-8")).hexdigest()

    @property
    def max_output_tokens(self) -> int | None:
        """The answer-length bound among the sampling parameters, if any."""
        for name in MAX_TOKENS_PARAMS:
            if self.sampling.get(name) is not None:
                return int(self.sampling[name])
        return None

    def estimated_input_tokens(self) -> int:
        """A deliberately high estimate of the prompt's tokens (3 characters per token, 8 per message)."""
        characters = sum(len(str(message.get("content", ""))) for message in self.messages)
        return -(-characters // 3) + 8 * len(self.messages)


class MalformedResponseError(ValueError):
    """A 200 answer whose body is not a well-formed chat completion (broken JSON, missing fields)."""


@dataclass(frozen=True)
class Completion:
    """The part of a chat completion the engine keeps: the text, why it ended, and the token usage."""

    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int


def _usage_tokens(usage: object, name: str) -> int:
    if not isinstance(usage, Mapping):
        return 0
    value = usage.get(name)
    return int(value) if isinstance(value, int) and value >= 0 else 0


def completion_from_body(body: object) -> Completion:
    """Extract a :class:`Completion` from a decoded chat-completion body, or raise :class:`MalformedResponseError`."""
    if not isinstance(body, Mapping):
        raise MalformedResponseError(f"chat completion body is a {type(body).__name__}, expected a JSON object")
    choices = body.get("choices")
    if not isinstance(choices, Sequence) or isinstance(choices, str) or not choices:
        raise MalformedResponseError("chat completion body has no 'choices'")
    choice = choices[0]
    message = choice.get("message") if isinstance(choice, Mapping) else None
    if not isinstance(message, Mapping):
        raise MalformedResponseError("chat completion choice has no 'message' object")
    content = message.get("content")
    finish_reason = choice.get("finish_reason")
    if content is None and message.get("refusal"):
        content, finish_reason = "", "refusal"
    if not isinstance(content, str):
        raise MalformedResponseError("chat completion message has no text 'content'")
    usage = body.get("usage")
    return Completion(
        text=content,
        finish_reason=finish_reason if isinstance(finish_reason, str) else None,
        prompt_tokens=_usage_tokens(usage, "prompt_tokens"),
        completion_tokens=_usage_tokens(usage, "completion_tokens"),
    )


def completion_from_text(raw: str) -> Completion:
    """Decode a raw HTTP body and extract the completion; broken JSON raises :class:`MalformedResponseError`."""
    try:
        body = json.loads(raw)
    except ValueError as error:
        reason = f"chat completion body is not valid JSON ({error.msg} at char {error.pos})"
        raise MalformedResponseError(reason) from None
    return completion_from_body(body)
