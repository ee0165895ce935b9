"""`descope-reconcile apply`: make every planned change (fresh plan or a reviewed saved plan): updates,
creates (their secrets to the sinks), and prunes."""

from __future__ import annotations

import argparse
import json
import logging
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
    parsed,
    remote_options,
    report_options,
    secrets_options,
)
from reconcile.cli.remote import Target, connect, settings, write_outputs
from reconcile.errors import ExitCode, ReconcileError, UsageError
from reconcile.job.clock import RunClock, bulk
from reconcile.job.load import LoadedDesired
from reconcile.job.session import Session, fetch_keys, make_report, unsettled_secrets
from reconcile.model import DesiredFile
from reconcile.output.text import render_plan
from reconcile.plan import saved as savedplan
from reconcile.plan.diff import Plan, compute_plan
from reconcile.plan.safety import (
    DEFAULT_MAX_CHANGES_SHARE,
    DEFAULT_THRESHOLD_MIN_KEYS,
    ChangeLimit,
    check_names,
    check_safety,
)

log = logging.getLogger("reconcile")
Observed = list[dict[str, Any]]


def register(subcommands: argparse._SubParsersAction[Parser]) -> None:
    parser = add_command(
        subcommands,
        "apply",
        [desired_options(), remote_options(), report_options(), execution_options(), secrets_options()],
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
    parser.add_argument(
        "--max-changes",
        type=parsed(ChangeLimit.parse),
        metavar="N|P%",
        help="refuse (exit 3) before any write when more keys would change; default "
        f"{DEFAULT_MAX_CHANGES_SHARE * 100:.0f}%% when more than {DEFAULT_THRESHOLD_MIN_KEYS} keys are managed",
    )
    parser.add_argument("--force", action="store_true", help="apply even over --max-changes")
    parser.set_defaults(handler=run)


def _load_saved_plan(args: argparse.Namespace, project_id: str, clock: RunClock) -> dict[str, Any]:
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
    args: argparse.Namespace, session: Session, target: Target, clock: RunClock, loaded: LoadedDesired | None
) -> tuple[Plan, tuple[DesiredFile, ...], Observed]:
    """The fresh plan from the desired files, or the saved plan once proven current; and the keys read."""
    saved = _load_saved_plan(args, target.project_id, clock) if args.plan else None
    if saved is not None and loaded is not None:
        savedplan.check_desired(saved, loaded.files)
    with clock.phase("fetch"):
        observed = await fetch_keys(session)
    if saved is None:
        assert loaded is not None
        with clock.phase("diff"):
            return compute_plan(loaded.state, observed), loaded.files, observed
    stale = savedplan.stale_keys(saved, observed)
    if stale:
        shown = ", ".join(stale[:20]) + (f" and {len(stale) - 20} more" if len(stale) > 20 else "")
        raise savedplan.PlanRejected(
            f"{len(stale)} planned key(s) changed since the plan was made: {shown}; plan again"
        )
    return savedplan.to_plan(saved, observed), savedplan.files_of(saved), observed


async def run(args: argparse.Namespace) -> int:
    if args.plan is None and not args.paths:
        raise UsageError("give the desired PATHs, or --plan FILE")
    clock = RunClock("apply")
    with bulk():
        loaded = load(args, clock=clock) if args.paths else None  # before any credentials or network
    outcome, refusal, recover = None, None, changes.recovery(args)
    async with connect(args) as (session, target):
        with bulk():
            result, files, observed = await _plan_to_apply(args, session, target, clock, loaded)
        show(args, render_plan(result, verbose=args.verbose > 0))
        unsettled = unsettled_secrets(changes.journal_file(args), observed)
        changes.warn_unsettled(unsettled, recover)
        if result.changes:
            changes.require_sinks(args, result)  # a usage error (64), before any write
            try:  # before any write
                check_names(result)
                check_safety(result, args.max_changes, force=args.force)
            except ReconcileError as error:
                refusal = error  # the report is still written: a refused plan is worth auditing
            else:
                with clock.phase("apply"):
                    outcome = await changes.run_changes(args, session, result, clock.run_id, recover, title="Apply")
        report = make_report(
            clock,
            files,
            session.client,
            target.project_id,
            result,
            settings=settings(args),
            outcome=outcome,
            unsettled=unsettled,
            recovery=recover,
        )
    write_outputs(args, report, clock)
    if refusal is not None:
        raise refusal
    failed = outcome and any(r.outcome is not r.plan.outcome.done for r in outcome.results)
    return ExitCode.FAILURE if result.errors or unsettled or failed else ExitCode.OK
