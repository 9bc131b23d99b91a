"""Live progress of a run: done/total and ETA (tqdm), in flight, tokens, estimated cost and failures."""

from __future__ import annotations

import logging
from types import TracebackType

from tqdm.auto import tqdm

__all__ = ["ProgressReporter"]

logger = logging.getLogger(__name__)


class ProgressReporter:
    """A tqdm bar whose postfix shows requests in flight, tokens, estimated cost and failures so far.

    Args:
        total: items to finish (``None`` when unknown).
        description: the bar's label.
        enabled: ``False`` keeps the counters but draws nothing.
    """

    def __init__(self, total: int | None, description: str, *, enabled: bool = True) -> None:
        self.in_flight = 0
        self.tokens = 0
        self.cost_usd = 0.0
        self.failed = 0
        self.done = 0
        self._bar = tqdm(total=total, desc=description, unit="req", disable=not enabled, dynamic_ncols=True)

    def started(self) -> None:
        self.in_flight += 1
        self._refresh()

    def answered(self, tokens: int, cost_usd: float | None) -> None:
        """One request came back (an item may need several)."""
        self.in_flight -= 1
        self.tokens += tokens
        self.cost_usd += cost_usd or 0.0
        self._refresh()

    def unanswered(self) -> None:
        """One request ended without an answer."""
        self.in_flight -= 1
        self._refresh()

    def finished(self, *, failed: bool) -> None:
        """One item reached its final state (succeeded, or failed with a reason)."""
        self.done += 1
        self.failed += int(failed)
        self._bar.update(1)
        self._refresh()

    def _refresh(self) -> None:
        self._bar.set_postfix(
            in_flight=self.in_flight, tokens=self.tokens, cost=f"${self.cost_usd:.4f}", failed=self.failed,
            refresh=False,
        )

    def close(self) -> None:
        self._bar.close()

    def __enter__(self) -> ProgressReporter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
