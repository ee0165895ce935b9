"""`apply`: make every planned change (a fresh plan, or a reviewed saved plan exactly): updates,
creates (their secrets to the sinks) and prunes; then the audit trail's overwritten check and event.

The steps in order: load, the output checks, connect, the saved plan's offline checks, the project's
lock, the plan, the secrets an earlier run lost, the refusals (sinks, ambiguous names, the safety
threshold), the writes beside the attribution, the report, and the exit code."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconcile.apply.journal import Project, Unsettled, settle
from reconcile.config.targets import TargetConfig
from reconcile.desired.loader import DEFAULT_MAX_FILE_BYTES
from reconcile.errors import Interrupted, PolicyRefused, SafetyThresholdExceeded, UsageError
from reconcile.files import read_input
from reconcile.job import changes as changing
from reconcile.job.clock import RunClock, bulk
from reconcile.job.connect import Target, connect, prepare
from reconcile.job.declared import checking_desired, refuse_undeclared
from reconcile.job.execute import ApplyOutcome, Writer, execute
from reconcile.job.fetch import fetch_keys, interrupted_plan
from reconcile.job.load import LoadedDesired, load_valid
from reconcile.job.lock import lock_dir, lock_path, project_lock
from reconcile.job.options import Changes, Outputs, PolicyChoice, Remote, json_settings, per_target
from reconcile.job.outputs import desired_inputs
from reconcile.job.policing import ChangesVerdict, check_changes, configured
from reconcile.job.report import RunRecord, make_report, start_git_state
from reconcile.job.result import Output, Result, settled_async
from reconcile.job.session import Session
from reconcile.job.trail import TrailSettings, after_apply, attribute_plan
from reconcile.model import DesiredFile
from reconcile.output.markdown import render_summary
from reconcile.output.report import git_state
from reconcile.output.text import render_plan, render_results, render_trail
from reconcile.plan import saved as savedplan
from reconcile.plan.diff import Outcome, Plan, compute_plan, hold_lost_creates
from reconcile.plan.limit import ChangeLimit
from reconcile.plan.safety import AmbiguousNames, Safety, assess, check_names, check_safety

if TYPE_CHECKING:
    from reconcile.policy.policy import Policy

Observed = list[dict[str, Any]]
Refusal = SafetyThresholdExceeded | AmbiguousNames | PolicyRefused | UsageError | savedplan.PlanRejected
REFUSALS = (SafetyThresholdExceeded, AmbiguousNames, PolicyRefused, UsageError, savedplan.PlanRejected)


@dataclass(frozen=True)
class ApplyOptions:
    paths: tuple[str, ...]  # optional with a saved plan
    remote: Remote
    trail: TrailSettings
    outputs: Outputs
    changes: Changes
    max_file_size: int = DEFAULT_MAX_FILE_BYTES
    plan: Path | None = None  # the saved plan to apply, and nothing else
    max_plan_age: timedelta = timedelta(hours=24)
    max_changes: ChangeLimit | None = None
    force: bool = False  # apply even over --max-changes
    recheck: bool = False  # read each key again just before its write (always, with a saved plan)
    wait_lock: float = 0.0  # seconds to wait for another apply to the same project
    allow_recreate: tuple[str, ...] = ()  # names to create although an earlier run's create of them was lost
    verbose: bool = False
    policy: PolicyChoice = field(default_factory=PolicyChoice)

    def for_target(self, target: TargetConfig) -> ApplyOptions:
        return replace(
            self,
            paths=target.paths,
            remote=self.remote.for_target(target),
            trail=self.trail.for_target(target),
            outputs=self.outputs.for_target(target.name),
            changes=self.changes.for_target(target),
            plan=per_target(self.plan, target.name),
            max_changes=target.settings.get("maxChanges", self.max_changes),
            policy=self.policy.for_target(target),
        )

    def files(self) -> Mapping[str, Path | None]:
        changes = self.changes
        files = {"report": self.outputs.report, "journal": changes.journal, "plan": self.plan}
        return {**files, "secrets_out": changes.secrets_out}

    def settings(self) -> dict[str, Any]:
        return json_settings(
            {
                **self.remote.settings(),
                **self.changes.settings(),
                "maxChanges": self.max_changes,
                "force": self.force,
                "recheck": self.recheck,
                "waitLock": self.wait_lock,
                "plan": self.plan,
                "attribution": self.trail.search,
                "attributionPages": self.trail.pages,
                "auditEvent": self.trail.event,
                "auditTenant": self.trail.tenant,
            }
        )


@dataclass(frozen=True)
class _Verdicts:
    """What the plan was judged by before any write: the safety threshold, the policy, and whether
    the saved plan is stale (a planned key changed since)."""

    safety: Safety
    policy: ChangesVerdict
    stale: savedplan.PlanRejected | None = None


@dataclass(frozen=True)
class _Run:
    """What an apply needs beside its options once connected."""

    session: Session
    target: Target
    clock: RunClock
    writer: Writer  # where the writes go, and how to recover a secret they lose
    policy: Policy | None  # the rules its changes must follow


def _load_saved_plan(path: Path, max_age: timedelta, project_id: str, clock: RunClock) -> dict[str, Any]:
    """The saved plan, once every check that needs no request has passed."""
    try:
        document: dict[str, Any] = json.loads(read_input(path, max_bytes=None).decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise savedplan.PlanRejected(f"{path} is not a saved plan (not JSON)") from None
    try:
        savedplan.verify(document, now=clock.started, max_age=max_age, project_id=project_id)
    except (KeyError, TypeError, ValueError):
        raise savedplan.PlanRejected(f"{path} is not a complete saved plan") from None
    return document


async def _plan_to_apply(
    run: _Run, loaded: LoadedDesired | None, saved: dict[str, Any] | None, output: Output
) -> tuple[Plan, tuple[DesiredFile, ...], Observed, savedplan.PlanRejected | None]:
    """The fresh plan from the desired files, or the saved plan (and why it is refused, when a planned
    key changed since); and the keys read."""
    async with checking_desired(run.session, loaded.state if saved is None and loaded else None) as declarations:
        try:
            with run.clock.phase("fetch"):
                observed = await fetch_keys(run.session)
        except Interrupted:
            if saved is not None:
                by_id: dict[str, Any] = {}
                keys = (item.key for item in savedplan.to_plan(saved, by_id).keys)
                return interrupted_plan(keys), savedplan.files_of(saved), [], None
            assert loaded is not None
            return interrupted_plan(loaded.state.keys), loaded.files, [], None
        checked = await declarations.check(observed)
    if saved is None:
        assert loaded is not None
        refuse_undeclared(checked, output)  # before any write
        with run.clock.phase("diff"):
            return compute_plan(loaded.state, observed), loaded.files, observed, None
    by_id = {str(key.get("id")): key for key in observed}
    stale = None
    try:
        savedplan.check_current(saved, by_id)
    except savedplan.PlanRejected as error:
        stale = error
    return savedplan.to_plan(saved, by_id), savedplan.files_of(saved), observed, stale


async def _writes(options: ApplyOptions, run: _Run, result: Plan, verdicts: _Verdicts) -> ApplyOutcome | None:
    """The refusals (a stale saved plan, the policy, a sink for new secrets, ambiguous names, the safety
    threshold), then the writes."""
    if verdicts.stale is not None:
        raise verdicts.stale
    if not result.writes:
        return None
    if verdicts.policy.refusal is not None:
        raise verdicts.policy.refusal
    changing.require_sinks(options.changes, options.outputs, result)  # before any write: a usage error (64)
    check_names(result)
    check_safety(verdicts.safety, force=options.force)
    with run.clock.phase("apply"):
        # a reviewed plan is applied exactly, or not at all
        return await execute(run.writer, run.session, result, recheck=options.recheck or options.plan is not None)


async def _writes_and_trail(  # noqa: PLR0913 (the run's facts beside its record, keyword-only)
    options: ApplyOptions,
    run: _Run,
    record: RunRecord,
    *,
    verdicts: _Verdicts,
    git: asyncio.Future[dict[str, Any] | None],
    output: Output,
) -> tuple[RunRecord, Refusal | None]:
    """The writes, with who changed the drifted keys looked up beside them (its own budget, never in
    their way), and the files' git state; after writes, the overwritten check and the apply event."""
    result, outcome, refusal = record.plan, None, None
    # A stale saved plan is refused at once: nothing of it is worth a search of the trail.
    searched = Plan((), ()) if verdicts.stale else result
    attributing = asyncio.create_task(attribute_plan(run.session, searched, options.trail))
    try:
        try:
            outcome = await _writes(options, run, result, verdicts)
        except REFUSALS as error:
            refusal = error  # the report is still written: a refused plan is worth auditing
        trail = await attributing
    finally:
        attributing.cancel()
    if outcome is not None:
        with run.clock.phase("trail"):
            trail = await after_apply(
                run.session, options.trail, trail, outcome.results, run_id=run.clock.run_id, git=git
            )
    unsent = [item for item in result.errors if item.status is None]
    # Who changed what, then the results: the last line says how the run ends.
    recover, unsettled = run.writer.recover, len(record.unsettled)
    results = render_results(outcome.results if outcome else [], unsent, recover, trail, unsettled=unsettled)
    if refusal is not None:
        results = "Apply: refused before any write; nothing was sent.\n"
    output.show(render_trail(trail, result) + results)
    # A stopping run does not wait for a git that hangs (its report then names no commit).
    state = None if run.session.interrupted and not git.done() else await git
    return replace(record, outcome=outcome, trail=trail, git=state), refusal


async def _locked(
    options: ApplyOptions, run: _Run, loaded: LoadedDesired | None, saved: dict[str, Any] | None, output: Output
) -> tuple[RunRecord, Refusal | None, ChangesVerdict]:
    """Under the project's lock: the plan, what the policy says of it, the secrets an earlier run
    lost, the writes."""
    with bulk():
        result, files, observed, stale = await _plan_to_apply(run, loaded, saved, output)
    git = start_git_state(files)
    try:
        result, unsettled = _settle(options, run, result, observed)
        output.show(render_plan(result, verbose=options.verbose))
        verdict = check_changes(run.policy, result, observed, run.clock.started, output)
        changing.warn_unsettled(unsettled, run.writer.recover)
        provenance = savedplan.provenance(saved, str(options.plan), run.clock.started) if saved else None
        safety = assess(result, options.max_changes)
        record = RunRecord(
            run.clock,
            run.session.client,
            run.target.project_id,
            result,
            options.settings(),
            files=files,
            safety=safety,
            saved_plan=provenance,
            unsettled=unsettled,
            recovery=run.writer.recover,
        )
        verdicts = _Verdicts(safety, verdict, stale)
        return (*await _writes_and_trail(options, run, record, verdicts=verdicts, git=git, output=output), verdict)
    finally:
        git.cancel()  # a run ended early leaves the thread to git, which ends by `git_state`'s timeout


def _settle(options: ApplyOptions, run: _Run, result: Plan, observed: Observed) -> tuple[Plan, list[Unsettled]]:
    """What the journal says of earlier runs: a name a lost create holds is not created again, and
    while a secret is unsettled the prunes wait (what it replaces must keep working)."""
    records = changing.journal_records(changing.journal_file(options.changes, options.outputs))
    unsettled, lost = settle(records, observed, Project(run.target.project_id, run.target.base_url))
    result = hold_lost_creates(result, lost, options.allow_recreate)
    if unsettled:
        held = f"{len(unsettled)} key(s) with a secret an earlier run issued and never delivered"
        result = replace(result, held_by=held)
    return result, unsettled


def _failures(result: Plan, outcome: ApplyOutcome | None) -> list[str]:
    """Every key that is not as desired, and why (an interruption is said once, not per key)."""
    lines = [f"{item.key.label}: {item.outcome.value}: {item.reason}" for item in result.errors]
    for key in outcome.results if outcome else ():
        if key.outcome is not key.plan.outcome.done and key.outcome is not Outcome.INTERRUPTED:
            lines.append(
                f"{key.id or key.plan.key.label}: {key.outcome.value}: {key.error.message if key.error else ''}"
            )
    return lines


def _ending(record: RunRecord, output: Output) -> int:
    """The last lines, and the exit code."""
    trail = record.trail
    assert trail is not None  # an apply that was not refused looked at the trail (or says why not)
    if trail.event is not None and trail.event.warning:
        output.say(logging.WARNING, f"warning: {trail.event.reason}")
    if record.interrupted:
        output.say(logging.ERROR, changing.INTERRUPTED)
    else:
        output.error_lines(_failures(record.plan, record.outcome))
    return changing.exit_code(
        record.plan,
        record.outcome,
        interrupted=record.interrupted,
        unsettled=record.unsettled,
        overwritten=bool(trail.overwritten),
    )


def _saved_plan(options: ApplyOptions, run: _Run, loaded: LoadedDesired | None) -> dict[str, Any]:
    """The saved plan, once every check that needs no read of the project has passed."""
    assert options.plan is not None
    saved = _load_saved_plan(options.plan, options.max_plan_age, run.target.project_id, run.clock)
    savedplan.require_policy(saved, policy_given=run.policy is not None)
    if loaded is not None:
        savedplan.check_desired(saved, loaded.files)
    return saved


def _refused_unread(
    options: ApplyOptions, run: _Run, loaded: LoadedDesired | None, error: savedplan.PlanRejected, output: Output
) -> Result:
    """A saved plan refused before anything was read: the report still says why (the workflow uploads it)."""
    files = loaded.files if loaded is not None else ()
    git = git_state([file.path for file in files])
    empty = RunRecord(
        run.clock, run.session.client, run.target.project_id, Plan((), ()), options.settings(), files=files, git=git
    )
    report = {**make_report(empty), "refusal": changing.refusal_record(error)}
    return output.result(error.exit_code, report=report, markdown=render_summary(report), clock=run.clock, error=error)


async def _apply(options: ApplyOptions, output: Output) -> Result:
    if options.plan is None and not options.paths:
        raise UsageError("give the desired PATHs, or --plan FILE")
    clock = RunClock("apply")
    prepare()
    loaded = None
    if options.paths:
        with bulk():  # before any credentials or network
            loaded = load_valid(options.paths, output, max_bytes=options.max_file_size, clock=clock)
    policy = configured(options.policy, output) if options.policy.wanted else None
    saved_input = [("the saved plan (--plan)", options.plan)] if options.plan else []
    changing.check_change_outputs(options.changes, options.outputs, [*desired_inputs(loaded), *saved_input])
    target_name = options.remote.target.name if options.remote.target else None
    recover = changing.recovery(options.changes, options.outputs, target_name)
    async with connect(options.remote, concurrency=options.changes.concurrency) as (session, target):
        journal = changing.journal_file(options.changes, options.outputs)
        writer = Writer(options.changes, journal, clock.run_id, target.project_id, recover)
        run = _Run(session, target, clock, writer, policy)
        try:
            saved = _saved_plan(options, run, loaded) if options.plan else None
        except savedplan.PlanRejected as error:
            return _refused_unread(options, run, loaded, error, output)
        lock = lock_path(lock_dir(os.environ), target.base_url, target.project_id)
        async with project_lock(lock, run_id=clock.run_id, wait=options.wait_lock, stop=session.stop):
            record, refusal, verdict = await _locked(options, run, loaded, saved, output)
        record = replace(record, interrupted=session.interrupted)
        report = make_report(record)
    verdict.add_to(report)
    if refusal is not None:
        report["refusal"] = changing.refusal_record(refusal)
    code = _ending(record, output) if refusal is None else refusal.exit_code
    return output.result(code, report=report, markdown=render_summary(report), clock=clock, error=refusal)


async def run(options: ApplyOptions) -> Result:
    return await settled_async(partial(_apply, options))
