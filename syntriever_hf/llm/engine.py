"""The engine: run many chat requests through an OpenAI-compatible endpoint, cached, bounded and resumable.

It knows nothing about retrieval. A caller hands it :class:`~syntriever_hf.llm.request.ChatRequest` objects and a
parser (``Completion -> value``, raising :class:`ParseError` with a reason for an answer that breaks the expected
format). For every distinct request the engine ends in exactly one :class:`Outcome`:

* ``succeeded``: a stored answer parses;
* ``failed``: no answer after the SDK's retries, every allowed attempt answered unparseably, or the budget refused
  to send it; the reason says which.

Online mode runs ``concurrency`` requests at a time over ``AsyncOpenAI`` with optional requests/min and tokens/min
limits; batch mode goes through the Batch API (:mod:`syntriever_hf.llm.batch`). Either way every answer is
committed to the :class:`~syntriever_hf.llm.store.ResponseStore` before it is parsed, and a rerun only sends what
the store lacks. Answers that failed to parse count against ``max_attempts`` across reruns (they were paid for);
requests that got no answer are tried again by the next run.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from syntriever_hf.llm.budget import Budget, Reservation
from syntriever_hf.llm.client import ClientSettings, make_async_client, redact
from syntriever_hf.llm.pricing import PriceTable
from syntriever_hf.llm.progress import ProgressReporter
from syntriever_hf.llm.ratelimit import RateLimiter
from syntriever_hf.llm.request import ChatRequest, Completion, MalformedResponseError, completion_from_text
from syntriever_hf.llm.store import AttemptRecord, ResponseStore

if TYPE_CHECKING:
    from openai import AsyncOpenAI

__all__ = [
    "BatchSettings",
    "Engine",
    "EngineSettings",
    "Estimate",
    "FatalEndpointError",
    "Outcome",
    "ParseError",
    "Parser",
    "RunReport",
    "is_fatal_error",
    "resolve",
]

logger = logging.getLogger(__name__)


class ParseError(ValueError):
    """An answer that breaks the expected format; the message is the reason recorded with the failure."""


class FatalEndpointError(RuntimeError):
    """An error that every request would hit (bad key, no permission, unknown model): the run stops."""


Parser = Callable[[Completion], Any]


@dataclass(frozen=True)
class Outcome:
    """The final state of one request: ``succeeded`` with the parsed value, or ``failed`` with a reason.

    ``pending`` is only ever seen by :func:`resolve`: a request that may still be (re)sent.
    """

    key: str
    status: Literal["succeeded", "failed", "pending"]
    value: Any = None
    reason: str | None = None
    answers: int = 0


def resolve(key: str, attempts: Sequence[AttemptRecord], parse: Parser, max_attempts: int) -> Outcome:
    """The state of a request given its stored attempts: the first answer that parses wins."""
    answers = [attempt for attempt in attempts if attempt.status == "ok"]
    last_reason: str | None = None
    for attempt in answers:
        try:
            return Outcome(key, "succeeded", value=parse(attempt.completion()), answers=len(answers))
        except ParseError as error:
            last_reason = str(error)
    if answers and len(answers) >= max_attempts:
        return Outcome(key, "failed", reason=f"unparseable after {len(answers)} attempt(s): {last_reason}",
                       answers=len(answers))
    if attempts and attempts[-1].status == "error":
        last_reason = attempts[-1].error
    elif last_reason is not None:
        last_reason = f"unparseable: {last_reason}"
    return Outcome(key, "pending", reason=last_reason, answers=len(answers))


@dataclass(frozen=True)
class BatchSettings:
    """Batch API settings: file limits (the API's), polling and resubmission.

    Args:
        max_requests_per_file: lines per input file (the API allows 50,000).
        max_bytes_per_file: bytes per input file (the API allows 200 MB).
        poll_interval: seconds before the first status poll; doubles up to ``max_poll_interval``.
        max_poll_interval: longest wait between polls.
        completion_window: the batch window (``"24h"``).
        max_resubmissions: how often a line that came back failed or expired is submitted again in one run.
    """

    max_requests_per_file: int = 50_000
    max_bytes_per_file: int = 200 * 1024 * 1024
    poll_interval: float = 30.0
    max_poll_interval: float = 600.0
    completion_window: str = "24h"
    max_resubmissions: int = 1


@dataclass(frozen=True)
class EngineSettings:
    """How the engine runs.

    Args:
        client: endpoint, key variable, timeout and retries.
        mode: ``"online"`` (chat completions, concurrent) or ``"batch"`` (the Batch API, half price).
        concurrency: requests in flight at most (online mode).
        requests_per_minute: optional limit on requests started per minute (online mode).
        tokens_per_minute: optional limit on (estimated prompt + max answer) tokens per minute (online mode).
        max_attempts: paid answers per request at most when answers break the expected format.
        max_cost: USD the run directory may spend in total, across reruns (``None``: unlimited).
        max_requests: requests the run directory may send in total, across reruns (``None``: unlimited).
        batch: Batch API settings (batch mode).
        show_progress: draw a progress bar.
    """

    client: ClientSettings = field(default_factory=ClientSettings)
    mode: Literal["online", "batch"] = "online"
    concurrency: int = 32
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    max_attempts: int = 3
    max_cost: float | None = None
    max_requests: int | None = None
    batch: BatchSettings = field(default_factory=BatchSettings)
    show_progress: bool = True

    def __post_init__(self) -> None:
        if self.mode not in ("online", "batch"):
            raise ValueError(f"mode must be 'online' or 'batch', got {self.mode!r}")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")


@dataclass
class RunReport:
    """What one :meth:`Engine.run` did."""

    items: int = 0
    cached: int = 0
    succeeded: int = 0
    failed: int = 0
    not_sent: int = 0
    requests_sent: int = 0
    answers: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    elapsed_s: float = 0.0
    failure_reasons: Counter[str] = field(default_factory=Counter)

    def add(self, outcome: Outcome, *, cached: bool) -> None:
        self.items += 1
        self.cached += int(cached)
        if outcome.status == "succeeded":
            self.succeeded += 1
        else:
            self.failed += 1
            self.not_sent += int((outcome.reason or "").startswith("not sent:"))
            self.failure_reasons[(outcome.reason or "unknown")[:120]] += 1

    def add_answer(self, completion: Completion, cost_usd: float | None) -> None:
        self.answers += 1
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens
        self.cost_usd += cost_usd or 0.0


@dataclass(frozen=True)
class Estimate:
    """A dry run: what would be sent, with upper bounds of tokens and cost (nothing is sent)."""

    items: int
    cached: int
    to_send: int
    input_tokens: int
    max_output_tokens: int
    max_cost_usd: float | None


def describe_error(error: BaseException, settings: ClientSettings) -> str:
    """A one-line reason for a request that got no answer (never containing a key)."""
    import openai

    retries = f"after {settings.max_retries} retries"
    if isinstance(error, openai.APITimeoutError):
        reason = f"timeout: no answer within {settings.timeout:g} s ({retries})"
    elif isinstance(error, openai.APIConnectionError):
        cause = error.__cause__ or error
        reason = f"connection error: {type(cause).__name__}: {cause} ({retries})"
    elif isinstance(error, openai.APIStatusError):
        message = re.sub(r"^Error code: \d+ - ", "", str(error.message))
        retryable = error.status_code in (408, 409, 429) or error.status_code >= 500
        reason = f"HTTP {error.status_code}: {message}" + (f" ({retries})" if retryable else "")
    elif isinstance(error, MalformedResponseError):
        reason = f"malformed response: {error} ({retries})"
    else:
        reason = f"{type(error).__name__}: {error}"
    return redact(" ".join(reason.split()))[:500]


def is_fatal_error(error: BaseException) -> bool:
    import openai

    return isinstance(error, (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError))


class Engine:
    """Runs requests through the endpoint with a response store, a budget and live progress.

    Args:
        store: the run directory's response store.
        settings: see :class:`EngineSettings`.
        prices: the price table for cost estimates (default: :class:`~syntriever_hf.llm.pricing.PriceTable`).
    """

    def __init__(self, store: ResponseStore, settings: EngineSettings, *, prices: PriceTable | None = None) -> None:
        self.store = store
        self.settings = settings
        self.prices = prices or PriceTable()
        self.budget = Budget(
            self.prices, max_cost=settings.max_cost, max_requests=settings.max_requests, already=store.totals(),
            batch=settings.mode == "batch",
        )
        self._run_failures: dict[str, str] = {}

    # -- results ---------------------------------------------------------------------------------------------

    def outcome(self, request: ChatRequest, parse: Parser) -> Outcome:
        """The final outcome of a request after a run (from the store; never sends anything)."""
        state = resolve(request.key, self.store.attempts(request.key), parse, self.settings.max_attempts)
        if state.status != "pending":
            return state
        reason = self._run_failures.get(request.key) or state.reason or "not requested in this run"
        return Outcome(request.key, "failed", reason=reason, answers=state.answers)

    def cost(self, request: ChatRequest, completion: Completion) -> float | None:
        batch = self.settings.mode == "batch"
        return self.prices.cost(request.model, completion.prompt_tokens, completion.completion_tokens, batch=batch)

    # -- dry run ---------------------------------------------------------------------------------------------

    def estimate(self, requests: Iterable[ChatRequest], parse: Parser) -> Estimate:
        """Count what a run would send and bound its tokens and cost; sends nothing."""
        seen: set[str] = set()
        items = cached = to_send = input_tokens = output_tokens = 0
        cost: float | None = 0.0
        for request in requests:
            if request.key in seen:
                continue
            seen.add(request.key)
            items += 1
            state = resolve(request.key, self.store.attempts(request.key), parse, self.settings.max_attempts)
            if state.status != "pending":
                cached += 1
                continue
            to_send += 1
            input_tokens += request.estimated_input_tokens()
            output_tokens += request.max_output_tokens or 0
            worst = self.prices.cost(request.model, request.estimated_input_tokens(),
                                     request.max_output_tokens or 0, batch=self.settings.mode == "batch")
            cost = None if cost is None or worst is None else cost + worst
        return Estimate(items, cached, to_send, input_tokens, output_tokens, cost)

    # -- running ---------------------------------------------------------------------------------------------

    def run(
        self, requests: Iterable[ChatRequest], parse: Parser, *, total: int | None = None, description: str = "llm"
    ) -> RunReport:
        """Bring every distinct request to a final outcome; blocking wrapper around :meth:`arun`."""
        return asyncio.run(self.arun(requests, parse, total=total, description=description))

    async def arun(
        self, requests: Iterable[ChatRequest], parse: Parser, *, total: int | None = None, description: str = "llm"
    ) -> RunReport:
        """Async version of :meth:`run`."""
        started = time.monotonic()
        report = RunReport()
        with ProgressReporter(total, description, enabled=self.settings.show_progress) as progress:
            client = make_async_client(self.settings.client)
            try:
                if self.settings.mode == "batch":
                    from syntriever_hf.llm.batch import BatchRunner

                    await BatchRunner(self, client, progress, report).run(requests, parse)
                else:
                    await _OnlineRun(self, client, progress, report).run(requests, parse)
            finally:
                await client.close()
        report.elapsed_s = time.monotonic() - started
        self._log_report(report, description)
        return report

    def record_run_failure(self, key: str, reason: str) -> None:
        """Remember why a request ended without a final stored state in this run."""
        self._run_failures[key] = reason

    @staticmethod
    def _log_report(report: RunReport, description: str) -> None:
        logger.info(
            "%s: %d item(s): %d succeeded (%d from the store), %d failed (%d not sent); %d request(s) sent, "
            "%d answer(s), %d+%d tokens, ~%.4f USD, %.1f s",
            description, report.items, report.succeeded, report.cached, report.failed, report.not_sent,
            report.requests_sent, report.answers, report.prompt_tokens, report.completion_tokens, report.cost_usd,
            report.elapsed_s,
        )
        for reason, count in report.failure_reasons.most_common(5):
            logger.warning("%s: %d failure(s): %s", description, count, reason)


class _OnlineRun:
    """One online run: ``concurrency`` workers pull requests from a shared iterator (memory flat in their number)."""

    def __init__(self, engine: Engine, client: AsyncOpenAI, progress: ProgressReporter, report: RunReport) -> None:
        self.engine = engine
        self.settings = engine.settings
        self.store = engine.store
        self.client = client
        self.progress = progress
        self.report = report
        self.limiter = RateLimiter(self.settings.requests_per_minute, self.settings.tokens_per_minute)
        self.fatal: BaseException | None = None
        self.seen: set[str] = set()

    async def run(self, requests: Iterable[ChatRequest], parse: Parser) -> None:
        iterator = iter(requests)
        workers = [self._worker(iterator, parse) for _ in range(self.settings.concurrency)]
        await asyncio.gather(*workers)
        if self.fatal is None:
            return
        if _is_handled(self.fatal):
            raise FatalEndpointError(describe_error(self.fatal, self.settings.client)) from None
        raise self.fatal

    async def _worker(self, iterator: Iterable[ChatRequest], parse: Parser) -> None:
        """Take requests until none is left or another worker hit an error that stops the run."""
        try:
            for request in iterator:
                if self.fatal is not None:
                    return
                if request.key not in self.seen:
                    self.seen.add(request.key)
                    await self._item(request, parse)
        except Exception as error:  # a bad request or a bug: stop all workers cleanly, then re-raise once
            self.fatal = self.fatal or error

    async def _item(self, request: ChatRequest, parse: Parser) -> None:
        self.engine.budget.check(request)
        outcome, cached = await self._complete(request, parse)
        if outcome.status == "failed" and outcome.reason:
            self.engine.record_run_failure(request.key, outcome.reason)
        self.report.add(outcome, cached=cached)
        self.progress.finished(failed=outcome.status == "failed")

    async def _complete(self, request: ChatRequest, parse: Parser) -> tuple[Outcome, bool]:
        """Resolve from the store, else send attempts until one parses or ``max_attempts`` are spent."""
        state = resolve(request.key, self.store.attempts(request.key), parse, self.settings.max_attempts)
        if state.status != "pending":
            return state, True
        answers = state.answers
        while True:
            reservation = await self.engine.budget.reserve(request)
            if reservation is None:
                return Outcome(request.key, "failed", reason=self.engine.budget.exhausted_reason), False
            completion = await self._send_once(request, reservation)
            if isinstance(completion, Outcome):
                return completion, False
            answers += 1
            try:
                return Outcome(request.key, "succeeded", value=parse(completion), answers=answers), False
            except ParseError as error:
                if answers >= self.settings.max_attempts:
                    reason = f"unparseable after {answers} attempt(s): {error}"
                    return Outcome(request.key, "failed", reason=reason, answers=answers), False
                logger.debug("Unparseable answer to %s (attempt %d): %s", request.key[:12], answers, error)

    async def _send_once(self, request: ChatRequest, reservation: Reservation) -> Completion | Outcome:
        """One attempt: wait for the rate limits, send, commit the answer (or the failure) to the store."""
        await self.limiter.acquire(request.estimated_input_tokens() + (request.max_output_tokens or 0))
        attempt = self.store.next_attempt(request.key)
        started = time.time()
        self.progress.started()
        self.report.requests_sent += 1
        try:
            completion = await self._post(request)
        except Exception as error:
            if not _is_handled(error):
                raise
            if is_fatal_error(error):
                self.fatal = self.fatal or error
            reason = describe_error(error, self.settings.client)
            self.engine.budget.settle(reservation, None)
            self.store.record_error(request, attempt, reason, mode="online", started_at=started)
            self.progress.unanswered()
            return Outcome(request.key, "failed", reason=reason)
        cost = self.engine.cost(request, completion)
        self.engine.budget.settle(reservation, cost)
        self.store.record_answer(request, attempt, completion, cost_usd=cost, mode="online", started_at=started)
        self.progress.answered(completion.prompt_tokens + completion.completion_tokens, cost)
        self.report.add_answer(completion, cost)
        return completion

    async def _post(self, request: ChatRequest) -> Completion:
        """POST the body; the SDK retries HTTP-level failures, this loop retries malformed 200 bodies."""
        retries = self.settings.client.max_retries
        for retry in range(retries + 1):
            raw = await self.client.post("/chat/completions", cast_to=str, body=request.body())
            try:
                return completion_from_text(raw)
            except MalformedResponseError:
                if retry == retries:
                    raise
                delay = min(0.5 * 2**retry, 8.0) * (1 - 0.25 * random.random())
                logger.debug("Malformed response body for %s; retrying in %.2f s", request.key[:12], delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")


def _is_handled(error: BaseException) -> bool:
    import openai

    return isinstance(error, (openai.OpenAIError, MalformedResponseError))
