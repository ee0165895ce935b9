"""The adaptive limiter on a fake clock (no sleeping) and the retry policy with scripted failures."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from tenacity import RetryCallState

from reconcile.apply.executor import Progress
from reconcile.apply.limiter import (
    AUDIT_SEARCH_WINDOW,
    DECREASE_FACTOR,
    FIRST_PROBE_SECONDS,
    PROBE_GROWTH,
    WINDOW_MARGIN_SECONDS,
    AdaptiveRateLimiter,
    Budget,
    Limits,
    Permit,
)
from reconcile.apply.progress import describe, report_progress
from reconcile.apply.retry import GaveUp, InterruptedInFlight, RetryPolicy, Tally, is_retryable, retry_wait
from reconcile.errors import (
    ApiError,
    AuthenticationError,
    Interrupted,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from reconcile.log import VERBOSE


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


def delay(bucket: AdaptiveRateLimiter) -> float:
    """Seconds until a request may go, or 0 (taking its permit); inf while a probe is out."""
    taken = bucket.take()
    return 0.0 if isinstance(taken, Permit) else float("inf") if taken is None else taken


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
    assert [delay(bucket) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert delay(bucket) == pytest.approx(1 / 30)


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
    bucket.on_throttle(Permit(), retry_after=2)
    bucket.on_throttle(Permit(), retry_after=2)  # the same overload, seen by another in-flight request
    assert bucket.rate == pytest.approx(100 * DECREASE_FACTOR)
    assert bucket.stats.throttles == 2 and bucket.stats.decreases == 1
    assert delay(bucket) == pytest.approx(2.0)

    async def two_workers() -> None:
        await asyncio.gather(bucket.acquire(), bucket.acquire())

    asyncio.run(two_workers())
    assert clock.now >= 2.0  # neither worker went before Retry-After had passed
    clock.now += 1.5  # past the cooldown: a new overload lowers the rate again
    bucket.on_throttle(Permit(), retry_after=1)
    assert bucket.rate == pytest.approx(100 * DECREASE_FACTOR**2)


def test_rate_recovers_gradually_and_never_exceeds_the_ceiling() -> None:
    clock = FakeClock()
    bucket = limiter(100, clock)
    bucket.on_throttle(Permit(), retry_after=0.05)
    low = bucket.rate
    rates = []
    for _ in range(200):  # 20 s of successes, one every 0.1 s
        clock.now += 0.1
        bucket.on_success(Permit())
        rates.append(bucket.rate)
    assert rates[0] < 100 and rates[0] == pytest.approx(low + 0.5)  # 5% of the ceiling per second
    assert rates == sorted(rates) and max(rates) == 100


def test_min_rate_floor() -> None:
    clock = FakeClock()
    bucket = limiter(2, clock, min_rate=0.5, cooldown=0)
    for _ in range(20):
        bucket.on_throttle(Permit(), 0.1)
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


def test_no_backoff_after_a_429_the_limiter_waits_instead() -> None:
    wait = retry_wait(lambda state: 7.0)

    def state_after(error: Exception) -> RetryCallState:
        state = RetryCallState(None, None, (), {})
        state.set_exception((type(error), error, None))
        return state

    assert wait(state_after(RateLimitedError(429, "x", retry_after=3))) == 0.0
    assert wait(state_after(RateLimitedError(429, "x"))) == 0.0
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
    outcomes: Sequence[Exception | str],
    max_attempts: int = 6,
    stop: bool = False,
    deadline: float = 60,
    backoff: float = 0.0,
    clock: FakeClock | None = None,
) -> tuple[Any, Tally, AdaptiveRateLimiter]:
    clock = clock or FakeClock()
    limits = Limits(1000, clock=clock, sleep=clock.sleep)

    async def go() -> Any:
        event = asyncio.Event()
        if stop:
            event.set()
        policy = RetryPolicy(
            limits,
            max_attempts=max_attempts,
            deadline=deadline,
            stop=event,
            request_timeout=30,
            backoff=lambda s: backoff,
            clock=clock,
        )
        policy._sleep = clock.sleep  # type: ignore[method-assign]
        operation, _ = scripted(outcomes)
        tally = Tally()
        try:
            return await policy.call(operation, tally, budget=Budget.WRITE), tally
        except Exception as error:
            return error, tally

    result, tally = asyncio.run(go())
    return result, tally, limits[Budget.WRITE]


def test_retries_until_success() -> None:
    result, tally, _ = run_policy([ServerError(503, "x"), TransportError("t", ambiguous=True), "ok"])
    assert (result, tally.attempts) == ("ok", 3)


@pytest.mark.parametrize("error", [ApiError(400, "bad"), AuthenticationError(401, "no"), NotFoundError(404, "gone")])
def test_never_retries_client_errors(error: Exception) -> None:
    result, tally, _ = run_policy([error, "ok"])
    assert result is error and tally.attempts == 1


def test_attempts_are_bounded_and_the_final_error_says_so() -> None:
    result, tally, _ = run_policy([ServerError(500, "boom")], max_attempts=4)
    assert isinstance(result, GaveUp) and isinstance(result.last, ServerError) and tally.attempts == 4
    assert str(result) == "boom; gave up after 4 attempt(s): --max-attempts 4"


def test_a_timed_out_request_names_the_request_timeout() -> None:
    result, _, _ = run_policy(
        [TransportError("POST /x: no complete answer: timed out", ambiguous=True)], max_attempts=2
    )
    assert str(result).endswith(
        "gave up after 2 attempt(s): --max-attempts 2; each attempt times out after 30 s (--timeout)"
    )


def test_backoff_never_waits_past_the_deadline() -> None:
    clock = FakeClock()
    result, tally, _ = run_policy([ServerError(503, "busy")], deadline=25, backoff=10, clock=clock)
    assert isinstance(result, GaveUp) and tally.attempts == 3  # at 0, 10 and 20 s: a fourth would start at 30
    assert clock.now == pytest.approx(20)
    assert "gave up after 3 attempt(s): the next attempt would start past the key deadline of 25 s" in str(result)


def test_a_retry_after_past_the_deadline_fails_at_once() -> None:
    clock = FakeClock()
    result, tally, bucket = run_policy(
        [RateLimitedError(429, "HTTP 429", retry_after=120), "ok"], deadline=5, clock=clock
    )
    assert isinstance(result, GaveUp) and tally.attempts == 1 and clock.now < 1
    assert str(result) == (
        "HTTP 429 (Retry-After 120 s); gave up after 1 attempt(s): "
        "the server asked to wait 120 s, past the key deadline of 5 s"
    )
    assert bucket.stats.paused_seconds == pytest.approx(120)  # the others are told too


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
        limits = Limits(100)
        limits.on_throttle(Budget.WRITE, Permit(), retry_after=60)  # Descope blocks for up to a minute
        stop = asyncio.Event()
        policy = RetryPolicy(limits, max_attempts=3, deadline=90, stop=stop)
        loop = asyncio.get_running_loop()
        loop.call_later(0.1, stop.set)
        started = loop.time()
        operation, _ = scripted(["ok"])
        try:
            await policy.call(operation, Tally(), budget=Budget.WRITE)
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


def test_a_429_without_retry_after_pauses_the_budget_and_probes_one_request_at_a_time() -> None:
    clock = FakeClock()
    bucket = limiter(100, clock)
    bucket.on_throttle(Permit(), retry_after=None)
    bucket.on_throttle(Permit(), retry_after=None)  # in flight before the block began: nothing more
    assert bucket.stats.blocks == 1 and bucket.stats.decreases == 1
    assert delay(bucket) == pytest.approx(FIRST_PROBE_SECONDS)
    clock.now = FIRST_PROBE_SECONDS
    probe = bucket.take()
    assert probe == Permit(probe=True)
    assert bucket.take() is None  # everyone else waits for the probe's answer
    bucket.on_throttle(Permit(probe=True), retry_after=None)
    assert bucket.rate == pytest.approx(100 * DECREASE_FACTOR)  # a refused probe cuts nothing
    assert delay(bucket) == pytest.approx(FIRST_PROBE_SECONDS * PROBE_GROWTH)  # growing intervals
    clock.now += FIRST_PROBE_SECONDS * PROBE_GROWTH
    assert bucket.take() == Permit(probe=True)
    bucket.on_success(Permit(probe=True))
    assert bucket.take() == Permit()  # through: every worker resumes


def blocked_server_run(bucket: AdaptiveRateLimiter, clock: FakeClock, block: float) -> int:
    """One block of `block` seconds, met by the limiter: the probes it took to get through."""
    started = clock.now
    bucket.on_throttle(Permit(), retry_after=None)
    probes = 0
    while True:
        taken = bucket.take()
        assert taken is not None
        if isinstance(taken, float):
            clock.now += taken
            continue
        probes += 1
        if clock.now - started < block:
            bucket.on_throttle(taken, retry_after=None)
        else:
            bucket.on_success(taken)
            return probes


@pytest.mark.parametrize("block", [10.0, 20.0, 21.0, 60.0])
def test_the_next_block_is_probed_from_what_the_last_one_taught(block: float) -> None:
    clock = FakeClock()
    bucket = limiter(100, clock)
    first_probes = blocked_server_run(bucket, clock, block)
    first_wait = clock.now
    assert first_probes <= 16 and first_wait <= block * PROBE_GROWTH  # overshoot bounded by the growth
    for _ in range(3):
        started = clock.now
        assert blocked_server_run(bucket, clock, block) <= 2  # the bracket's middle, else its end
        assert clock.now - started <= first_wait
    assert clock.now - started < block * 1.1  # the bracket narrows block after block


def test_retry_after_from_reads_or_writes_pauses_every_budget_audit_only_its_own() -> None:
    clock = FakeClock()
    limits = Limits(100, clock=clock, sleep=clock.sleep)
    limits.on_throttle(Budget.AUDIT, Permit(), retry_after=30)
    assert delay(limits[Budget.AUDIT]) == pytest.approx(30)
    assert delay(limits[Budget.READ]) == 0 and delay(limits[Budget.WRITE]) == 0
    limits.on_throttle(Budget.WRITE, Permit(), retry_after=60)  # the project's block: the caller as a whole
    assert [delay(limits[budget]) for budget in Budget] == [pytest.approx(60)] * 3
    assert "the server asked to wait 60 s" in limits[Budget.READ].holding()


def test_a_429_without_retry_after_slows_only_its_budget() -> None:
    clock = FakeClock()
    limits = Limits(100, clock=clock, sleep=clock.sleep)
    limits.on_throttle(Budget.WRITE, Permit(), retry_after=None)
    assert delay(limits[Budget.WRITE]) > 0 and limits[Budget.WRITE].rate < 100
    assert delay(limits[Budget.READ]) == 0 and limits[Budget.READ].rate == 100


def test_audit_search_budget_keeps_descopes_ten_a_minute() -> None:
    clock = FakeClock()
    audit = Limits(100, clock=clock, sleep=clock.sleep)[Budget.AUDIT]
    sent = []

    async def search(n: int) -> None:
        for _ in range(n):
            await audit.acquire()
            sent.append(clock.now)

    asyncio.run(search(25))
    for index in range(10, 25):  # any 60 s holds at most 10, with a margin for the trip to the server
        assert sent[index] - sent[index - 10] >= AUDIT_SEARCH_WINDOW.seconds
    assert sent[-1] < 2 * (AUDIT_SEARCH_WINDOW.seconds + WINDOW_MARGIN_SECONDS) + 1  # and no slower


def test_a_waiter_is_woken_when_the_probe_gets_through() -> None:
    async def go() -> float:
        bucket = AdaptiveRateLimiter(100)
        bucket.on_throttle(Permit(), retry_after=None)
        bucket._block.next_probe = time.monotonic()  # type: ignore[union-attr]
        probe = await bucket.acquire()
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, bucket.on_success, probe)
        started = loop.time()
        await bucket.acquire()
        return loop.time() - started

    assert asyncio.run(go()) < 0.5


def test_stop_cancels_the_request_in_flight() -> None:
    cancelled = []

    async def slow() -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return "late"

    async def go() -> tuple[BaseException | None, float, Tally]:
        stop = asyncio.Event()
        policy = RetryPolicy(Limits(100), max_attempts=3, deadline=60, stop=stop)
        loop = asyncio.get_running_loop()
        loop.call_later(0.1, stop.set)
        started, tally = loop.time(), Tally()
        try:
            await policy.call(slow, tally, budget=Budget.READ)
        except InterruptedInFlight as error:
            return error, loop.time() - started, tally
        return None, 0.0, tally

    error, waited, tally = asyncio.run(go())
    assert isinstance(error, InterruptedInFlight) and waited < 5 and cancelled == [True] and tally.attempts == 1


def test_retries_are_logged_at_verbose_with_cause_and_count(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(VERBOSE)
    run_policy([ServerError(503, "HTTP 503: busy"), RateLimitedError(429, "HTTP 429: slow down"), "ok"])
    lines = [r.getMessage() for r in caplog.records if r.levelno == VERBOSE and r.name == "reconcile.apply.retry"]
    assert lines == [
        "request: attempt 1: HTTP 503: busy; retrying in 0.0 s (1 of 6 failed attempts allowed)",
        "request: attempt 2: HTTP 429: slow down (no Retry-After); retrying when the limiter lets it go "
        "(1 of 6 failed attempts allowed)",
    ]
