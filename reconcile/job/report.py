"""What one run leaves for its report, typed, and the report built from it."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from reconcile.client.descope import DescopeClient
from reconcile.job.clock import RunClock, keep
from reconcile.model import DesiredFile
from reconcile.output.recovery import Recovery
from reconcile.output.report import RunInfo, build_report, git_state
from reconcile.plan.diff import Plan
from reconcile.plan.safety import Safety
from reconcile.trail.findings import TrailFindings

if TYPE_CHECKING:  # (plan never executes: the executor and its sinks are apply's imports)
    from reconcile.apply.journal import Unsettled
    from reconcile.job.execute import ApplyOutcome


@dataclass(frozen=True)
class RunRecord:
    """One run, as its report tells it: what it read, planned, did and learned."""

    clock: RunClock
    client: DescopeClient  # its base URL and the requests it sent, by status
    project_id: str
    plan: Plan
    settings: Mapping[str, Any]  # the run's knobs (`run.settings`)
    files: Sequence[DesiredFile] = ()
    outcome: ApplyOutcome | None = None
    interrupted: bool = False
    trail: TrailFindings | None = None
    safety: Safety | None = None
    saved_plan: Mapping[str, Any] | None = None  # the provenance of a saved plan applied
    unsettled: Sequence[Unsettled] = ()
    recovery: Recovery | None = None
    git: Mapping[str, Any] | None = None  # the desired files' git state (`git_state`): None outside git


def start_git_state(files: Sequence[DesiredFile]) -> asyncio.Future[dict[str, Any] | None]:
    """The desired files' git state, asked once and beside the run (git runs while the writes go
    out), for the apply event and the report. A thread of its own, not the loop's executor: a run
    that stops (a signal, an error) does not wait at its exit for a git that hangs."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[dict[str, Any] | None] = loop.create_future()
    paths = [file.path for file in files]

    def settle(state: dict[str, Any] | None, error: BaseException | None) -> None:
        if answer.done():  # cancelled: the run ended without it
            return
        if error is None:
            answer.set_result(state)
        else:
            answer.set_exception(error)

    def ask() -> None:
        state, error = None, None
        try:
            state = git_state(paths)
        except Exception as failed:  # handed to the run, which raises it where it awaits
            error = failed
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
            loop.call_soon_threadsafe(settle, state, error)

    threading.Thread(target=ask, name="git-state", daemon=True).start()
    return answer


def run_info(clock: RunClock, settings: Mapping[str, Any], *, interrupted: bool = False) -> RunInfo:
    timings = {name: round(seconds, 4) for name, seconds in clock.timings.items()}
    return RunInfo(clock.run_id, clock.mode, clock.started, datetime.now(UTC), settings, interrupted, timings)


def make_report(run: RunRecord) -> dict[str, Any]:
    report = build_report(
        run=run_info(run.clock, run.settings, interrupted=run.interrupted),
        files=run.files,
        git=run.git,
        project_id=run.project_id,
        base_url=run.client.base_url,
        plan=run.plan,
        results=run.outcome.results if run.outcome else (),
        requests_by_status=run.client.requests_by_status,
        retries=run.outcome.retries if run.outcome else 0,
        trail=run.trail,
        safety=run.safety.as_json() if run.safety else None,
        saved_plan=run.saved_plan,
        unsettled=run.unsettled,
        recovery=run.recovery or Recovery((), None),
    )
    keep(run, report)
    return report
