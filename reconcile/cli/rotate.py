"""`descope-reconcile rotate`: a new secret for exactly the named keys, delivered to the sinks."""

from __future__ import annotations

import argparse

from reconcile.cli import changes
from reconcile.cli.common import show
from reconcile.cli.options import (
    Parser,
    add_command,
    execution_options,
    remote_options,
    report_options,
    secrets_options,
    targets_options,
)
from reconcile.cli.remote import connect, settings, write_outputs
from reconcile.errors import ExitCode, UsageError
from reconcile.job.changes import unsettled_secrets
from reconcile.job.clock import RunClock
from reconcile.job.fetch import load_keys
from reconcile.job.report import RunRecord, make_report
from reconcile.output.text import render_plan, render_results
from reconcile.plan.diff import plan_rotation


def register(subcommands: argparse._SubParsersAction[Parser]) -> None:
    parser = add_command(
        subcommands,
        "rotate",
        [remote_options(), report_options(), targets_options(), execution_options(), secrets_options()],
        "rotate the named keys: a new secret each, to the sinks; the old ones stop working",
        "Rotate exactly the keys given: each gets a new secret, delivered to --secrets-out and/or "
        "--secrets-command, and its old secret stops working at once. A rotation whose answer was lost is "
        "never sent again blindly: the key is reloaded and the report says what is known. With "
        "descope-reconcile.yaml, name the key's project with --target NAME.",
    )
    parser.add_argument("--ids", required=True, metavar="ID,ID", help="the keys to rotate (comma-separated)")
    parser.add_argument("--dry-run", action="store_true", help="list what would rotate; send nothing")
    parser.set_defaults(handler=run)


async def run(args: argparse.Namespace) -> int:
    key_ids = list(dict.fromkeys(part.strip() for part in args.ids.split(",") if part.strip()))
    if not key_ids:
        raise UsageError("--ids names no key")
    clock = RunClock("rotate")
    recover, outcome = changes.recovery(args), None
    if not args.dry_run:
        changes.check_outputs(args)
    async with connect(args) as (session, target):
        with clock.phase("fetch"):
            found = await load_keys(session, key_ids)
        plan = plan_rotation(key_ids, found)
        show(args, render_plan(plan, verbose=True))
        unsettled = unsettled_secrets(changes.journal_file(args), [key for key in found.values() if key is not None])
        changes.warn_unsettled(unsettled, recover)
        if args.dry_run:
            return ExitCode.FAILURE if plan.errors else ExitCode.OK
        changes.require_sinks(args, plan)  # a usage error (64), before any write
        if plan.changes:
            with clock.phase("rotate"):
                outcome = await changes.run_changes(
                    args, session, plan, clock.run_id, project_id=target.project_id, recover=recover
                )
        show(args, render_results(outcome.results if outcome else [], plan.errors, recover, title="Rotate"))
        report = make_report(
            RunRecord(
                clock,
                session.client,
                target.project_id,
                plan,
                settings(args),
                outcome=outcome,
                unsettled=unsettled,
                recovery=recover,
            )
        )
    write_outputs(args, report, clock)
    if session.interrupted:
        changes.say_interrupted()
        return ExitCode.FAILURE
    failed = outcome is not None and any(r.outcome is not r.plan.outcome.done for r in outcome.results)
    return ExitCode.FAILURE if plan.errors or failed else ExitCode.OK
