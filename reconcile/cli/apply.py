"""`descope-reconcile apply`: make every planned change (fresh plan or a reviewed saved plan): updates,
creates (their secrets to the sinks), and prunes."""

from __future__ import annotations

import argparse
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
    desired_options,
    execution_options,
    max_changes_option,
    non_negative_float,
    parsed,
    remote_options,
    report_options,
    secrets_options,
    targets_options,
)
from reconcile.cli.remote import connect, settings, write_outputs
from reconcile.errors import ExitCode, SafetyThresholdExceeded, UsageError
from reconcile.job.clock import RunClock, bulk
from reconcile.job.load import LoadedDesired
from reconcile.job.lock import lock_dir, lock_path, project_lock
from reconcile.job.session import ApplyOutcome, Session, fetch_keys, make_report, unsettled_secrets
from reconcile.model import DesiredFile
from reconcile.output.recovery import Recovery
from reconcile.output.text import render_plan, render_results
from reconcile.plan import saved as savedplan
from reconcile.plan.diff import Plan, compute_plan
from reconcile.plan.safety import AmbiguousNames, Safety, assess, check_names, check_safety

log = logging.getLogger("reconcile")
Observed = list[dict[str, Any]]


def register(subcommands: argparse._SubParsersAction[Parser]) -> None:
    parser = add_command(
        subcommands,
        "apply",
        [
            desired_options(),
            remote_options(),
            report_options(),
            targets_options(),
            execution_options(),
            secrets_options(),
        ],
        "make every planned change: updates, creates, prunes; none for keys in sync",
        "Plan (or load a saved plan), then change every key that differs, create the keys named by no project "
        "key (their secrets go to --secrets-out / --secrets-command), prune what the prune scopes say: "
        "rate-limited, retried, journaled.",
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
        document: dict[str, Any] = json.loads(args.plan.read_text(encoding="utf-8"))
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
    with clock.phase("fetch"):
        observed = await fetch_keys(session)
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
    project_id: str,
    safety: Safety,
    recover: Recovery,
) -> ApplyOutcome | None:
    """The refusals (a sink for new secrets, ambiguous names, the safety threshold), then the writes;
    prints the results and why the run ends in error."""
    outcome = None
    if result.writes:
        changes.require_sinks(args, result)  # before any write: a usage error (64)
        check_names(result)
        check_safety(safety, force=args.force)
        with clock.phase("apply"):
            outcome = await changes.run_changes(
                args, session, result, clock.run_id, project_id=project_id, recover=recover
            )
    unsent = [item for item in result.errors if item.status is None]
    show(args, render_results(outcome.results if outcome else [], unsent, recover))
    return outcome


async def run(args: argparse.Namespace) -> int:
    if args.plan is None and not args.paths:
        raise UsageError("give the desired PATHs, or --plan FILE")
    clock = RunClock("apply")
    with bulk():
        loaded = load(args, clock=clock) if args.paths else None  # before any credentials or network
    changes.check_outputs(args)
    outcome, refusal, recover = None, None, changes.recovery(args)
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
            try:
                outcome = await _apply(
                    args, session, result, clock, project_id=target.project_id, safety=safety, recover=recover
                )
            except (SafetyThresholdExceeded, AmbiguousNames) as error:
                refusal = error  # the report is still written: a refused plan is worth auditing
        provenance = savedplan.provenance(saved, str(args.plan), clock.started) if saved else None
        report = make_report(
            clock,
            files,
            session.client,
            target.project_id,
            result,
            settings=settings(args),
            outcome=outcome,
            safety=safety,
            saved_plan=provenance,
            unsettled=unsettled,
            recovery=recover,
        )
    write_outputs(args, report, clock)
    if refusal is not None:
        raise refusal
    failed = outcome is not None and any(r.outcome is not r.plan.outcome.done for r in outcome.results)
    return ExitCode.FAILURE if result.errors or unsettled or failed else ExitCode.OK
