"""`descope-reconcile plan`: what apply would change, read-only; exit 2 when there are changes."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from reconcile.cli.common import check_outputs, load, show
from reconcile.cli.options import (
    NO_PATHS,
    PATHS_HELP,
    Parser,
    add_command,
    desired_options,
    max_changes_option,
    remote_options,
    report_options,
    targets_options,
)
from reconcile.cli.remote import Target, connect, log_failures, settings, write_outputs
from reconcile.errors import ExitCode, Interrupted, UsageError
from reconcile.files import write_private_atomically
from reconcile.job.clock import RunClock, bulk
from reconcile.job.load import LoadedDesired
from reconcile.job.session import fetch_keys, interrupted_plan, make_report
from reconcile.output.text import render_plan
from reconcile.plan import saved as savedplan
from reconcile.plan.diff import Plan, compute_plan
from reconcile.plan.safety import Safety, assess

log = logging.getLogger("reconcile")


def register(subcommands: argparse._SubParsersAction[Parser]) -> None:
    parser = add_command(
        subcommands,
        "plan",
        [desired_options(), remote_options(), report_options(), targets_options()],
        "show what apply would change (read-only); exit 2 when there are changes",
        "Read the project, compare it with the desired files, print the changes. Sends no change.",
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help=PATHS_HELP)
    parser.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="save the plan for `apply --plan FILE` (a plan with keys in error is saved, and apply refuses it)",
    )
    max_changes_option(parser, "warn when apply would refuse this plan (with the same --max-changes)")
    parser.set_defaults(handler=run)


def _save(args: argparse.Namespace, result: Plan, target: Target, loaded: LoadedDesired, clock: RunClock) -> None:
    saved = savedplan.save(
        result, project_id=target.project_id, base_url=target.base_url, files=loaded.files, created=clock.started
    )
    write_private_atomically(args.out, json.dumps(saved, indent=2, ensure_ascii=False) + "\n")
    log.info("plan saved to %s (%d change(s))", args.out, len(result.updates))
    if result.errors:
        log.error("error: the saved plan has %d key(s) in error: `apply --plan` will refuse it", len(result.errors))


def _compare(
    args: argparse.Namespace, loaded: LoadedDesired, observed: list[dict[str, Any]], target: Target, clock: RunClock
) -> tuple[Plan, Safety]:
    """The plan from what was read: shown, checked against the safety threshold, saved with --out."""
    with clock.phase("diff"):
        result = compute_plan(loaded.state, observed)
    show(args, render_plan(result, verbose=args.verbose > 0))
    safety = assess(result, args.max_changes)
    if safety.exceeded:
        show(args, f"Warning: apply would refuse this plan (exit 3): {safety.describe()}.\n")
    if args.out:
        _save(args, result, target, loaded, clock)
    return result, safety


async def run(args: argparse.Namespace) -> int:
    if not args.paths:
        raise UsageError(NO_PATHS)
    clock = RunClock("plan")
    with bulk():
        loaded = load(args, clock=clock)  # any validation error: no network call at all
        check_outputs(args, "--out", "--report", "--summary")  # nor when a result could not be written
        async with connect(args) as (session, target):
            try:
                with clock.phase("fetch"):
                    observed = await fetch_keys(session)
            except Interrupted:
                result, safety = interrupted_plan(loaded.state.keys), None
            else:
                result, safety = _compare(args, loaded, observed, target, clock)
            report = make_report(
                clock,
                loaded.files,
                session.client,
                target.project_id,
                result,
                settings=settings(args),
                safety=safety,
                interrupted=session.interrupted,
            )
        write_outputs(args, report, clock)
    if session.interrupted:
        log.error("interrupted: the request in flight was cancelled; the plan is incomplete")
        return ExitCode.FAILURE
    log_failures([f"{item.key.id}: {item.outcome.value}: {item.reason}" for item in result.errors])
    if result.errors:
        return ExitCode.FAILURE
    return ExitCode.CHANGES_PENDING if result.updates else ExitCode.OK
