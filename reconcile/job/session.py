"""One run against a project: its session (the client, the request budgets, the retry policies,
the stop signal, the keys' read and write times). Prints nothing: the CLI decides what people see."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from reconcile.apply.limiter import Budget, Limits
from reconcile.apply.retry import RetryPolicy, Tally
from reconcile.client.descope import DescopeClient
from reconcile.job.signals import signals_stop
from reconcile.trail.writes import Timeline

T = TypeVar("T")
# Audit search has its own budget (Budget.AUDIT: Descope allows 10 a minute), so attribution never
# holds an update back; and its own policy: a search that fails is not worth many attempts or a long wait.
AUDIT_MAX_ATTEMPTS = 2
AUDIT_DEADLINE_SECONDS = 60.0


@dataclass(frozen=True)
class RetrySettings:
    rate: float
    max_attempts: int
    deadline: float  # seconds from a unit of work's first attempt to its last
    timeout: float | None = None  # per request, for the messages of requests that time out


class Session:
    """What one run shares: the client, the request budgets (`limits[Budget.AUDIT]` for audit
    search), the retry policy, and the stop signal (SIGINT/SIGTERM). Several sessions may run at
    once (one per target): a signal stops every one of them."""

    def __init__(self, client: DescopeClient, settings: RetrySettings) -> None:
        self.client = client
        self.limits = Limits(settings.rate)
        self.stop = asyncio.Event()  # send nothing more (a signal, or a fatal answer such as a 401)
        self.cancel = asyncio.Event()  # and cancel what is in flight (a signal)
        self.interrupted = False
        self.policy = RetryPolicy(
            self.limits,
            max_attempts=settings.max_attempts,
            deadline=settings.deadline,
            stop=self.stop,
            cancel=self.cancel,
            request_timeout=settings.timeout,
        )
        self.audit_policy = RetryPolicy(
            self.limits,
            max_attempts=min(settings.max_attempts, AUDIT_MAX_ATTEMPTS),
            deadline=min(settings.deadline, AUDIT_DEADLINE_SECONDS),
            stop=self.stop,
            cancel=self.cancel,
            request_timeout=settings.timeout,
        )
        self.timeline = Timeline()  # per key: when it was read, when written (the overwritten check)
        self.audit_refused: str | None = None  # why audit search was refused (403): not asked again

    async def call(self, operation: Callable[[], Awaitable[T]], *, budget: Budget, what: str) -> T:
        """One API call within its budget, retried under the run's policy."""
        return await self.policy.call(operation, Tally(), budget=budget, what=what)

    def _interrupt(self) -> None:
        self.cancel.set()
        self.stop.set()

    def interrupt_soon(self) -> None:
        """From the signal handler (see `signals`): cancel what is in flight, send nothing more."""
        self._loop.call_soon_threadsafe(self._interrupt)

    @contextlib.contextmanager
    def signals_stop_the_run(self) -> Iterator[None]:
        """The first SIGINT/SIGTERM stops every session: requests in flight are cancelled, nothing
        more is sent, and the command still writes what it owes (report, journal); the second exits
        at once (`signals`)."""
        self._loop = asyncio.get_running_loop()
        with signals_stop(self):
            yield
