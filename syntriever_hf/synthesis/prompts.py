"""Versioned prompt templates of every synthesis task, in one place.

A template has a name, a version and its text; the sha256 of the text (and of the response format, for structured
output) is part of every request key and of the dataset card, so an edited template can never reuse answers given
to the old one. Version 1 of the stage-1 templates are the prompts A (positive), B (negative), C (chain of thought)
and V (verification) of the recorded SciFact data (``syntriever_hf/resources/synthetic/scifact/README.md``), so
that this engine's output and the recorded data are comparable; `` / `` there is a paragraph break here (the
persona and the query share a paragraph, on two lines).

Placeholders are ``{name}`` with a word name; they are filled in one pass, so a value that itself contains
``{query}`` is inserted verbatim and never substituted again.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from syntriever_hf.llm.request import canonical_json

__all__ = ["STAGE1_TASKS", "PromptTemplate", "stage1_prompt", "stage1_prompts"]

logger = logging.getLogger(__name__)

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class PromptTemplate:
    """A named, versioned prompt (one user message), optionally with a structured-output ``response_format``."""

    name: str
    version: int
    text: str
    response_format: Mapping[str, Any] | None = None

    @property
    def fields(self) -> tuple[str, ...]:
        """The placeholders of the text, in order of first appearance."""
        return tuple(dict.fromkeys(_PLACEHOLDER.findall(self.text)))

    @property
    def sha256(self) -> str:
        """sha256 of the text and the response format: what the card records and the request key includes."""
        identity = canonical_json({"text": self.text, "response_format": self.response_format})
        return hashlib.sha256(identity.encode("utf-8")).hexdigest()

    @property
    def tag(self) -> str:
        """``name/v<version>@<first 12 hex digits of sha256>``: the prompt version of a request."""
        return f"{self.name}/v{self.version}@{self.sha256[:12]}"

    def render(self, **values: str) -> str:
        """The text with every placeholder filled; missing or unknown values raise, naming them."""
        missing = [name for name in self.fields if name not in values]
        unknown = sorted(set(values) - set(self.fields))
        if missing or unknown:
            raise ValueError(
                f"prompt {self.tag}: missing values {missing}, unexpected values {unknown}; "
                f"it takes exactly {list(self.fields)}"
            )
        return _PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), self.text)

    def messages(self, **values: str) -> tuple[dict[str, str], ...]:
        """The chat messages of this prompt: one user message."""
        return ({"role": "user", "content": self.render(**values)},)


_PERSONA = (
    "You are a subject-matter expert whose knowledge is backed by degrees, certifications and years of experience."
)
_POSITIVE = (
    f"{_PERSONA}\nQuery: {{query}}\n\nWrite one passage of 100-180 words that directly addresses the query: the "
    "evidence and findings that bear on whether it holds, in the register of a scientific abstract. Every statement "
    "must be accurate to the best of your knowledge. Do not speculate and do not invent specifics (author names, "
    "journal names, exact figures) you are not sure of."
)
_NEGATIVE = (
    f"{_PERSONA}\nQuery: {{query}}\n\nWrite one passage of 100-180 words that is plausible but irrelevant: it "
    "shares the query's field and much of its vocabulary, so a keyword search would match it, but it does not "
    "address the query and gives no evidence for or against it. Every statement must be accurate; do not speculate."
)
_COT = "{query}\n\nLet's think step by step."
_VERIFY_QUESTION = (
    "Query: {query}\n\nPassage: {passage}\n\nIs the passage relevant to the query (it directly addresses the "
    "query: evidence for or against it, or the facts it asks about) and free of statements you believe are false?"
)
_TEXT_JSON = '\n\nReply with a JSON object {"text": "<your answer>"} and nothing else.'
_VERDICT_JSON = ' Reply with a JSON object {"verdict": "yes"} or {"verdict": "no"} and nothing else.'


def _json_schema(name: str, field: str, enum: tuple[str, ...] | None = None) -> dict[str, Any]:
    value: dict[str, Any] = {"type": "string", **({"enum": list(enum)} if enum else {})}
    schema = {"type": "object", "properties": {field: value}, "required": [field], "additionalProperties": False}
    return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": schema}}


_TEXT_FORMAT = _json_schema("text_answer", "text")
_VERDICT_FORMAT = _json_schema("verdict", "verdict", ("yes", "no"))

#: The stage-1 tasks, in the order they are run and reported.
STAGE1_TASKS = ("positive", "negative", "cot", "verify_positive", "verify_negative")

_PLAIN: dict[str, PromptTemplate] = {
    "positive": PromptTemplate("stage1-positive", 1, _POSITIVE),
    "negative": PromptTemplate("stage1-negative", 1, _NEGATIVE),
    "cot": PromptTemplate("stage1-cot", 1, _COT),
    "verify": PromptTemplate("stage1-verify", 1, _VERIFY_QUESTION + " Answer with exactly one word: yes or no."),
}
_STRUCTURED: dict[str, PromptTemplate] = {
    "positive": PromptTemplate("stage1-positive-json", 1, _POSITIVE + _TEXT_JSON, _TEXT_FORMAT),
    "negative": PromptTemplate("stage1-negative-json", 1, _NEGATIVE + _TEXT_JSON, _TEXT_FORMAT),
    "cot": PromptTemplate("stage1-cot-json", 1, _COT + _TEXT_JSON, _TEXT_FORMAT),
    "verify": PromptTemplate("stage1-verify-json", 1, _VERIFY_QUESTION + _VERDICT_JSON, _VERDICT_FORMAT),
}


def stage1_prompt(task: str, *, structured: bool = False) -> PromptTemplate:
    """The template of a stage-1 task (``positive``, ``negative``, ``cot``, ``verify``)."""
    table = _STRUCTURED if structured else _PLAIN
    if task not in table:
        raise ValueError(f"unknown stage-1 prompt {task!r}; expected one of {sorted(table)}")
    return table[task]


def stage1_prompts(*, structured: bool = False) -> dict[str, PromptTemplate]:
    """All stage-1 templates of one flavour (plain text with exact-token verdicts, or structured JSON)."""
    return dict(_STRUCTURED if structured else _PLAIN)
