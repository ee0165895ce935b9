"""Which failures are retried, how long to wait, and one policy that runs any API call under it.

Every call goes through its budget's limiter (see limiter.py). A 429 feeds the limiter back, and
the limiter holds every worker of the budget (for Retry-After, or while it probes when the server
does not say), so the retry itself waits no more. Other retryable failures back off exponentially
with jitter. Never retried: 400, 401, 403, 404 and other 4xx answers.

A 429 is flow control, not a failure of the key: it does not use up `max_attempts` (which counts
failed attempts). The deadline bounds every unit of work, waits included: a backoff that would
end past it is not waited for, and a wait known to end past it (a long Retry-After) fails the
unit at once, saying why. When the run stops (SIGINT/SIGTERM), a request in flight is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import NoReturn, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception
from tenacity.stop import stop_base
from tenacity.wait import wait_exponential_jitter

from reconcile.apply.limiter import AdaptiveRateLimiter, Budget, Limits, Permit, WaitTooLong
from reconcile.errors import Interrupted, RateLimitedError, ReconcileError, ServerError, TransportError
from reconcile.log import VERBOSE

T = TypeVar("T")
log = logging.getLogger(__name__)
Backoff = Callable[[RetryCallState], float]
Clock = Callable[[], float]
RETRYABLE_STATUS = frozenset({500, 502, 503, 504, *range(520, 531)})
# 0.5 s, 1 s, 2 s, ... up to 30 s, plus up to 0.5 s of jitter so workers don't retry in step.
EXPONENTIAL_BACKOFF: Backoff = wait_exponential_jitter(multiplier=0.5, max=30.0, jitter=0.5)


def is_retryable(error: BaseException) -> bool:
    """429, 5xx (500-504, 520-530) and transport failures."""
    if isinstance(error, RateLimitedError | TransportError):
        return True
    return isinstance(error, ServerError) and error.status in RETRYABLE_STATUS


def retry_wait(backoff: Backoff) -> Backoff:
    """After a 429 the budget's limiter holds every worker as long as needed, so wait no more here."""

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        return 0.0 if isinstance(error, RateLimitedError) else float(backoff(state))

    return wait


class GaveUp(ReconcileError):
    """A retryable failure that is retried no more; the message says after how many attempts and why."""

    def __init__(self, message: str, last: ReconcileError | None) -> None:
        super().__init__(message)
        self.last = last  # the last failure, if a request was sent


class InterruptedInFlight(Interrupted):
    """The run stopped while a request was in flight: it was cancelled, its effect is unknown."""


class _Stopped(Exception):
    """The run stopped before the awaited work finished (the work was cancelled)."""


class stop_when(stop_base):
    """Stop retrying once a condition on the retry state holds."""

    def __init__(self, condition: Callable[[RetryCallState], bool]) -> None:
        self._condition = condition

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._condition(retry_state)


@dataclass
class Tally:
    """Requests sent for one unit of work (a key, the search), how many of them failed other
    than by being throttled, and the last failure."""

    attempts: int = 0
    failures: int = 0
    last: ReconcileError | None = None


def _describe(error: BaseException) -> str:
    if isinstance(error, RateLimitedError):
        asked = f"Retry-After {error.retry_after:g} s" if error.retry_after is not None else "no Retry-After"
        return f"{error} ({asked})"
    return str(error)


class RetryPolicy:
    def __init__(  # noqa: PLR0913 (keyword-only settings, with defaults)
        self,
        limits: Limits,
        *,
        max_attempts: int,
        deadline: float,
        stop: asyncio.Event,
        cancel: asyncio.Event | None = None,
        request_timeout: float | None = None,
        backoff: Backoff = EXPONENTIAL_BACKOFF,
        clock: Clock = time.monotonic,
    ) -> None:
        self.limits = limits
        self.max_attempts = max_attempts
        self.deadline = deadline
        self.stop = stop  # send nothing more
        self.cancel = cancel or stop  # and cancel what is in flight (a signal, not a fatal answer)
        self.request_timeout = request_timeout
        self._wait = retry_wait(backoff)
        self._clock = clock

    async def _sleep(self, seconds: float) -> None:
        """Backoff that ends early when the run is stopping."""
        if seconds > 0 and not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), timeout=seconds)

    async def _until(self, event: asyncio.Event, start: Callable[[], Awaitable[T]]) -> T:
        """The work's result; _Stopped, after cancelling the work, when `event` is set first."""
        if event.is_set():
            raise _Stopped
        work = asyncio.ensure_future(start())
        stopping = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            work.cancel()
            raise
        finally:
            stopping.cancel()
        if work.done():
            return work.result()
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await work
        raise _Stopped

    def _gave_up(self, tally: Tally, why: str) -> GaveUp:
        timeout = ""
        if isinstance(tally.last, TransportError) and self.request_timeout is not None:
            timeout = f"; each attempt times out after {self.request_timeout:g} s (--timeout)"
        if tally.last is None:
            return GaveUp(f"not sent: {why}", None)
        return GaveUp(f"{_describe(tally.last)}; gave up after {tally.attempts} attempt(s): {why}{timeout}", tally.last)

    async def _acquire(self, limiter: AdaptiveRateLimiter, tally: Tally, deadline: float) -> Permit:
        """A permit from the budget's limiter, waiting no later than the deadline."""
        left = deadline - self._clock()
        try:
            return await self._until(self.stop, lambda: asyncio.wait_for(limiter.acquire(deadline), timeout=left))
        except _Stopped:
            raise Interrupted("not sent: the run is stopping") from None
        except WaitTooLong as error:
            raise self._gave_up(tally, f"{error.why}, past the key deadline of {self.deadline:g} s") from None
        except TimeoutError:
            why = f"the key deadline of {self.deadline:g} s passed while waiting to send ({limiter.holding()})"
            raise self._gave_up(tally, why) from None

    async def _attempt(self, operation: Callable[[], Awaitable[T]], budget: Budget, tally: Tally, deadline: float) -> T:
        limiter = self.limits[budget]
        permit = await self._acquire(limiter, tally, deadline)
        tally.attempts += 1
        try:
            result = await self._until(self.cancel, operation)
        except RateLimitedError as error:
            self.limits.on_throttle(budget, permit, error.retry_after)
            tally.last = error
            raise
        except _Stopped:
            limiter.on_other(permit)
            raise InterruptedInFlight("interrupted in flight: cancelled before the answer came") from None
        except BaseException as error:
            limiter.on_other(permit)
            if isinstance(error, ReconcileError):
                tally.failures += 1
                tally.last = error
            raise
        limiter.on_success(permit)
        return result

    def _give_up(self, tally: Tally) -> Callable[[RetryCallState], NoReturn]:
        """When tenacity stops: the last error as it was if the run is stopping, else GaveUp saying why."""

        def give_up(state: RetryCallState) -> NoReturn:
            error = state.outcome.exception() if state.outcome else None
            if self.stop.is_set() and error is not None:
                raise error
            if tally.failures >= self.max_attempts:
                raise self._gave_up(tally, f"--max-attempts {self.max_attempts}")
            raise self._gave_up(tally, f"the next attempt would start past the key deadline of {self.deadline:g} s")

        return give_up

    def _log_retry(self, what: str, tally: Tally) -> Callable[[RetryCallState], None]:
        def log_retry(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            when = "when the limiter lets it go" if isinstance(error, RateLimitedError) else f"in {wait:.1f} s"
            log.log(
                VERBOSE,
                "%s: attempt %d: %s; retrying %s (%d of %d failed attempts allowed)",
                what,
                tally.attempts,
                _describe(error) if error else "?",
                when,
                tally.failures,
                self.max_attempts,
            )

        return log_retry

    async def call(
        self, operation: Callable[[], Awaitable[T]], tally: Tally, *, budget: Budget, what: str = "request"
    ) -> T:
        """Run `operation` under the policy, within `budget`; `what` names it in the log lines."""
        deadline = self._clock() + self.deadline
        retrying = AsyncRetrying(
            stop=(
                stop_when(lambda _: tally.failures >= self.max_attempts)
                | stop_when(lambda state: self._clock() + state.upcoming_sleep >= deadline)
                | stop_when(lambda _: self.stop.is_set())
            ),
            wait=self._wait,
            retry=retry_if_exception(is_retryable),
            sleep=self._sleep,
            before_sleep=self._log_retry(what, tally),
            retry_error_callback=self._give_up(tally),
        )
        async for attempt in retrying:
            with attempt:
                return await self._attempt(operation, budget, tally, deadline)
        raise AssertionError("tenacity ends with a result or an exception")  # pragma: no cover
