"""`descope-reconcile apply`: send one update per key that differs (fresh plan or a reviewed saved plan)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any

from reconcile.apply.journal import Journal
from reconcile.cli.common import check_outputs, desired_inputs, load, show
from reconcile.cli.options import (
    PATHS_HELP,
    Parser,
    add_command,
    audit_event_options,
    desired_options,
    max_changes_option,
    non_negative_float,
    parsed,
    positive_float,
    positive_int,
    remote_options,
    report_options,
    targets_options,
    trail_options,
)
from reconcile.cli.remote import connect, log_failures, settings, trail_settings, write_outputs
from reconcile.errors import ExitCode, Interrupted, SafetyThresholdExceeded, UsageError
from reconcile.files import read_input
from reconcile.job.clock import RunClock, bulk
from reconcile.job.load import LoadedDesired
from reconcile.job.lock import lock_dir, lock_path, project_lock
from reconcile.job.session import (
    ApplyOutcome,
    Session,
    execute,
    fetch_keys,
    interrupted_plan,
    journal_path_for,
    make_report,
)
from reconcile.job.trail import TrailSettings, after_apply, attribute_plan
from reconcile.model import DesiredFile
from reconcile.output.text import render_plan, render_results, render_trail
from reconcile.plan import saved as savedplan
from reconcile.plan.diff import Outcome, Plan, compute_plan
from reconcile.plan.safety import Safety, assess, check_safety
from reconcile.trail.findings import TrailFindings

log = logging.getLogger("reconcile")
DEFAULT_CONCURRENCY = 8


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
        ],
        "send one update per key that differs, and none for the others",
        "Plan (or load a saved plan), then change every key that differs: rate-limited, retried, journaled. "
        "Then look in the audit trail for changes it overwrote, and record the apply there.",
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
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        default=DEFAULT_CONCURRENCY,
        help=f"updates in flight at once (default {DEFAULT_CONCURRENCY})",
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
    parser.add_argument("--journal", type=Path, metavar="FILE", help="JSON Lines journal (default: beside --report)")
    parser.add_argument(
        "--progress-every",
        type=positive_float,
        default=0.0,
        metavar="SECONDS",
        help="progress on stderr this often (default: a live line on a terminal, else a log line every 5 s)",
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
) -> tuple[Plan, tuple[DesiredFile, ...]]:
    """The fresh plan from the desired files, or the saved plan once proven current."""
    try:
        with clock.phase("fetch"):
            observed = await fetch_keys(session)
    except Interrupted:
        if saved is not None:
            by_id: dict[str, Any] = {}
            return interrupted_plan(item.key for item in savedplan.to_plan(saved, by_id).keys), savedplan.files_of(
                saved
            )
        assert loaded is not None
        return interrupted_plan(loaded.state.keys), loaded.files
    if saved is None:
        assert loaded is not None
        with clock.phase("diff"):
            return compute_plan(loaded.state, observed), loaded.files
    by_id = {str(key.get("id")): key for key in observed}
    savedplan.check_current(saved, by_id)
    return savedplan.to_plan(saved, by_id), savedplan.files_of(saved)


def _journal_file(args: argparse.Namespace) -> Path | None:
    return args.journal or (journal_path_for(args.report) if args.report else None)


async def _execute(args: argparse.Namespace, session: Session, result: Plan, run_id: str) -> ApplyOutcome:
    journal_file = _journal_file(args)
    journal = Journal(journal_file, run_id) if journal_file else None
    try:
        outcome = await execute(
            session,
            result,
            concurrency=args.concurrency,
            journal=journal,
            progress_every=None if args.quiet else args.progress_every,
            recheck=args.recheck or args.plan is not None,  # a reviewed plan is applied exactly, or not at all
        )
    finally:
        if journal is not None:
            journal.close()
    if outcome.fatal is not None:
        log.error("error: %s; the run stopped, nothing more was sent", outcome.fatal)
    return outcome


async def _apply(
    args: argparse.Namespace, session: Session, result: Plan, clock: RunClock, safety: Safety
) -> ApplyOutcome | None:
    """The safety threshold, then the writes."""
    if not result.writes:
        return None
    check_safety(safety, force=args.force)  # before any write
    with clock.phase("apply"):
        return await _execute(args, session, result, clock.run_id)


async def _apply_and_trail(
    args: argparse.Namespace,
    session: Session,
    planned: tuple[Plan, tuple[DesiredFile, ...]],
    clock: RunClock,
    safety: Safety,
) -> tuple[ApplyOutcome | None, SafetyThresholdExceeded | None, TrailFindings]:
    """The writes, with who changed the drifted keys looked up beside them (its own budget, never in
    their way); after writes, the overwritten check and the apply event."""
    result, files = planned
    wanted: TrailSettings = trail_settings(args)
    outcome, refusal = None, None
    attributing = asyncio.create_task(attribute_plan(session, result, wanted))
    try:
        try:
            outcome = await _apply(args, session, result, clock, safety)
        except SafetyThresholdExceeded as error:
            refusal = error  # the report is still written: a refused plan is worth auditing
        trail = await attributing
    finally:
        attributing.cancel()
    if outcome is not None:
        with clock.phase("trail"):
            trail = await after_apply(session, wanted, trail, outcome.results, run_id=clock.run_id, files=files)
    unsent = [item for item in result.errors if item.status is None]
    # Who changed what, then the results: the last line says how the run ends.
    show(args, render_trail(trail, result) + render_results(outcome.results if outcome else [], unsent, trail))
    return outcome, refusal, trail


def _failures(result: Plan, outcome: ApplyOutcome | None) -> list[str]:
    """Every key that is not as desired, and why (an interruption is said once, not per key)."""
    lines = [f"{item.key.id}: {item.outcome.value}: {item.reason}" for item in result.errors]
    for key in outcome.results if outcome else ():
        if key.outcome not in (Outcome.UPDATED, Outcome.INTERRUPTED):
            lines.append(f"{key.plan.key.id}: {key.outcome.value}: {key.error.message if key.error else ''}")
    return lines


def _check_outputs(args: argparse.Namespace, loaded: LoadedDesired | None) -> None:
    """Every file this run will write, before it sends anything (or reads the project)."""
    journal = [("--journal" if args.journal else "journal", _journal_file(args))]
    plan = [("the saved plan (--plan)", args.plan)] if args.plan else []
    check_outputs(args, "--report", "--summary", more=journal, inputs=[*desired_inputs(loaded), *plan])


async def run(args: argparse.Namespace) -> int:
    if args.plan is None and not args.paths:
        raise UsageError("give the desired PATHs, or --plan FILE")
    clock = RunClock("apply")
    with bulk():
        loaded = load(args, clock=clock) if args.paths else None  # before any credentials or network
    _check_outputs(args, loaded)
    async with connect(args) as (session, target):
        saved = _load_saved_plan(args, target.project_id, clock) if args.plan else None
        if saved is not None and loaded is not None:
            savedplan.check_desired(saved, loaded.files)
        lock = lock_path(lock_dir(os.environ), target.base_url, target.project_id)
        async with project_lock(lock, run_id=clock.run_id, wait=args.wait_lock, stop=session.stop):
            with bulk():
                result, files = await _plan_to_apply(session, clock, loaded, saved)
            show(args, render_plan(result, verbose=args.verbose > 0))
            safety = assess(result, args.max_changes)
            outcome, refusal, trail = await _apply_and_trail(args, session, (result, files), clock, safety)
        provenance = savedplan.provenance(saved, str(args.plan), clock.started) if saved else None
        report = make_report(
            clock,
            files,
            session.client,
            target.project_id,
            result,
            settings=settings(args),
            outcome=outcome,
            interrupted=session.interrupted,
            safety=safety,
            saved_plan=provenance,
            trail=trail,
        )
    write_outputs(args, report, clock)
    if trail.event is not None and trail.event.warning:
        log.warning("warning: %s", trail.event.reason)
    if refusal is not None:
        raise refusal
    if session.interrupted:
        log.error("interrupted: requests in flight were cancelled and nothing more was sent; see the report")
        return ExitCode.FAILURE
    log_failures(_failures(result, outcome))
    if result.errors or (outcome and any(r.outcome is not Outcome.UPDATED for r in outcome.results)):
        return ExitCode.FAILURE
    return ExitCode.OVERWRITTEN if trail.overwritten else ExitCode.OK
