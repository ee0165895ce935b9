"""The adaptive limiter on a fake clock (no sleeping) and the retry policy with scripted failures."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from tenacity import RetryCallState

from reconcile.apply.executor import Progress
from reconcile.apply.limiter import DECREASE_FACTOR, AdaptiveRateLimiter
from reconcile.apply.progress import describe, report_progress
from reconcile.apply.retry import RetryPolicy, Tally, is_retryable, retry_wait
from reconcile.errors import (
    ApiError,
    AuthenticationError,
    Interrupted,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransportError,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def limiter(rate: float, clock: FakeClock, **kwargs: Any) -> AdaptiveRateLimiter:
    return AdaptiveRateLimiter(rate, clock=clock, sleep=clock.sleep, **kwargs)


def test_tokens_pace_requests_at_the_rate() -> None:
    clock = FakeClock()
    bucket = limiter(10, clock)

    async def take(n: int) -> None:
        for _ in range(n):
            await bucket.acquire()

    asyncio.run(take(11))
    assert clock.now == pytest.approx(1.0)  # the first is free, then one every 0.1 s


def test_burst_is_bounded_after_idle_time() -> None:
    clock = FakeClock()
    bucket = limiter(30, clock, burst_seconds=0.1)  # 3 tokens
    clock.now = 100.0  # a long idle period must not bank 3000 tokens
    assert [bucket.delay() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.delay() == pytest.approx(1 / 30)


def test_sleep_overshoot_is_not_lost() -> None:
    """Sleeps wake late; tokens that accrue meanwhile must still be spent, or the rate sags."""
    clock = FakeClock()
    bucket = limiter(100, clock)

    async def oversleeping(seconds: float) -> None:
        clock.now += seconds * 1.2  # every wake-up 20% late

    bucket._sleep = oversleeping

    async def take(n: int) -> None:
        for _ in range(n):
            await bucket.acquire()

    asyncio.run(take(1001))
    assert 1000 / clock.now > 97  # with a one-token bucket this is 100 / 1.2 = 83/s


def test_throttle_lowers_the_rate_once_per_cooldown_and_retry_after_pauses_everyone() -> None:
    clock = FakeClock()
    bucket = limiter(100, clock)
    bucket.on_throttle(retry_after=2)
    bucket.on_throttle(retry_after=2)  # the same overload, seen by another in-flight request
    assert bucket.rate == pytest.approx(100 * DECREASE_FACTOR)
    assert bucket.stats.throttles == 2 and bucket.stats.decreases == 1
    assert bucket.delay() == pytest.approx(2.0)

    async def two_workers() -> None:
        await asyncio.gather(bucket.acquire(), bucket.acquire())

    asyncio.run(two_workers())
    assert clock.now >= 2.0  # neither worker went before Retry-After had passed
    clock.now += 1.5  # past the cooldown: a new overload lowers the rate again
    bucket.on_throttle(retry_after=None)
    assert bucket.rate == pytest.approx(100 * DECREASE_FACTOR**2)


def test_rate_recovers_gradually_and_never_exceeds_the_ceiling() -> None:
    clock = FakeClock()
    bucket = limiter(100, clock)
    bucket.on_throttle(retry_after=None)
    low = bucket.rate
    rates = []
    for _ in range(200):  # 20 s of successes, one every 0.1 s
        clock.now += 0.1
        bucket.on_success()
        rates.append(bucket.rate)
    assert rates[0] < 100 and rates[0] == pytest.approx(low + 0.5)  # 5% of the ceiling per second
    assert rates == sorted(rates) and max(rates) == 100


def test_min_rate_floor() -> None:
    clock = FakeClock()
    bucket = limiter(2, clock, min_rate=0.5, cooldown=0)
    for _ in range(20):
        bucket.on_throttle(None)
    assert bucket.rate == 0.5


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (RateLimitedError(429, "x"), True),
        (ServerError(500, "x"), True),
        (ServerError(502, "x"), True),
        (ServerError(503, "x"), True),
        (ServerError(504, "x"), True),
        (ServerError(520, "x"), True),
        (ServerError(530, "x"), True),
        (ServerError(501, "x"), False),
        (TransportError("x", ambiguous=True), True),
        (TransportError("x", ambiguous=False), True),
        (ApiError(400, "x"), False),
        (AuthenticationError(401, "x"), False),
        (AuthenticationError(403, "x"), False),
        (NotFoundError(404, "x"), False),
    ],
)
def test_what_is_retried(error: Exception, retryable: bool) -> None:
    assert is_retryable(error) is retryable


def test_wait_is_zero_after_retry_after_else_the_backoff() -> None:
    wait = retry_wait(lambda state: 7.0)

    def state_after(error: Exception) -> RetryCallState:
        state = RetryCallState(None, None, (), {})
        state.set_exception((type(error), error, None))
        return state

    assert wait(state_after(RateLimitedError(429, "x", retry_after=3))) == 0.0
    assert wait(state_after(RateLimitedError(429, "x"))) == 7.0
    assert wait(state_after(ServerError(503, "x"))) == 7.0


def scripted(outcomes: Sequence[Exception | str]) -> tuple[Callable[[], Any], list[int]]:
    calls = [0]

    async def operation() -> str:
        outcome = outcomes[min(calls[0], len(outcomes) - 1)]
        calls[0] += 1
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return operation, calls


def run_policy(
    outcomes: Sequence[Exception | str], max_attempts: int = 6, stop: bool = False
) -> tuple[Any, Tally, AdaptiveRateLimiter]:
    clock = FakeClock()
    bucket = limiter(1000, clock)

    async def go() -> Any:
        event = asyncio.Event()
        if stop:
            event.set()
        policy = RetryPolicy(bucket, max_attempts=max_attempts, deadline=60, stop=event, backoff=lambda s: 0.0)
        operation, _ = scripted(outcomes)
        tally = Tally()
        try:
            return await policy.call(operation, tally), tally
        except Exception as error:
            return error, tally

    result, tally = asyncio.run(go())
    return result, tally, bucket


def test_retries_until_success() -> None:
    result, tally, _ = run_policy([ServerError(503, "x"), TransportError("t", ambiguous=True), "ok"])
    assert (result, tally.attempts) == ("ok", 3)


@pytest.mark.parametrize("error", [ApiError(400, "bad"), AuthenticationError(401, "no"), NotFoundError(404, "gone")])
def test_never_retries_client_errors(error: Exception) -> None:
    result, tally, _ = run_policy([error, "ok"])
    assert result is error and tally.attempts == 1


def test_attempts_are_bounded() -> None:
    result, tally, _ = run_policy([ServerError(500, "x")], max_attempts=4)
    assert isinstance(result, ServerError) and tally.attempts == 4


def test_throttling_does_not_use_up_attempts() -> None:
    throttled = [RateLimitedError(429, "x", retry_after=None)] * 5
    result, tally, _ = run_policy([*throttled, ServerError(503, "x"), "ok"], max_attempts=2)
    assert (result, tally.attempts, tally.failures) == ("ok", 7, 1)


def test_429_feeds_the_limiter() -> None:
    result, tally, bucket = run_policy([RateLimitedError(429, "x", retry_after=2), "ok"])
    assert (result, tally.attempts) == ("ok", 2)
    assert bucket.stats.throttles == 1 and bucket.stats.paused_seconds == pytest.approx(2)


def test_a_stopping_run_sends_nothing_more() -> None:
    result, tally, _ = run_policy(["ok"], stop=True)
    assert isinstance(result, Interrupted) and tally.attempts == 0


def test_stop_interrupts_a_long_retry_after_pause() -> None:
    async def go() -> tuple[Any, float]:
        bucket = AdaptiveRateLimiter(100)
        bucket.on_throttle(retry_after=60)  # Descope blocks for up to a minute
        stop = asyncio.Event()
        policy = RetryPolicy(bucket, max_attempts=3, deadline=60, stop=stop)
        loop = asyncio.get_running_loop()
        loop.call_later(0.1, stop.set)
        started = loop.time()
        operation, _ = scripted(["ok"])
        try:
            await policy.call(operation, Tally())
        except Interrupted as error:
            return error, loop.time() - started
        return None, 0.0

    error, waited = asyncio.run(go())
    assert isinstance(error, Interrupted) and waited < 5


def test_progress_describes_rate_eta_and_retries() -> None:
    progress = Progress(total=100, started=0.0, done=25, failed=1, retries=4)
    assert describe(progress, now=5.0) == "25/100 keys, 5.0/s, ETA 15s, 4 retries, 1 not updated"


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_is_one_live_line() -> None:
    stream = FakeTerminal()

    async def go() -> None:
        task = asyncio.create_task(report_progress(Progress(total=3, done=1), stream=stream, interval=0.01))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
    text = stream.getvalue()
    assert "\n" not in text and text.count("\r\x1b[2K1/3 keys") >= 2
    assert text.endswith("\r\x1b[2K")  # the line is cleared when the apply ends
