"""Making a plan's writes: the executor over the timed client, with the journal, the secret sinks
and progress lines."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

from reconcile.apply.calls import KeyResult
from reconcile.apply.executor import Executor
from reconcile.apply.journal import Journal, Project
from reconcile.apply.progress import report_progress
from reconcile.client.redact import scrub
from reconcile.errors import ReconcileError
from reconcile.job.options import Changes
from reconcile.job.session import Session
from reconcile.job.timed import TimedWrites
from reconcile.output.recovery import Recovery
from reconcile.plan.diff import Plan
from reconcile.secrets.sinks import Sinks

log = logging.getLogger("reconcile")


@dataclass
class ApplyOutcome:
    results: list[KeyResult]
    retries: int
    interrupted: bool
    fatal: Exception | None = None


@dataclass(frozen=True)
class Writer:
    """Where a run's writes go and what they leave: how many at once and the progress lines
    (`changes`), the journal, the sinks of the secrets they issue, and how to recover one."""

    changes: Changes
    journal: Path | None
    run_id: str
    project_id: str
    recover: Recovery


async def _with_progress(executor: Executor, plan: Plan, every: float | None) -> list[KeyResult]:
    """The executor's run; `every` None means no progress output."""
    reporter = None
    if every is not None:
        reporter = asyncio.create_task(report_progress(executor.progress, interval=every))
    try:
        return await executor.run(plan.writes, hold=plan.prune_hold)
    finally:
        if reporter is not None:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter


async def execute(writer: Writer, session: Session, plan: Plan, *, recheck: bool) -> ApplyOutcome:
    """Make the plan's writes with the journal and the sinks; say when the run stopped early.
    `recheck` reads each key again just before its write."""
    changes = writer.changes
    project = Project(writer.project_id, session.client.base_url)
    journal = Journal(writer.journal, writer.run_id, writer.recover.sink_options, project) if writer.journal else None
    sinks = None
    try:
        if plan.issues_secrets:
            sinks = Sinks.open(
                changes.secrets_out,
                changes.secrets_command,
                project_id=writer.project_id,
                scrub=scrub,
                command_environment=changes.secrets_command_env,
                stopping=lambda: session.interrupted,  # a stop signal ends a hanging command, not 120 s later
            )
        executor = Executor(
            TimedWrites(session.client, session.timeline),
            session.policy,
            concurrency=changes.concurrency,
            journal=journal,
            recheck=recheck,
            sinks=sinks,
            run_id=journal.run_id if journal is not None else "",
        )
        results = await _with_progress(executor, plan, changes.progress_every)
    finally:
        if journal is not None:
            journal.close()
        if sinks is not None:
            sinks.close()
    fatal: Exception | None = executor.fatal
    if fatal is not None:
        log.error("error: %s; the run stopped, nothing more was sent", fatal)
    if journal is not None and journal.failure is not None and fatal is None:
        fatal = ReconcileError(journal_failure(journal, writer.recover))  # the run fails; its report is written
        log.error("error: %s", fatal)
    return ApplyOutcome(results, executor.progress.retries, session.interrupted, fatal)


def journal_failure(journal: Journal, recover: Recovery) -> str:
    """What the run did when its journal failed, and what the operator does now."""
    failure = journal.failure
    assert failure is not None
    said = f"the journal {journal.path.absolute()} could not be written ({failure.error})"
    if failure.key_id is None or failure.event not in ("issued", "delivered", "undelivered"):
        return f"{said}; no secret was issued after that. Make it writable, then run again"
    return (
        f"{said} when key {failure.key_id} ({failure.name!r}) got its new secret: the secret went to the sinks "
        "first, and no secret was issued after that. Make the journal writable, then run again; if the next run "
        f"flags {failure.key_id}, look for its secret in the sinks before you recover it with: "
        f"{recover.command(failure.key_id, name=failure.name)}"
    )
