"""One run against a project: its session (client, limiter, retry policy, stop signal), fetching,
executing the plan, and the report. Prints nothing: the CLI decides what people see."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from reconcile.apply.executor import Executor, KeyResult
from reconcile.apply.journal import Journal
from reconcile.apply.limiter import AdaptiveRateLimiter
from reconcile.apply.progress import report_progress
from reconcile.apply.retry import RetryPolicy, Tally
from reconcile.client.descope import DescopeClient
from reconcile.job.clock import RunClock
from reconcile.model import DesiredFile
from reconcile.output.report import RunInfo, build_report, git_state
from reconcile.plan.diff import Plan
from reconcile.plan.safety import Safety


@dataclass(frozen=True)
class RetrySettings:
    rate: float
    max_attempts: int
    deadline: float  # seconds from a unit of work's first attempt to its last


class Session:
    """What one run shares: the client, the rate limiter, the stop signal (SIGINT/SIGTERM).
    Several sessions may run at once (one per target): a signal stops every one of them."""

    _listening: ClassVar[set[Session]] = set()  # the sessions a SIGINT/SIGTERM stops now

    def __init__(self, client: DescopeClient, settings: RetrySettings) -> None:
        self.client = client
        self.limiter = AdaptiveRateLimiter(settings.rate)
        self.stop = asyncio.Event()
        self.interrupted = False
        self.policy = RetryPolicy(
            self.limiter, max_attempts=settings.max_attempts, deadline=settings.deadline, stop=self.stop
        )

    def _interrupt(self) -> None:
        self.interrupted = True
        self.stop.set()

    @classmethod
    def _interrupt_all(cls) -> None:
        for session in cls._listening:
            session._interrupt()

    @contextlib.contextmanager
    def signals_stop_the_run(self) -> Iterator[None]:
        """A loop has one handler per signal: the first session installs it, the last removes it."""
        loop = asyncio.get_running_loop()
        if not Session._listening:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, Session._interrupt_all)
        Session._listening.add(self)
        try:
            yield
        finally:
            Session._listening.discard(self)
            if not Session._listening:
                for signum in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(signum)


async def fetch_keys(session: Session) -> list[dict[str, Any]]:
    """Every key of the project: one search, retried like any call."""
    return await session.policy.call(session.client.search_access_keys, Tally(), what="search")


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
) -> dict[str, Any]:
    return build_report(
        run=run_info(clock, settings, interrupted=bool(outcome and outcome.interrupted)),
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
