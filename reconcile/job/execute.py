"""Making a plan's writes: the executor over the timed client, with progress lines."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from reconcile.apply.calls import KeyResult
from reconcile.apply.executor import Executor
from reconcile.apply.journal import Journal
from reconcile.apply.progress import report_progress
from reconcile.job.session import Session
from reconcile.job.timed import TimedWrites
from reconcile.plan.diff import Plan
from reconcile.secrets.sinks import Sinks


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
    sinks: Sinks | None = None,
) -> ApplyOutcome:
    """Make the plan's writes; `progress_every` None means no progress output; `recheck` reads each
    key again just before its write; `sinks` take the secrets of created and rotated keys."""
    run_id = journal.run_id if journal is not None else ""
    writes = TimedWrites(session.client, session.timeline)
    executor = Executor(
        writes,
        session.policy,
        concurrency=concurrency,
        journal=journal,
        recheck=recheck,
        sinks=sinks,
        run_id=run_id,
    )
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
