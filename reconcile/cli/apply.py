"""`descope-reconcile apply`: make every planned change (fresh plan or a reviewed saved plan): updates,
creates (their secrets to the sinks), and prunes."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any

from reconcile.cli import changes
from reconcile.cli.common import load, show
from reconcile.cli.options import (
    PATHS_HELP,
    Parser,
    add_command,
    audit_event_options,
    desired_options,
    execution_options,
    max_changes_option,
    non_negative_float,
    parsed,
    remote_options,
    report_options,
    secrets_options,
    targets_options,
    trail_options,
)
from reconcile.cli.remote import connect, log_failures, settings, trail_settings, write_outputs
from reconcile.errors import ExitCode, Interrupted, SafetyThresholdExceeded, UsageError
from reconcile.files import read_input
from reconcile.job.changes import unsettled_secrets
from reconcile.job.clock import RunClock, bulk
from reconcile.job.execute import ApplyOutcome
from reconcile.job.fetch import fetch_keys, interrupted_plan
from reconcile.job.load import LoadedDesired
from reconcile.job.lock import lock_dir, lock_path, project_lock
from reconcile.job.report import RunRecord, make_report
from reconcile.job.session import Session
from reconcile.job.trail import TrailSettings, after_apply, attribute_plan
from reconcile.model import DesiredFile
from reconcile.output.recovery import Recovery
from reconcile.output.text import render_plan, render_results, render_trail
from reconcile.plan import saved as savedplan
from reconcile.plan.diff import Outcome, Plan, compute_plan
from reconcile.plan.safety import AmbiguousNames, Safety, assess, check_names, check_safety
from reconcile.trail.findings import TrailFindings

log = logging.getLogger("reconcile")
Observed = list[dict[str, Any]]
Refusal = SafetyThresholdExceeded | AmbiguousNames


def register(subcommands: argparse._SubParsersAction[Parser]) -> None:
    parser = add_command(
        subcommands,
        "apply",
        [
            desired_options(),
            remote_options(),
            report_options(),
            targets_options(),
            trail_options(),
            audit_event_options(),
            execution_options(),
            secrets_options(),
        ],
        "make every planned change: updates, creates, prunes; none for keys in sync",
        "Plan (or load a saved plan), then change every key that differs, create the keys named by no project "
        "key (their secrets go to --secrets-out / --secrets-command), prune what the prune scopes say: "
        "rate-limited, retried, journaled. Then look in the audit trail for changes it overwrote, and record "
        "the apply there.",
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help=PATHS_HELP + "; optional with --plan")
    parser.add_argument(
        "--plan",
        type=Path,
        metavar="FILE",
        help="apply this saved plan and nothing else; refused if stale, edited or too old "
        "(with PATHs, also if the desired files changed)",
    )
    parser.add_argument(
        "--max-plan-age",
        type=parsed(savedplan.parse_age),
        default=savedplan.parse_age("24h"),
        metavar="AGE",
        help="refuse a saved plan older than this: 24h (default), 90m, 3600s, 2d",
    )
    max_changes_option(parser, "refuse (exit 3) before any write when more keys would change")
    parser.add_argument("--force", action="store_true", help="apply even over --max-changes")
    parser.add_argument(
        "--recheck",
        action="store_true",
        help="read each key again just before writing it, and skip it (stale, exit 1) if it changed since "
        "the plan's read: one more request per changed key (always on with --plan)",
    )
    parser.add_argument(
        "--wait-lock",
        type=non_negative_float,
        default=0.0,
        metavar="SECONDS",
        help="wait this long for another apply on this machine to the same project (default 0: refuse at once)",
    )
    parser.set_defaults(handler=run)


def _load_saved_plan(args: argparse.Namespace, project_id: str, clock: RunClock) -> dict[str, Any]:
    """The saved plan, once every check that needs no request has passed."""
    try:
        document: dict[str, Any] = json.loads(read_input(args.plan, max_bytes=None).decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise savedplan.PlanRejected(f"{args.plan} is not a saved plan (not JSON)") from None
    try:
        savedplan.verify(document, now=clock.started, max_age=args.max_plan_age, project_id=project_id)
    except (KeyError, TypeError, ValueError):
        raise savedplan.PlanRejected(f"{args.plan} is not a complete saved plan") from None
    return document


async def _plan_to_apply(
    session: Session, clock: RunClock, loaded: LoadedDesired | None, saved: dict[str, Any] | None
) -> tuple[Plan, tuple[DesiredFile, ...], Observed]:
    """The fresh plan from the desired files, or the saved plan once proven current; and the keys read."""
    try:
        with clock.phase("fetch"):
            observed = await fetch_keys(session)
    except Interrupted:
        if saved is not None:
            by_id: dict[str, Any] = {}
            keys = (item.key for item in savedplan.to_plan(saved, by_id).keys)
            return interrupted_plan(keys), savedplan.files_of(saved), []
        assert loaded is not None
        return interrupted_plan(loaded.state.keys), loaded.files, []
    if saved is None:
        assert loaded is not None
        with clock.phase("diff"):
            return compute_plan(loaded.state, observed), loaded.files, observed
    by_id = {str(key.get("id")): key for key in observed}
    savedplan.check_current(saved, by_id)
    return savedplan.to_plan(saved, by_id), savedplan.files_of(saved), observed


async def _apply(
    args: argparse.Namespace,
    session: Session,
    result: Plan,
    clock: RunClock,
    *,
    safety: Safety,
    recover: Recovery,
    project_id: str,
) -> ApplyOutcome | None:
    """The refusals (a sink for new secrets, ambiguous names, the safety threshold), then the writes."""
    if not result.writes:
        return None
    changes.require_sinks(args, result)  # before any write: a usage error (64)
    check_names(result)
    check_safety(safety, force=args.force)
    with clock.phase("apply"):
        return await changes.run_changes(args, session, result, clock.run_id, project_id=project_id, recover=recover)


async def _apply_and_trail(
    args: argparse.Namespace,
    session: Session,
    planned: tuple[Plan, tuple[DesiredFile, ...]],
    clock: RunClock,
    *,
    safety: Safety,
    recover: Recovery,
    project_id: str,
) -> tuple[ApplyOutcome | None, Refusal | None, TrailFindings]:
    """The writes, with who changed the drifted keys looked up beside them (its own budget, never in
    their way); after writes, the overwritten check and the apply event."""
    result, files = planned
    wanted: TrailSettings = trail_settings(args)
    outcome, refusal = None, None
    attributing = asyncio.create_task(attribute_plan(session, result, wanted))
    try:
        try:
            outcome = await _apply(args, session, result, clock, safety=safety, recover=recover, project_id=project_id)
        except (SafetyThresholdExceeded, AmbiguousNames) as error:
            refusal = error  # the report is still written: a refused plan is worth auditing
        trail = await attributing
    finally:
        attributing.cancel()
    if outcome is not None:
        with clock.phase("trail"):
            trail = await after_apply(session, wanted, trail, outcome.results, run_id=clock.run_id, files=files)
    unsent = [item for item in result.errors if item.status is None]
    # Who changed what, then the results: the last line says how the run ends.
    results = render_results(outcome.results if outcome else [], unsent, recover, trail)
    show(args, render_trail(trail, result) + results)
    return outcome, refusal, trail


def _failures(result: Plan, outcome: ApplyOutcome | None) -> list[str]:
    """Every key that is not as desired, and why (an interruption is said once, not per key)."""
    lines = [f"{item.key.label}: {item.outcome.value}: {item.reason}" for item in result.errors]
    for key in outcome.results if outcome else ():
        if key.outcome is not key.plan.outcome.done and key.outcome is not Outcome.INTERRUPTED:
            lines.append(
                f"{key.id or key.plan.key.label}: {key.outcome.value}: {key.error.message if key.error else ''}"
            )
    return lines


async def run(args: argparse.Namespace) -> int:
    if args.plan is None and not args.paths:
        raise UsageError("give the desired PATHs, or --plan FILE")
    clock = RunClock("apply")
    with bulk():
        loaded = load(args, clock=clock) if args.paths else None  # before any credentials or network
    changes.check_outputs(args, loaded)
    recover = changes.recovery(args)
    async with connect(args) as (session, target):
        saved = _load_saved_plan(args, target.project_id, clock) if args.plan else None
        if saved is not None and loaded is not None:
            savedplan.check_desired(saved, loaded.files)
        lock = lock_path(lock_dir(os.environ), target.base_url, target.project_id)
        async with project_lock(lock, run_id=clock.run_id, wait=args.wait_lock, stop=session.stop):
            with bulk():
                result, files, observed = await _plan_to_apply(session, clock, loaded, saved)
            show(args, render_plan(result, verbose=args.verbose > 0))
            unsettled = unsettled_secrets(changes.journal_file(args), observed)
            changes.warn_unsettled(unsettled, recover)
            safety = assess(result, args.max_changes)
            outcome, refusal, trail = await _apply_and_trail(
                args, session, (result, files), clock, safety=safety, recover=recover, project_id=target.project_id
            )
        provenance = savedplan.provenance(saved, str(args.plan), clock.started) if saved else None
        report = make_report(
            RunRecord(
                clock,
                session.client,
                target.project_id,
                result,
                settings(args),
                files=files,
                outcome=outcome,
                interrupted=session.interrupted,
                safety=safety,
                saved_plan=provenance,
                trail=trail,
                unsettled=unsettled,
                recovery=recover,
            )
        )
    write_outputs(args, report, clock)
    if trail.event is not None and trail.event.warning:
        log.warning("warning: %s", trail.event.reason)
    if refusal is not None:
        raise refusal
    if session.interrupted:
        changes.say_interrupted()
        return ExitCode.FAILURE
    log_failures(_failures(result, outcome))
    failed = outcome is not None and any(r.outcome is not r.plan.outcome.done for r in outcome.results)
    if result.errors or unsettled or failed:
        return ExitCode.FAILURE
    return ExitCode.OVERWRITTEN if trail.overwritten else ExitCode.OK
