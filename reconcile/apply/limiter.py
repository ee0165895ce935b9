"""Request budgets: one adaptive limiter per class of endpoint, shared by every worker of a run.

Classes (`Budget`): READ (search, load), WRITE (update, activate / deactivate) and AUDIT (audit
search, which Descope limits to 10 requests per minute on its own). Each has its own limiter:

- Tokens refill at `rate` per second; the bucket holds `burst_seconds` worth of them (at least
  one). Bigger would send bursts a server's own bucket must absorb; a bucket of exactly one token
  loses every sleep's overshoot for good (measured: 81/s achieved at a 100/s setting).
- A known `Window` (at most N requests in any W seconds, the shape Descope publishes) is kept
  exactly: a send waits until the oldest of the last N is W seconds old. Sliding, so it holds
  whether the server counts in fixed or sliding windows.
- Throttled (a 429): the rate drops multiplicatively (at most once per `cooldown`, since the
  in-flight requests of one overload all come back throttled). Not throttled: it climbs back
  additively towards the configured ceiling, which it never exceeds (`--rate` is a promise).
- A 429 with `Retry-After`: every worker waits that long, not only the one that was told.
- A 429 without it: Descope's windows block the caller for a while (a minute for general
  traffic) and the header has been seen missing. Cutting the rate request by request would
  keep sending into the block; instead every worker of the budget pauses and a single probe
  goes out at growing intervals until one gets through. How long that took is remembered
  (between the last probe refused and the first let through), and the next block is probed
  in the middle of that bracket first, so a steady server costs at most two probes a block.

Which budgets a 429 pauses (Descope's limits are per project and IP, so it is a choice):
rate cuts and probing stay within the budget that was throttled, since a 429 alone does not say
which limit it hit; if it was the project's, each other budget learns it from its own first
request. A `Retry-After` from READ or WRITE pauses every budget: nothing is published for
access-key paths, so the limit hit is the project's, which blocks the caller as a whole, and the
server said for how long. A `Retry-After` from AUDIT pauses AUDIT only: audit search has its
own limit, the likelier cause.

Like AWS SDKs' adaptive retry mode, in a simpler AIMD form, plus the probing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from reconcile.log import VERBOSE

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
log = logging.getLogger(__name__)

DECREASE_FACTOR = 0.7
# Refill arithmetic can leave 0.9999999… tokens; a wait for the rest may be too small to move the clock.
_EPSILON = 1e-9
# Per second of unthrottled sending, the rate regains this share of its ceiling.
RECOVERY_SHARE_PER_SECOND = 0.05
# Probing a block of unknown length: the first probe after this long, each next interval this much
# longer (the last wait overshoots the block by at most 30%; a 60 s block costs about 15 probes).
FIRST_PROBE_SECONDS = 1.0
PROBE_GROWTH = 1.3
# The shortest probe delay learning may reach (a token-bucket server's blocks last milliseconds).
MIN_PROBE_SECONDS = 0.05
# How much of the last bracket's lower bound a block that needed no second probe keeps.
BRACKET_DECAY = 0.8
# A block at least this many times longer than the sending before it looks like a window's.
WINDOW_EVIDENCE = 2.0
# One request at a time from the guessed window count up to this multiple of it.
SOLO_SLACK = 1.2
# A known window is kept with this margin: a request is counted where it arrives, a bit after it is sent.
WINDOW_MARGIN_SECONDS = 1.0


class Budget(StrEnum):
    READ = "read"  # search, load
    WRITE = "write"  # update, activate / deactivate
    AUDIT = "audit"  # POST /v1/mgmt/audit/search


@dataclass(frozen=True)
class Window:
    """At most `count` requests in any `seconds`."""

    count: int
    seconds: float


# Descope: "Audit search is limited to 10 requests per minute".
AUDIT_SEARCH_WINDOW = Window(10, 60.0)
# A Retry-After from these pauses every budget (see the module's docstring).
PROJECT_WIDE = frozenset({Budget.READ, Budget.WRITE})


@dataclass(frozen=True)
class Permit:
    """Leave to send one request; its outcome goes back to the limiter that gave it."""

    probe: bool = False


class WaitTooLong(Exception):
    """The next send could not go before the caller's deadline; `why` says what holds it."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


@dataclass
class LimiterStats:
    throttles: int = 0
    decreases: int = 0
    paused_seconds: float = 0.0
    blocks: int = 0  # 429s without Retry-After that paused the budget
    probes: int = 0


@dataclass
class _Cycle:
    """Sending between two blocks. A block that outlasts the sending that ran into it many times
    over is a window's (N requests per window, then a block), not a token bucket's: the next cycle
    sends one request at a time once it nears the count the last one got through, so that only one
    request, not every one in flight, meets the next block."""

    started: float
    admitted: int = 0
    ended: tuple[int, float, float] | None = None  # admitted, seconds spent sending, when it was blocked
    guess: int | None = None  # what a window lets through, when the limit looks like one

    def blocked(self, now: float) -> None:
        if self.ended is None:
            self.ended = (self.admitted, now - self.started, now)

    def resume(self, now: float) -> None:
        if self.ended is not None:
            admitted, sending, blocked_at = self.ended
            window_like = admitted > 0 and now - blocked_at >= WINDOW_EVIDENCE * sending
            self.guess = admitted if window_like else None
            self.started, self.admitted, self.ended = now, 0, None

    def solo(self, out: int) -> bool:
        """Whether the next request must wait until none is out."""
        if self.guess is not None and self.admitted > self.guess * SOLO_SLACK:
            self.guess = None  # well past the guess without a block: not a window after all
        return self.guess is not None and out > 0 and self.admitted + out >= self.guess


@dataclass
class _Block:
    """Throttled without Retry-After: nothing goes out but one probe at a time."""

    started: float
    next_probe: float
    interval: float
    probe_out: bool = False
    probe_sent: float = 0.0
    refused: float = 0.0  # the latest probe offset (from `started`) that was still refused


class AdaptiveRateLimiter:
    def __init__(  # noqa: PLR0913 (keyword-only tuning, with defaults)
        self,
        rate: float,
        *,
        name: str = "requests",
        window: Window | None = None,
        min_rate: float = 0.5,
        burst_seconds: float = 0.1,
        cooldown: float = 1.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.name = name
        self.ceiling = rate
        self.rate = rate
        self.window = window
        self.min_rate = min(min_rate, rate)
        self.burst_seconds = burst_seconds
        self.cooldown = cooldown
        self.stats = LimiterStats()
        self._clock = clock
        self._sleep = sleep
        self._tokens = 1.0
        self._refilled_at = clock()
        self._paused_until = 0.0
        self._asked = 0.0  # the Retry-After behind the current pause
        self._block: _Block | None = None
        self._bracket: tuple[float, float] | None = None  # last block: (refused until, let through at)
        self._sent: deque[float] = deque()  # send times, for a known window
        self._cycle = _Cycle(started=clock())
        self._out = 0  # permits given and not yet handed back
        self._last_decrease = -cooldown
        self._last_success = clock()
        self._lock = asyncio.Lock()
        self._changed = asyncio.Event()

    @property
    def burst(self) -> float:
        return max(1.0, self.rate * self.burst_seconds)

    def _refill(self, now: float) -> None:
        self._tokens = min(self.burst, self._tokens + (now - self._refilled_at) * self.rate)
        self._refilled_at = now

    def _window_wait(self, now: float) -> float:
        if self.window is None:
            return 0.0
        span = self.window.seconds + WINDOW_MARGIN_SECONDS
        while self._sent and self._sent[0] + span <= now:  # the same sum as the wait below: no float gap
            self._sent.popleft()
        return 0.0 if len(self._sent) < self.window.count else self._sent[0] + span - now

    def take(self) -> Permit | float | None:
        """A permit, or the seconds to wait before asking again, or None: wait for an answer (the
        probe's, or while sending one at a time)."""
        now = self._clock()
        if now < self._paused_until:
            return self._paused_until - now
        block = self._block
        if block is not None and block.probe_out:
            return None
        if block is not None and now < block.next_probe:
            return block.next_probe - now
        if block is None:
            self._cycle.resume(now)
            if self._cycle.solo(self._out):
                return None
        if (wait := self._window_wait(now)) > 0:
            return wait
        self._refill(now)
        if self._tokens < 1.0 - _EPSILON:
            return (1.0 - self._tokens) / self.rate
        self._tokens = max(0.0, self._tokens - 1.0)
        if self.window is not None:
            self._sent.append(now)
        self._out += 1
        if block is None:
            return Permit()
        block.probe_out, block.probe_sent = True, now
        self.stats.probes += 1
        return Permit(probe=True)

    def holding(self) -> str:
        """What holds the next send back, for the error of a caller that cannot wait."""
        if self._clock() < self._paused_until:
            return f"the server asked to wait {self._asked:g} s"
        if self._block is not None:
            return "the server throttles (HTTP 429 without Retry-After) and no probe has got through yet"
        return f"the {self.name} rate limit"

    async def acquire(self, deadline: float | None = None) -> Permit:
        """Wait for a permit, in turn (the lock is fair in asyncio). WaitTooLong, at once, when the
        wait is known to end past `deadline` (on this limiter's clock)."""
        async with self._lock:
            while not isinstance(taken := self.take(), Permit):
                if deadline is not None and taken is not None and self._clock() + taken > deadline:
                    raise WaitTooLong(self.holding())
                self._changed.clear()
                if taken is None:
                    await self._changed.wait()
                else:
                    await self._sleep(taken)
            return taken

    def _handed_back(self) -> None:
        self._out -= 1
        self._changed.set()  # whoever waits for an answer (a probe's, one at a time) looks again

    def on_success(self, permit: Permit) -> None:
        now = self._clock()
        self._handed_back()
        if self._block is not None:
            if permit.probe:
                self._end_block(now)
            return  # sent before the block: it says nothing about the block
        self._cycle.admitted += 1
        elapsed = max(0.0, now - self._last_success)
        self._last_success = now
        if self.rate < self.ceiling:
            self._refill(now)  # account tokens at the old rate before changing it
            self.rate = min(self.ceiling, self.rate + self.ceiling * RECOVERY_SHARE_PER_SECOND * min(elapsed, 1.0))

    def on_other(self, permit: Permit) -> None:
        """Neither success nor 429 (an error answer, no answer, cancelled): a probe may go again now."""
        self._handed_back()
        if permit.probe and self._block is not None:
            self._block.probe_out = False
            self._block.next_probe = self._clock()

    def on_throttle(self, permit: Permit, retry_after: float | None) -> None:
        now = self._clock()
        self._handed_back()
        self.stats.throttles += 1
        told = retry_after is not None and retry_after > 0
        if self._block is not None and not told:
            if permit.probe:
                self._probe_refused(self._block, now)
            return  # otherwise sent before the block began: the same overload, already handled
        self._cycle.blocked(now)
        self._refill(now)
        self._tokens = 0.0
        self._last_success = now
        if now - self._last_decrease >= self.cooldown:
            self._last_decrease = now
            self.stats.decreases += 1
            self.rate = max(self.min_rate, self.rate * DECREASE_FACTOR)
        if retry_after is not None and told:
            self._block = None  # the server said how long: nothing to probe
            self.pause(now + retry_after, retry_after)
        else:
            self._start_block(now)

    def pause(self, until: float, asked: float) -> None:
        """Hold every send until `until` (a Retry-After of `asked` seconds)."""
        now = self._clock()
        if until > self._paused_until:
            self.stats.paused_seconds += until - max(now, self._paused_until)
            self._paused_until, self._asked = until, asked
        self._changed.set()

    def _start_block(self, now: float) -> None:
        self.stats.blocks += 1
        if self._bracket is None:
            first, interval = FIRST_PROBE_SECONDS, FIRST_PROBE_SECONDS * PROBE_GROWTH
        else:
            refused, through = self._bracket
            first = max(MIN_PROBE_SECONDS, (refused + through) / 2)
            interval = through - first  # if refused there, next try where the last block ended
        self._block = _Block(started=now, next_probe=now + first, interval=max(MIN_PROBE_SECONDS, interval))
        log.log(VERBOSE, "%s: HTTP 429 without Retry-After: pausing, first probe in %.1f s", self.name, first)

    def _probe_refused(self, block: _Block, now: float) -> None:
        block.refused = max(block.refused, block.probe_sent - block.started)
        block.probe_out = False
        block.next_probe = now + block.interval
        block.interval *= PROBE_GROWTH

    def _end_block(self, now: float) -> None:
        block = self._block
        assert block is not None
        through = block.probe_sent - block.started
        # No probe refused this time: the block may have shortened, so trust the old bound less.
        refused = block.refused or (self._bracket[0] * BRACKET_DECAY if self._bracket else 0.0)
        self._bracket = (min(refused, through), through)
        self._block = None
        log.log(VERBOSE, "%s: a probe got through %.1f s after the block began: resuming", self.name, through)


class Limits:
    """Every budget of a run. `limits[Budget.AUDIT]` is the audit-search limiter."""

    def __init__(self, rate: float, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        self._budgets = {
            budget: AdaptiveRateLimiter(
                rate,
                name=f"{budget.value} budget",
                window=AUDIT_SEARCH_WINDOW if budget is Budget.AUDIT else None,
                clock=clock,
                sleep=sleep,
            )
            for budget in Budget
        }
        self._clock = clock

    def __getitem__(self, budget: Budget) -> AdaptiveRateLimiter:
        return self._budgets[budget]

    def on_throttle(self, budget: Budget, permit: Permit, retry_after: float | None) -> None:
        self[budget].on_throttle(permit, retry_after)
        if retry_after is not None and retry_after > 0 and budget in PROJECT_WIDE:
            until = self._clock() + retry_after
            for other, limiter in self._budgets.items():
                if other is not budget:
                    limiter.pause(until, retry_after)
