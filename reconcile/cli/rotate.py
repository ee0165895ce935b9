"""`descope-reconcile rotate`: a new secret for exactly the named keys, delivered to the sinks."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
from typing import Any

from reconcile.apply.journal import Project, read_records
from reconcile.cli import changes
from reconcile.cli.common import show
from reconcile.cli.options import (
    Parser,
    add_command,
    add_policy_option,
    audit_event_options,
    execution_options,
    non_negative_float,
    positive_int,
    remote_options,
    report_options,
    secrets_options,
    targets_options,
    trail_options,
)
from reconcile.cli.policy import rotation_age
from reconcile.cli.remote import connect, settings, trail_settings, write_outputs
from reconcile.errors import ExitCode, ReconcileError, UsageError
from reconcile.job.clock import RunClock
from reconcile.job.load import load_desired
from reconcile.job.lock import lock_dir, lock_path, project_lock
from reconcile.job.session import Session, fetch_keys, load_keys, make_report, unsettled_secrets
from reconcile.job.trail import after_apply
from reconcile.model import DesiredState
from reconcile.output.text import render_plan, render_results, render_trail
from reconcile.plan.diff import plan_rotation
from reconcile.policy.rotation import due_keys, last_rotations
from reconcile.trail.findings import Step, StepStatus, TrailFindings

Found = dict[str, dict[str, Any] | None]
log = logging.getLogger("reconcile")


def register(subcommands: argparse._SubParsersAction[Parser]) -> None:
    parser = add_command(
        subcommands,
        "rotate",
        [
            remote_options(),
            report_options(),
            targets_options(),
            execution_options(),
            secrets_options(),
            trail_options(),
            audit_event_options(),
        ],
        "rotate the named keys: a new secret each, to the sinks; the old ones stop working",
        "Rotate exactly the keys given: each gets a new secret, delivered to --secrets-out and/or "
        "--secrets-command, and its old secret stops working at once. A rotation whose answer was lost is "
        "never sent again blindly: the key is reloaded and the report says what is known. With "
        "descope-reconcile.yaml, name the key's project with --target NAME. With --due (the scheduled job), the "
        "keys past the policy's max-key-age instead; keep --journal FILE between runs, or the keys rotated are "
        "due again (Descope keeps createdTime on a rotation).",
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
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="the desired files or folders (optional): read only to say which keys no file manages",
    )
    parser.add_argument("--dry-run", action="store_true", help="list what would rotate; send nothing")
    parser.add_argument(
        "--wait-lock",
        type=non_negative_float,
        default=0.0,
        metavar="SECONDS",
        help="wait this long for another apply or rotate on this machine to the same project (default 0: refuse)",
    )
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


def _declared(paths: list[str]) -> DesiredState | None:
    """The desired state, only to warn of keys no file manages; a problem in the files never stops a rotation."""
    if not paths:
        return None
    try:
        loaded = load_desired(paths)
    except ReconcileError as error:
        log.warning("warning: the desired files were not read (%s): which file manages each key is not said", error)
        return None
    if loaded.diagnostics:
        problems = len(loaded.diagnostics)
        log.warning("warning: the desired files have %d problem(s): which keys they manage is not said", problems)
        return None
    return loaded.state


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
        if max_days is not None or not args.dry_run:
            # Issuing is serialised per project by apply's lock: two rotations of one key would leave
            # the sink holding whichever secret came last, maybe the dead one.
            lock = lock_path(lock_dir(os.environ), target.base_url, target.project_id)
            wait = args.wait_lock
            await held.enter_async_context(project_lock(lock, run_id=clock.run_id, wait=wait, stop=session.stop))
        if max_days is not None:
            found = await _due(args, session, max_days, clock)
            key_ids = list(found)
        else:
            with clock.phase("fetch"):
                found = await load_keys(session, key_ids)
        plan = plan_rotation(key_ids, found, _declared(args.paths))
        show(args, render_plan(plan, verbose=True))
        present, project = (
            [key for key in found.values() if key is not None],
            Project(target.project_id, target.base_url),
        )
        unsettled = unsettled_secrets(changes.journal_file(args), present, project)
        changes.warn_unsettled(unsettled, recover)
        if args.dry_run:
            return ExitCode.FAILURE if plan.errors else ExitCode.OK
        refusal = changes.sink_refusal(args, plan)  # a usage error (64), before any write; reported
        if plan.changes and refusal is None:
            with clock.phase("rotate"):
                outcome = await changes.run_changes(
                    args, session, plan, clock.run_id, project_id=target.project_id, recover=recover
                )
        trail = None
        if outcome is not None and any(r.outcome is r.plan.outcome.done for r in outcome.results):
            # like an apply's: its event, so that the trail credits the rotations to this tool
            with clock.phase("trail"):
                before = TrailFindings(Step(StepStatus.NOT_NEEDED))
                trail = await after_apply(
                    session, trail_settings(args), before, outcome.results, run_id=clock.run_id, files=()
                )
            show(args, render_trail(trail, plan))
        show(args, render_results(outcome.results if outcome else [], plan.errors, recover, trail, title="Rotate"))
        report = make_report(
            clock,
            (),
            session.client,
            target.project_id,
            plan,
            settings=settings(args),
            outcome=outcome,
            trail=trail,
            unsettled=unsettled,
            recovery=recover,
        )
    if refusal is not None:
        report["refusal"] = changes.refusal_record(refusal)
    write_outputs(args, report, clock)
    if refusal is not None:
        raise refusal
    if session.interrupted:
        changes.say_interrupted()
        return ExitCode.FAILURE
    failed = outcome is not None and (
        outcome.fatal is not None or any(r.outcome is not r.plan.outcome.done for r in outcome.results)
    )
    return ExitCode.FAILURE if plan.errors or failed else ExitCode.OK
