"""Which failures are retried, how long to wait, and one policy that runs any API call under it.

Every call goes through the run's shared rate limiter; a 429 feeds the limiter back (it slows,
and honours Retry-After for every worker), other retryable failures back off exponentially
with jitter. Never retried: 400, 401, 403, 404 and other 4xx answers.

A 429 is flow control, not a failure of the key: it does not use up `max_attempts` (which counts
failed attempts), and the deadline bounds how long a key may be throttled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_delay
from tenacity.stop import stop_base
from tenacity.wait import wait_exponential_jitter

from reconcile.apply.limiter import AdaptiveRateLimiter
from reconcile.errors import Interrupted, RateLimitedError, ServerError, TransportError

T = TypeVar("T")
log = logging.getLogger(__name__)
Backoff = Callable[[RetryCallState], float]
RETRYABLE_STATUS = frozenset({500, 502, 503, 504, *range(520, 531)})
# 0.5 s, 1 s, 2 s, ... up to 30 s, plus up to 0.5 s of jitter so workers don't retry in step.
EXPONENTIAL_BACKOFF: Backoff = wait_exponential_jitter(multiplier=0.5, max=30.0, jitter=0.5)


def is_retryable(error: BaseException) -> bool:
    """429, 5xx (500-504, 520-530) and transport failures."""
    if isinstance(error, RateLimitedError | TransportError):
        return True
    return isinstance(error, ServerError) and error.status in RETRYABLE_STATUS


def retry_wait(backoff: Backoff) -> Backoff:
    """After a 429 with Retry-After the shared limiter holds every worker, so wait no more here."""

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RateLimitedError) and error.retry_after is not None:
            return 0.0
        return float(backoff(state))

    return wait


class stop_when(stop_base):
    """Stop retrying once a condition holds (here: the run must stop)."""

    def __init__(self, condition: Callable[[], bool]) -> None:
        self._condition = condition

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._condition()


@dataclass
class Tally:
    """Requests sent for one unit of work (a key, the search), and how many of them failed
    other than by being throttled."""

    attempts: int = 0
    failures: int = 0


class RetryPolicy:
    def __init__(
        self,
        limiter: AdaptiveRateLimiter,
        *,
        max_attempts: int,
        deadline: float,
        stop: asyncio.Event,
        backoff: Backoff = EXPONENTIAL_BACKOFF,
    ) -> None:
        self.limiter = limiter
        self.max_attempts = max_attempts
        self.deadline = deadline
        self.stop = stop
        self._wait = retry_wait(backoff)

    async def _sleep(self, seconds: float) -> None:
        """Backoff that ends early when the run is stopping."""
        if seconds > 0 and not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), timeout=seconds)

    async def _acquire(self) -> None:
        """A token from the shared limiter, or Interrupted when the run stops while waiting
        (a Retry-After pause can be long: Descope blocks for up to 60 s)."""
        if not self.stop.is_set():
            token = asyncio.ensure_future(self.limiter.acquire())
            stopping = asyncio.ensure_future(self.stop.wait())
            await asyncio.wait({token, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if token.done():
                return
            token.cancel()
        raise Interrupted("not sent: the run is stopping")

    async def call(self, operation: Callable[[], Awaitable[T]], tally: Tally, *, what: str = "request") -> T:
        """Run `operation` under the policy; `what` names it in the retry log lines."""

        def log_retry(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            log.debug("%s: %s; retry %d in %.1fs", what, error, state.attempt_number, wait)

        retrying = AsyncRetrying(
            stop=(
                stop_when(lambda: tally.failures >= self.max_attempts)
                | stop_after_delay(self.deadline)
                | stop_when(self.stop.is_set)
            ),
            wait=self._wait,
            retry=retry_if_exception(is_retryable),
            sleep=self._sleep,
            before_sleep=log_retry,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                await self._acquire()
                tally.attempts += 1
                try:
                    result = await operation()
                except RateLimitedError as error:
                    self.limiter.on_throttle(error.retry_after)
                    raise
                except BaseException:
                    tally.failures += 1
                    raise
                self.limiter.on_success()
                return result
        raise AssertionError("tenacity ends with a result or an exception")  # pragma: no cover
