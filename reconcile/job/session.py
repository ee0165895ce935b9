"""One run against a project: its session (client, request budgets, retry policy, stop signal),
fetching, executing the plan, and the report. Prints nothing: the CLI decides what people see."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, ClassVar, TypeVar

from reconcile.apply.executor import Executor, KeyResult
from reconcile.apply.journal import Journal
from reconcile.apply.limiter import Budget, Limits
from reconcile.apply.progress import report_progress
from reconcile.apply.retry import RetryPolicy, Tally
from reconcile.client.descope import DescopeClient
from reconcile.job.clock import RunClock
from reconcile.model import DesiredFile, DesiredKey
from reconcile.output.report import RunInfo, build_report, git_state
from reconcile.plan.diff import KeyPlan, Outcome, Plan
from reconcile.plan.safety import Safety

T = TypeVar("T")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass(frozen=True)
class RetrySettings:
    rate: float
    max_attempts: int
    deadline: float  # seconds from a unit of work's first attempt to its last
    timeout: float | None = None  # per request, for the messages of requests that time out


class Session:
    """What one run shares: the client, the request budgets (`limits[Budget.AUDIT]` for audit
    search), the retry policy, the stop signal (SIGINT/SIGTERM). Several sessions may run at once
    (one per target): a signal stops every one of them."""

    _listening: ClassVar[set[Session]] = set()  # the sessions a SIGINT/SIGTERM stops now
    _previous: ClassVar[dict[int, Any]] = {}  # the handlers to restore when the last one ends
    _signalled: ClassVar[bool] = False

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
        self._loop = asyncio.get_running_loop()

    async def call(self, operation: Callable[[], Awaitable[T]], *, budget: Budget, what: str) -> T:
        """One API call within its budget, retried under the run's policy."""
        return await self.policy.call(operation, Tally(), budget=budget, what=what)

    def _interrupt(self) -> None:
        self.cancel.set()
        self.stop.set()

    @classmethod
    def _on_signal(cls, signum: int, _frame: FrameType | None) -> None:
        if cls._signalled:  # the second signal: whatever the run is stuck in, leave now
            os.write(2, b"interrupted again: exiting at once\n")
            os._exit(128 + signum)
        cls._signalled = True
        for session in cls._listening:
            session.interrupted = True
            session._loop.call_soon_threadsafe(session._interrupt)

    @contextlib.contextmanager
    def signals_stop_the_run(self) -> Iterator[None]:
        """The first SIGINT/SIGTERM stops every session: requests in flight are cancelled, nothing
        more is sent, and each command still writes what it owes (report, journal). The second
        exits at once with 128 + the signal's number. Python-level handlers: they run even while
        the event loop is blocked (a hung file write), where asyncio's own would wait for it. The
        first session installs them, the last restores what was there."""
        if not Session._listening:
            Session._signalled = False
            Session._previous = {signum: signal.signal(signum, Session._on_signal) for signum in STOP_SIGNALS}
        Session._listening.add(self)
        try:
            yield
        finally:
            Session._listening.discard(self)
            if not Session._listening:
                for signum, handler in Session._previous.items():
                    signal.signal(signum, handler)


async def fetch_keys(session: Session) -> list[dict[str, Any]]:
    """Every key of the project: one search, retried like any call."""
    return await session.call(session.client.search_access_keys, budget=Budget.READ, what="search")


def interrupted_plan(keys: Iterable[DesiredKey]) -> Plan:
    """The plan of a run stopped before the project was read: every key interrupted, none compared."""
    reason = "not compared: the run was interrupted before the project was read"
    return Plan(tuple(KeyPlan(key, Outcome.INTERRUPTED, reason, str(key.fields.get("name", ""))) for key in keys), ())


@dataclass
class ApplyOutcome:
    results: list[KeyResult]
    retries: int
    interrupted: bool
    fatal: Exception | None = None


async def execute(
    session: Session,
    plan: Plan,
    *,
    concurrency: int,
    journal: Journal | None,
    progress_every: float | None,
    recheck: bool,
) -> ApplyOutcome:
    """Apply the plan's writes; `progress_every` None means no progress output; `recheck` reads each
    key again just before its write."""
    executor = Executor(session.client, session.policy, concurrency=concurrency, journal=journal, recheck=recheck)
    reporter = None
    if progress_every is not None:
        reporter = asyncio.create_task(report_progress(executor.progress, interval=progress_every))
    try:
        results = await executor.run(plan.writes)
    finally:
        if reporter is not None:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
    return ApplyOutcome(results, executor.progress.retries, session.interrupted, executor.fatal)


def run_info(clock: RunClock, settings: dict[str, Any], *, interrupted: bool = False) -> RunInfo:
    timings = {name: round(seconds, 4) for name, seconds in clock.timings.items()}
    return RunInfo(clock.run_id, clock.mode, clock.started, datetime.now(UTC), settings, interrupted, timings)


def make_report(
    clock: RunClock,
    files: Sequence[DesiredFile],
    client: DescopeClient,
    project_id: str,
    plan: Plan,
    *,
    settings: dict[str, Any],
    outcome: ApplyOutcome | None = None,
    safety: Safety | None = None,
    saved_plan: Mapping[str, Any] | None = None,
    interrupted: bool = False,
) -> dict[str, Any]:
    return build_report(
        run=run_info(clock, settings, interrupted=interrupted),
        files=files,
        git=git_state([f.path for f in files]),
        project_id=project_id,
        base_url=client.base_url,
        plan=plan,
        results=outcome.results if outcome else (),
        requests_by_status=client.requests_by_status,
        retries=outcome.retries if outcome else 0,
        safety=safety.as_json() if safety else None,
        saved_plan=saved_plan,
    )


def journal_path_for(report: Path) -> Path:
    return report.with_name(report.name + ".journal.jsonl")
