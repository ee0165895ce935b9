"""`descope-reconcile plan`: what apply would change, read-only; exit 2 when there are changes."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from reconcile.cli.common import check_outputs, desired_inputs, load, show
from reconcile.cli.options import (
    PATHS_HELP,
    Parser,
    add_command,
    desired_options,
    max_changes_option,
    remote_options,
    report_options,
    targets_options,
    trail_options,
)
from reconcile.cli.remote import Target, connect, log_failures, settings, trail_settings, write_outputs
from reconcile.errors import ExitCode, Interrupted, UsageError
from reconcile.files import write_private_atomically
from reconcile.job.clock import RunClock, bulk
from reconcile.job.fetch import fetch_keys, interrupted_plan
from reconcile.job.load import LoadedDesired
from reconcile.job.options import NO_PATHS
from reconcile.job.report import RunRecord, make_report
from reconcile.job.trail import attribute_plan
from reconcile.output.escape import json_document
from reconcile.output.text import render_plan
from reconcile.plan import saved as savedplan
from reconcile.plan.diff import Plan, compute_plan
from reconcile.plan.safety import Safety, assess
from reconcile.trail.findings import TrailFindings

log = logging.getLogger("reconcile")


def register(subcommands: argparse._SubParsersAction[Parser]) -> None:
    parser = add_command(
        subcommands,
        "plan",
        [desired_options(), remote_options(), report_options(), targets_options(), trail_options()],
        "show what apply would change (read-only); exit 2 when there are changes",
        "Read the project, compare it with the desired files, print the changes and who last changed "
        "each drifted key (the audit trail). Sends no change.",
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
    write_private_atomically(args.out, json_document(saved))
    log.info("plan saved to %s (%d change(s))", args.out, len(result.changes))
    if result.errors:
        log.error("error: the saved plan has %d key(s) in error: `apply --plan` will refuse it", len(result.errors))


async def run(args: argparse.Namespace) -> int:
    if not args.paths:
        raise UsageError(NO_PATHS)
    clock = RunClock("plan")
    with bulk():
        loaded = load(args, clock=clock)  # any validation error: no network call at all
        # nor when a result could not be written, or would overwrite a desired file
        check_outputs(args, "--out", "--report", "--summary", inputs=desired_inputs(loaded))
        async with connect(args) as (session, target):
            trail: TrailFindings | None = None
            safety: Safety | None = None
            try:
                with clock.phase("fetch"):
                    observed = await fetch_keys(session)
            except Interrupted:
                result = interrupted_plan(loaded.state.keys)
            else:
                with clock.phase("diff"):
                    result = compute_plan(loaded.state, observed)
                with clock.phase("attribution"):
                    trail = await attribute_plan(session, result, trail_settings(args))
                show(args, render_plan(result, verbose=args.verbose > 0, trail=trail))
                safety = assess(result, args.max_changes)
                if safety.exceeded:
                    show(args, f"Warning: apply would refuse this plan (exit 3): {safety.describe()}.\n")
                if args.out:
                    _save(args, result, target, loaded, clock)
            report = make_report(
                RunRecord(
                    clock,
                    session.client,
                    target.project_id,
                    result,
                    settings(args),
                    files=loaded.files,
                    interrupted=session.interrupted,
                    safety=safety,
                    trail=trail,
                )
            )
        write_outputs(args, report, clock)
    if session.interrupted:
        log.error("interrupted: the request in flight was cancelled; the plan is incomplete")
        return ExitCode.FAILURE
    log_failures([f"{item.key.id}: {item.outcome.value}: {item.reason}" for item in result.errors])
    if result.errors:
        return ExitCode.FAILURE
    return ExitCode.CHANGES_PENDING if result.changes else ExitCode.OK
