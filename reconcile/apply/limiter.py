"""One adaptive token bucket shared by every worker of a run.

- Tokens refill at `rate` per second; the bucket holds `burst_seconds` worth of them (at least
  one). Bigger would send bursts a server's own bucket must absorb; a bucket of exactly one token
  loses every sleep's overshoot for good (measured: 81/s achieved at a 100/s setting).
- Throttled (a 429): the rate drops multiplicatively (at most once per `cooldown`, since the
  in-flight requests of one overload all come back throttled), and when the server says
  `Retry-After`, every worker waits that long, not only the one that was told.
- Not throttled: the rate climbs back additively towards the configured ceiling, which it never
  exceeds (`--rate` is a promise to the operator).

Like AWS SDKs' adaptive retry mode, in a simpler AIMD form.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

DECREASE_FACTOR = 0.7
# Refill arithmetic can leave 0.9999999… tokens; a wait for the rest may be too small to move the clock.
_EPSILON = 1e-9
# Per second of unthrottled sending, the rate regains this share of its ceiling.
RECOVERY_SHARE_PER_SECOND = 0.05


@dataclass
class LimiterStats:
    throttles: int = 0
    decreases: int = 0
    paused_seconds: float = 0.0


class AdaptiveRateLimiter:
    def __init__(
        self,
        rate: float,
        *,
        min_rate: float = 0.5,
        burst_seconds: float = 0.1,
        cooldown: float = 1.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.ceiling = rate
        self.rate = rate
        self.min_rate = min(min_rate, rate)
        self.burst_seconds = burst_seconds
        self.cooldown = cooldown
        self.stats = LimiterStats()
        self._clock = clock
        self._sleep = sleep
        self._tokens = 1.0
        self._refilled_at = clock()
        self._paused_until = 0.0
        self._last_decrease = -cooldown
        self._last_success = clock()
        self._lock = asyncio.Lock()

    @property
    def burst(self) -> float:
        return max(1.0, self.rate * self.burst_seconds)

    def _refill(self, now: float) -> None:
        self._tokens = min(self.burst, self._tokens + (now - self._refilled_at) * self.rate)
        self._refilled_at = now

    def delay(self) -> float:
        """Seconds until a request may go, or 0 (taking its token). Pure except for the clock."""
        now = self._clock()
        if now < self._paused_until:
            return self._paused_until - now
        self._refill(now)
        if self._tokens >= 1.0 - _EPSILON:
            self._tokens = max(0.0, self._tokens - 1.0)
            return 0.0
        return (1.0 - self._tokens) / self.rate

    async def acquire(self) -> None:
        """Wait for a token. Waiters are served in turn (the lock is fair in asyncio)."""
        async with self._lock:
            while (wait := self.delay()) > 0:
                await self._sleep(wait)

    def on_success(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._last_success)
        self._last_success = now
        if self.rate < self.ceiling:
            self._refill(now)  # account tokens at the old rate before changing it
            self.rate = min(self.ceiling, self.rate + self.ceiling * RECOVERY_SHARE_PER_SECOND * min(elapsed, 1.0))

    def on_throttle(self, retry_after: float | None) -> None:
        now = self._clock()
        self.stats.throttles += 1
        self._refill(now)
        self._tokens = 0.0
        self._last_success = now
        if now - self._last_decrease >= self.cooldown:
            self._last_decrease = now
            self.stats.decreases += 1
            self.rate = max(self.min_rate, self.rate * DECREASE_FACTOR)
        if retry_after is not None and retry_after > 0:
            until = now + retry_after
            if until > self._paused_until:
                self.stats.paused_seconds += until - max(now, self._paused_until)
                self._paused_until = until
