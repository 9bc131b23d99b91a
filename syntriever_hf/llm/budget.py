"""Spending limits: refuse to start a request that could pass ``max_cost`` or ``max_requests``.

Limits apply to the whole run directory, across reruns: the budget starts from what the store has already
recorded, so resuming a killed run cannot spend more than the limit in total. The cost of a request is bounded
before it is sent by its worst case (a high estimate of the prompt's tokens plus ``max_tokens`` of answer); once
one request is refused, every later one is refused too, so a run stops cleanly instead of trickling on.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from syntriever_hf.llm.pricing import PriceTable
from syntriever_hf.llm.request import ChatRequest
from syntriever_hf.llm.store import StoreTotals

__all__ = ["Budget", "Reservation"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reservation:
    """The worst-case cost held for one request in flight."""

    worst_case_usd: float


class Budget:
    """Counts requests and estimated cost against optional limits.

    Args:
        prices: the price table used for estimates.
        max_cost: USD that the run directory may spend in total (``None``: unlimited).
        max_requests: requests that the run directory may send in total (``None``: unlimited).
        already: what the store recorded before this run (requests and cost count against the limits).
        batch: whether requests go through the Batch API (half price).
    """

    def __init__(
        self,
        prices: PriceTable,
        *,
        max_cost: float | None = None,
        max_requests: int | None = None,
        already: StoreTotals | None = None,
        batch: bool = False,
    ) -> None:
        if max_cost is not None and max_cost < 0:
            raise ValueError(f"max_cost must be >= 0 USD, got {max_cost}")
        if max_requests is not None and max_requests < 0:
            raise ValueError(f"max_requests must be >= 0, got {max_requests}")
        self.prices = prices
        self.max_cost = max_cost
        self.max_requests = max_requests
        self.batch = batch
        self.requests = already.requests if already else 0
        self.spent_usd = already.cost_usd if already else 0.0
        self.reserved_usd = 0.0
        self.exhausted_reason: str | None = None

    def check(self, request: ChatRequest) -> None:
        """Raise a ``ValueError`` naming the fix when ``max_cost`` cannot be enforced for this request."""
        if self.max_cost is None:
            return
        if self.prices.price(request.model) is None:
            raise ValueError(
                f"--max-cost needs a price for model {request.model!r}, which the price table lacks; pass "
                f"--prices FILE with an entry like {request.model}: {{input: 0.15, output: 0.60}} (USD per 1M tokens)"
            )
        if request.max_output_tokens is None:
            raise ValueError(
                "--max-cost needs an upper bound on every answer; set max_tokens (--max-tokens) in the sampling "
                "parameters"
            )

    def worst_case_usd(self, request: ChatRequest) -> float:
        """The most this request can cost (0 when the model has no price)."""
        output_tokens = request.max_output_tokens or 0
        cost = self.prices.cost(request.model, request.estimated_input_tokens(), output_tokens, batch=self.batch)
        return cost or 0.0

    def try_reserve(self, request: ChatRequest) -> Reservation | None:
        """Hold the worst-case cost of ``request``, or return ``None`` (and stay exhausted) if a limit would pass,
        counting what is in flight as spent (batch mode: nothing comes back before the batch ends)."""
        worst = self.worst_case_usd(request)
        if self._refused(worst, self.reserved_usd):
            return None
        return self._hold(worst)

    async def reserve(self, request: ChatRequest, *, poll_seconds: float = 0.05) -> Reservation | None:
        """Like :meth:`try_reserve`, but a request that only fails to fit because of requests in flight waits for
        them to settle (online mode); ``None`` once a limit would be passed even with nothing in flight."""
        worst = self.worst_case_usd(request)
        while not self._refused(worst, 0.0):
            if self.max_cost is None or self.spent_usd + self.reserved_usd + worst <= self.max_cost:
                return self._hold(worst)
            await asyncio.sleep(poll_seconds)
        return None

    def _refused(self, worst: float, in_flight: float) -> bool:
        if self.exhausted_reason is not None:
            return True
        if self.max_requests is not None and self.requests + 1 > self.max_requests:
            self._exhaust(f"--max-requests {self.max_requests} reached")
            return True
        if self.max_cost is not None and self.spent_usd + in_flight + worst > self.max_cost:
            self._exhaust(
                f"--max-cost {self.max_cost:.4f} USD would be passed (spent {self.spent_usd:.4f} USD, "
                f"next request up to {worst:.4f} USD)"
            )
            return True
        return False

    def _hold(self, worst: float) -> Reservation:
        self.requests += 1
        self.reserved_usd += worst
        return Reservation(worst)

    def settle(self, reservation: Reservation, cost_usd: float | None) -> None:
        """Replace a reservation by the request's actual estimated cost (``None``/0 when nothing was paid)."""
        self.reserved_usd = max(0.0, self.reserved_usd - reservation.worst_case_usd)
        self.spent_usd += cost_usd or 0.0

    def _exhaust(self, reason: str) -> None:
        self.exhausted_reason = f"not sent: {reason}"
        logger.warning("Budget: %s; no further requests are started", reason)
