"""`rotate`: a new secret for exactly the named keys, delivered to the sinks; the old ones stop working."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from reconcile.apply.journal import Project, read_records
from reconcile.config.targets import TargetConfig
from reconcile.errors import ExitCode, ReconcileError, UsageError
from reconcile.job import changes as changing
from reconcile.job.clock import RunClock
from reconcile.job.connect import connect
from reconcile.job.execute import ApplyOutcome, Writer, execute
from reconcile.job.fetch import fetch_keys, load_keys
from reconcile.job.load import load_desired
from reconcile.job.lock import lock_dir, lock_path, project_lock
from reconcile.job.options import Changes, Outputs, PolicyChoice, Remote, json_settings
from reconcile.job.policing import rotation_age
from reconcile.job.report import RunRecord, make_report
from reconcile.job.result import Output, Result, settled_async
from reconcile.job.session import Session
from reconcile.job.trail import TrailSettings, after_apply
from reconcile.model import DesiredState
from reconcile.output.markdown import render_summary
from reconcile.output.text import render_plan, render_results, render_trail
from reconcile.plan.diff import plan_rotation
from reconcile.policy.rotation import due_keys, last_rotations
from reconcile.trail.findings import Step, StepStatus, TrailFindings

Found = dict[str, dict[str, Any] | None]


@dataclass(frozen=True)
class RotateOptions:
    remote: Remote
    outputs: Outputs
    changes: Changes
    ids: tuple[str, ...] | None  # the keys to rotate (None: --ids not given)
    trail: TrailSettings  # the overwritten check and the event after the rotations
    dry_run: bool = False  # say what would rotate; send nothing
    due: bool = False  # instead of ids: the keys past the policy's max-key-age
    max_keys: int = 10  # with `due`: the oldest this many
    policy: PolicyChoice = field(default_factory=PolicyChoice)
    paths: tuple[str, ...] = ()  # the desired files: read only to say which keys no file manages
    wait_lock: float = 0.0  # seconds to wait for another apply or rotate to the same project

    def for_target(self, target: TargetConfig) -> RotateOptions:
        return replace(
            self,
            paths=target.paths,
            remote=self.remote.for_target(target),
            trail=self.trail.for_target(target),
            outputs=self.outputs.for_target(target.name),
            changes=self.changes.for_target(target),
            policy=self.policy.for_target(target),
        )

    def files(self) -> Mapping[str, Path | None]:
        return {"report": self.outputs.report, "journal": self.changes.journal, "secrets_out": self.changes.secrets_out}

    def settings(self) -> dict[str, Any]:
        trail = {
            "attribution": self.trail.search,
            "attributionPages": self.trail.pages,
            "auditEvent": self.trail.event,
            "auditTenant": self.trail.tenant,
        }
        return json_settings({**self.remote.settings(), **self.changes.settings(), "waitLock": self.wait_lock, **trail})


async def _due(options: RotateOptions, session: Session, max_days: int, clock: RunClock, output: Output) -> Found:
    """The keys past the rotation age, the oldest `max_keys` of them."""
    with clock.phase("fetch"):
        observed = await fetch_keys(session)
    journal = changing.journal_file(options.changes, options.outputs)
    rotated = last_rotations(read_records(journal) if journal is not None and journal.is_file() else [])
    due = due_keys(observed, max_days, clock.started, rotated)
    chosen = due[: options.max_keys]
    more = len(due) - len(chosen)
    left = f"; {more} left for the next run (--max-keys {options.max_keys})" if more else ""
    output.show(f"{len(due)} key(s) past the rotation age of {max_days} days{left}.\n")
    by_id = {str(key.get("id")): key for key in observed}
    return {item.id: by_id[item.id] for item in chosen}


def _declared(paths: tuple[str, ...], output: Output) -> DesiredState | None:
    """The desired state, only to warn of keys no file manages; a problem in the files never stops a rotation."""
    if not paths:
        return None
    try:
        loaded = load_desired(paths)
    except ReconcileError as error:
        output.say(
            logging.WARNING,
            f"warning: the desired files were not read ({error}): which file manages each key is not said",
        )
        return None
    if loaded.diagnostics:
        problems = len(loaded.diagnostics)
        output.say(
            logging.WARNING,
            f"warning: the desired files have {problems} problem(s): which keys they manage is not said",
        )
        return None
    return loaded.state


async def _rotated_event(
    options: RotateOptions, session: Session, clock: RunClock, outcome: ApplyOutcome | None
) -> TrailFindings | None:
    """Like an apply's: the overwritten check and its event, so that the trail credits the rotations to this tool."""
    if outcome is None or not any(r.outcome is r.plan.outcome.done for r in outcome.results):
        return None
    with clock.phase("trail"):
        before = TrailFindings(Step(StepStatus.NOT_NEEDED))
        return await after_apply(session, options.trail, before, outcome.results, run_id=clock.run_id, git=None)


async def _rotate(options: RotateOptions, output: Output) -> Result:
    if (options.ids is not None) == options.due:
        raise UsageError("give --ids ID,ID, or --due (the keys past the policy's max-key-age)")
    if options.ids is not None and not options.ids:
        raise UsageError("--ids names no key")
    max_days = rotation_age(options.policy, output) if options.due else None
    clock = RunClock("rotate")
    target_name = options.remote.target.name if options.remote.target else None
    recover = changing.recovery(options.changes, options.outputs, target_name)
    outcome: ApplyOutcome | None = None
    if not options.dry_run:
        changing.check_change_outputs(options.changes, options.outputs)
    concurrency = options.changes.concurrency
    async with (
        connect(options.remote, concurrency=concurrency) as (session, target),
        contextlib.AsyncExitStack() as held,
    ):
        if max_days is not None or not options.dry_run:
            # Issuing is serialised per project by apply's lock: two rotations of one key would leave
            # the sink holding whichever secret came last, maybe the dead one; two `rotate --due` would rotate twice.
            lock = lock_path(lock_dir(os.environ), target.base_url, target.project_id)
            wait = options.wait_lock
            await held.enter_async_context(project_lock(lock, run_id=clock.run_id, wait=wait, stop=session.stop))
        if max_days is not None:
            found = await _due(options, session, max_days, clock, output)
        else:
            with clock.phase("fetch"):
                found = await load_keys(session, options.ids or ())
        plan = plan_rotation(list(found), found, _declared(options.paths, output))
        output.show(render_plan(plan, verbose=True))
        journal = changing.journal_file(options.changes, options.outputs)
        present = [key for key in found.values() if key is not None]
        unsettled = changing.unsettled_secrets(journal, present, Project(target.project_id, target.base_url))
        changing.warn_unsettled(unsettled, recover)
        if options.dry_run:
            return output.result(ExitCode.FAILURE if plan.errors else ExitCode.OK)
        refusal = changing.sink_refusal(options.changes, options.outputs, plan)  # 64, before any write; reported
        if plan.changes and refusal is None:
            with clock.phase("rotate"):
                writer = Writer(options.changes, journal, clock.run_id, target.project_id, recover)
                outcome = await execute(writer, session, plan, recheck=False)
        trail = await _rotated_event(options, session, clock, outcome)
        if trail is not None:
            output.show(render_trail(trail, plan))
        output.show(render_results(outcome.results if outcome else [], plan.errors, recover, trail, title="Rotate"))
        record = RunRecord(
            clock, session.client, target.project_id, plan, options.settings(), outcome=outcome, trail=trail
        )
        report = make_report(replace(record, unsettled=unsettled, recovery=recover))
    if refusal is not None:
        report["refusal"] = changing.refusal_record(refusal)
        return output.result(
            refusal.exit_code, report=report, markdown=render_summary(report), clock=clock, error=refusal
        )
    if session.interrupted:
        output.say(logging.ERROR, changing.INTERRUPTED)
    code = changing.exit_code(plan, outcome, interrupted=session.interrupted)
    return output.result(code, report=report, markdown=render_summary(report), clock=clock)


async def run(options: RotateOptions) -> Result:
    return await settled_async(partial(_rotate, options))
