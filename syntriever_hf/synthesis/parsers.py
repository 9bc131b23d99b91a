"""Strict parsers of LLM answers: an answer either follows the protocol exactly or raises ``ParseError``.

Never substring search ("no" occurs in "not", "know", "cannot"): a verdict in the plain protocol is the whole
answer, stripped and lower-cased, and must be exactly ``yes`` or ``no``; in structured mode it is the ``verdict``
field of a JSON object with no other field. A text answer must be non-empty and complete (an answer cut off at
``max_tokens``, refused or filtered is not a passage).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from syntriever_hf.data.schema import VERDICTS
from syntriever_hf.llm.engine import ParseError
from syntriever_hf.llm.request import Completion

__all__ = ["parse_text", "parse_text_json", "parse_verdict", "parse_verdict_json", "text_parser", "verdict_parser"]

logger = logging.getLogger(__name__)

_UNFINISHED = {
    "length": "answer cut off at max_tokens (finish_reason=length); raise max_tokens",
    "content_filter": "answer withheld by the endpoint's content filter (finish_reason=content_filter)",
    "refusal": "the model refused to answer",
    "tool_calls": "the model called a tool instead of answering (finish_reason=tool_calls)",
}


def _preview(text: str, limit: int = 60) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[:limit] + "...")


def _check_finished(completion: Completion) -> None:
    if completion.finish_reason in _UNFINISHED:
        raise ParseError(_UNFINISHED[completion.finish_reason])


def parse_text(completion: Completion) -> str:
    """A complete, non-empty free-text answer, stripped."""
    _check_finished(completion)
    text = completion.text.strip()
    if not text:
        raise ParseError("empty answer")
    return text


def _json_object(completion: Completion, field: str) -> object:
    _check_finished(completion)
    try:
        value = json.loads(completion.text)
    except ValueError:
        raise ParseError(f"expected a JSON object {{{field!r}: ...}}, got {_preview(completion.text)}") from None
    if not isinstance(value, dict) or set(value) != {field}:
        raise ParseError(f"expected a JSON object with exactly the key {field!r}, got {_preview(completion.text)}")
    return value[field]


def parse_text_json(completion: Completion) -> str:
    """The non-empty ``text`` field of a structured answer ``{"text": ...}``."""
    value = _json_object(completion, "text")
    if not isinstance(value, str) or not value.strip():
        raise ParseError(f"expected a non-empty string in 'text', got {_preview(completion.text)}")
    return value.strip()


def parse_verdict(completion: Completion) -> str:
    """``"yes"`` or ``"no"``: the whole answer, stripped and lower-cased, must be exactly one of them."""
    _check_finished(completion)
    verdict = completion.text.strip().lower()
    if verdict not in VERDICTS:
        raise ParseError(f"expected exactly 'yes' or 'no', got {_preview(completion.text)}")
    return verdict


def parse_verdict_json(completion: Completion) -> str:
    """The ``verdict`` of a structured answer ``{"verdict": "yes" | "no"}``."""
    value = _json_object(completion, "verdict")
    if value not in VERDICTS:
        raise ParseError(f"expected 'verdict' to be 'yes' or 'no', got {_preview(completion.text)}")
    return str(value)


def text_parser(*, structured: bool) -> Callable[[Completion], str]:
    """The text parser of a prompt flavour."""
    return parse_text_json if structured else parse_text


def verdict_parser(*, structured: bool) -> Callable[[Completion], str]:
    """The verdict parser of a prompt flavour."""
    return parse_verdict_json if structured else parse_verdict
