"""`descope-reconcile rotate`: a new secret for exactly the named keys, delivered to the sinks."""

from __future__ import annotations

import argparse
import contextlib
import os
from typing import Any

from reconcile.apply.journal import Project, read_records
from reconcile.cli import changes
from reconcile.cli.common import show
from reconcile.cli.options import (
    Parser,
    add_command,
    add_policy_option,
    execution_options,
    positive_int,
    remote_options,
    report_options,
    secrets_options,
    targets_options,
)
from reconcile.cli.policy import rotation_age
from reconcile.cli.remote import connect, settings, write_outputs
from reconcile.errors import ExitCode, UsageError
from reconcile.job.clock import RunClock
from reconcile.job.lock import lock_dir, lock_path, project_lock
from reconcile.job.session import Session, fetch_keys, load_keys, make_report, unsettled_secrets
from reconcile.output.text import render_plan, render_results
from reconcile.plan.diff import plan_rotation
from reconcile.policy.rotation import due_keys, last_rotations

Found = dict[str, dict[str, Any] | None]


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
    parser.add_argument("--ids", metavar="ID,ID", help="the keys to rotate (comma-separated)")
    parser.add_argument(
        "--due",
        action="store_true",
        help="instead of --ids: every active key whose secret is older than the policy's `max-key-age` "
        "(since its creation, or its last rotation in the journal), oldest first, under the project's lock",
    )
    parser.add_argument(
        "--max-keys",
        type=positive_int,
        default=10,
        metavar="N",
        help="with --due: rotate at most N keys in this run, the oldest (default 10); the rest are left for the next",
    )
    add_policy_option(parser)
    parser.add_argument("--dry-run", action="store_true", help="list what would rotate; send nothing")
    parser.set_defaults(handler=run)


async def _due(args: argparse.Namespace, session: Session, max_days: int, clock: RunClock) -> Found:
    """The keys past the rotation age, the oldest `--max-keys` of them."""
    with clock.phase("fetch"):
        observed = await fetch_keys(session)
    journal = changes.journal_file(args)
    rotated = last_rotations(read_records(journal) if journal is not None and journal.is_file() else [])
    due = due_keys(observed, max_days, clock.started, rotated)
    chosen = due[: args.max_keys]
    left = (
        f"; {len(due) - len(chosen)} left for the next run (--max-keys {args.max_keys})" if due[len(chosen) :] else ""
    )
    show(args, f"{len(due)} key(s) past the rotation age of {max_days} days{left}.\n")
    by_id = {str(key.get("id")): key for key in observed}
    return {item.id: by_id[item.id] for item in chosen}


async def run(args: argparse.Namespace) -> int:
    if bool(args.ids) == args.due:
        raise UsageError("give --ids ID,ID, or --due (the keys past the policy's max-key-age)")
    key_ids = list(dict.fromkeys(part.strip() for part in (args.ids or "").split(",") if part.strip()))
    if args.ids and not key_ids:
        raise UsageError("--ids names no key")
    max_days = rotation_age(args) if args.due else None
    clock = RunClock("rotate")
    recover, outcome = changes.recovery(args), None
    if not args.dry_run:
        changes.check_outputs(args)
    async with connect(args) as (session, target), contextlib.AsyncExitStack() as held:
        if max_days is not None:
            lock = lock_path(lock_dir(os.environ), target.base_url, target.project_id)
            await held.enter_async_context(project_lock(lock, run_id=clock.run_id, wait=0.0, stop=session.stop))
            found = await _due(args, session, max_days, clock)
            key_ids = list(found)
        else:
            with clock.phase("fetch"):
                found = await load_keys(session, key_ids)
        plan = plan_rotation(key_ids, found)
        show(args, render_plan(plan, verbose=True))
        keys, project = [key for key in found.values() if key is not None], Project(target.project_id, target.base_url)
        unsettled = unsettled_secrets(changes.journal_file(args), keys, project)
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
            clock,
            (),
            session.client,
            target.project_id,
            plan,
            settings=settings(args),
            outcome=outcome,
            unsettled=unsettled,
            recovery=recover,
        )
    write_outputs(args, report, clock)
    if session.interrupted:
        changes.say_interrupted()
        return ExitCode.FAILURE
    failed = outcome is not None and (
        outcome.fatal is not None or any(r.outcome is not r.plan.outcome.done for r in outcome.results)
    )
    return ExitCode.FAILURE if plan.errors or failed else ExitCode.OK
