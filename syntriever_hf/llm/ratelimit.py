"""Requests-per-minute and tokens-per-minute limits as async token buckets.

Each bucket refills continuously at ``limit / 60`` per second and holds at most one second's worth (at least one
request, or one request's tokens), the way providers enforce per-minute limits in shorter windows; so a run never
bursts a minute's quota at once.
"""

from __future__ import annotations

import asyncio
import logging
import time

__all__ = ["RateLimiter", "TokenBucket"]

logger = logging.getLogger(__name__)


class TokenBucket:
    """An async token bucket: ``acquire(n)`` waits until ``n`` units fit in the per-minute rate."""

    def __init__(self, per_minute: float) -> None:
        if per_minute <= 0:
            raise ValueError(f"a per-minute limit must be > 0, got {per_minute}")
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)
        self._level = self.capacity
        self._updated = time.monotonic()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self._level = min(self.capacity, self._level + (now - self._updated) * self.rate)
        self._updated = now

    async def acquire(self, amount: float = 1.0) -> None:
        """Wait until ``amount`` units are available (an amount above capacity waits for a full bucket)."""
        async with self._lock:
            needed = min(amount, self.capacity)
            self._refill()
            while self._level < needed:
                await asyncio.sleep((needed - self._level) / self.rate)
                self._refill()
            self._level -= amount


class RateLimiter:
    """Optional requests/min and tokens/min limits; ``acquire(tokens)`` waits for both."""

    def __init__(self, requests_per_minute: float | None = None, tokens_per_minute: float | None = None) -> None:
        self.requests = TokenBucket(requests_per_minute) if requests_per_minute else None
        self.tokens = TokenBucket(tokens_per_minute) if tokens_per_minute else None

    async def acquire(self, tokens: int) -> None:
        if self.requests is not None:
            await self.requests.acquire(1)
        if self.tokens is not None:
            await self.tokens.acquire(tokens)
