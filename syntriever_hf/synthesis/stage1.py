"""Stage-1 tasks on top of the engine: per query, a relevant passage, a plausible-but-irrelevant passage and a
chain-of-thought expansion (round 1), then the verification of the generated positive and negative (round 2,
which needs round 1's passages).

Verification drives the labels downstream (``syntriever_hf.data.schema``): a positive judged "no" becomes a hard
negative, a negative judged "yes" is dropped. This module only records texts, verdicts and failures, one row per
query in ``STAGE1_SYNTHETIC_FEATURES``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from syntriever_hf.llm.engine import Engine, Outcome
from syntriever_hf.llm.request import ChatRequest
from syntriever_hf.synthesis.inputs import QuerySet
from syntriever_hf.synthesis.parsers import text_parser, verdict_parser
from syntriever_hf.synthesis.prompts import PromptTemplate, stage1_prompts

__all__ = ["GENERATION_TASKS", "Stage1Settings", "Stage1Tasks"]

logger = logging.getLogger(__name__)

#: Round-1 tasks and the template each uses.
GENERATION_TASKS = ("positive", "negative", "cot")


@dataclass(frozen=True)
class Stage1Settings:
    """What to ask the LLM and how.

    Args:
        model: the chat model.
        temperature: sampling temperature of every request.
        top_p: nucleus sampling (``None``: the endpoint's default).
        seed: a sampling seed, where the endpoint supports one.
        max_tokens: answer bound of the passages and the chain of thought.
        verify_max_tokens: answer bound of a verification (one word, or a tiny JSON object).
        structured_output: ask for JSON-schema answers (``response_format``); otherwise plain text and the
            exact-token verdict protocol. Use it only where the endpoint supports ``json_schema``.
        verify_negative: also verify the negative (guards against false negatives).
    """

    model: str
    temperature: float = 0.7
    top_p: float | None = None
    seed: int | None = None
    max_tokens: int = 512
    verify_max_tokens: int = 16
    structured_output: bool = False
    verify_negative: bool = True

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("Stage1Settings.model is empty; pass the chat model name (--model).")
        for name in ("max_tokens", "verify_max_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"Stage1Settings.{name} must be >= 1, got {getattr(self, name)}")

    def sampling(self, max_tokens: int) -> dict[str, Any]:
        """The sampling parameters sent with a request (unset options are left to the endpoint)."""
        params: dict[str, Any] = {"temperature": self.temperature, "max_tokens": max_tokens}
        if self.top_p is not None:
            params["top_p"] = self.top_p
        if self.seed is not None:
            params["seed"] = self.seed
        return params

    def tasks(self) -> tuple[str, ...]:
        """The tasks run per query."""
        verify = ("verify_positive", "verify_negative") if self.verify_negative else ("verify_positive",)
        return (*GENERATION_TASKS, *verify)


class Stage1Tasks:
    """Builds the requests of both rounds and reads their outcomes back through the engine."""

    def __init__(self, settings: Stage1Settings) -> None:
        self.settings = settings
        structured = settings.structured_output
        self.prompts: dict[str, PromptTemplate] = stage1_prompts(structured=structured)
        self.parse_text = text_parser(structured=structured)
        self.parse_verdict = verdict_parser(structured=structured)

    def _request(self, template: PromptTemplate, max_tokens: int, **values: str) -> ChatRequest:
        return ChatRequest(
            model=self.settings.model,
            messages=template.messages(**values),
            sampling=self.settings.sampling(max_tokens),
            prompt_version=template.tag,
            response_format=template.response_format,
        )

    def generation_request(self, task: str, query: str) -> ChatRequest:
        """The round-1 request of ``task`` (positive, negative or cot) for one query."""
        if task not in GENERATION_TASKS:
            raise ValueError(f"unknown generation task {task!r}; expected one of {GENERATION_TASKS}")
        return self._request(self.prompts[task], self.settings.max_tokens, query=query)

    def verification_request(self, query: str, passage: str) -> ChatRequest:
        """The round-2 request judging ``passage`` for ``query``."""
        return self._request(self.prompts["verify"], self.settings.verify_max_tokens, query=query, passage=passage)

    def generation_requests(self, queries: QuerySet) -> Iterator[ChatRequest]:
        """All round-1 requests, lazily, query by query."""
        for query in queries.texts:
            for task in GENERATION_TASKS:
                yield self.generation_request(task, query)

    def verification_requests(self, engine: Engine, queries: QuerySet) -> Iterator[ChatRequest]:
        """Round-2 requests for every generated passage that should be verified, lazily."""
        for query in queries.texts:
            for task in self._verified_tasks():
                outcome = engine.outcome(self.generation_request(task, query), self.parse_text)
                if outcome.status == "succeeded":
                    yield self.verification_request(query, outcome.value)

    def _verified_tasks(self) -> tuple[str, ...]:
        return ("positive", "negative") if self.settings.verify_negative else ("positive",)

    def outcomes(self, engine: Engine, query: str) -> dict[str, Outcome | None]:
        """Every task's outcome for one query; ``None`` for a verification that was not run."""
        results: dict[str, Outcome | None] = {}
        for task in GENERATION_TASKS:
            results[task] = engine.outcome(self.generation_request(task, query), self.parse_text)
        for task in ("positive", "negative"):
            generated = results[task]
            run = task in self._verified_tasks() and generated is not None and generated.status == "succeeded"
            results[f"verify_{task}"] = (
                engine.outcome(self.verification_request(query, generated.value), self.parse_verdict)
                if run else None
            )
        return results

    @staticmethod
    def row(query_id: str, query: str, gold_ids: tuple[str, ...], outcomes: dict[str, Outcome | None]) -> dict:
        """One row of ``STAGE1_SYNTHETIC_FEATURES``; failed tasks become ``"<task>: <reason>"`` lines."""

        def value(task: str) -> str | None:
            outcome = outcomes.get(task)
            return outcome.value if outcome is not None and outcome.status == "succeeded" else None

        failures = [
            f"{task}: {outcome.reason}"
            for task, outcome in outcomes.items()
            if outcome is not None and outcome.status == "failed"
        ]
        return {
            "query_id": query_id,
            "query": query,
            "gold_ids": list(gold_ids),
            "llm_positive": value("positive"),
            "llm_positive_verdict": value("verify_positive"),
            "llm_negative": value("negative"),
            "llm_negative_verdict": value("verify_negative"),
            "cot": value("cot"),
            "failures": failures,
        }
