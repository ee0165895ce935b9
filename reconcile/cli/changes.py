"""What the commands that change keys share (apply, rotate): their output files, the journal, the
secret sinks (refused before any write when secrets would be issued with nowhere to go), the
recovery command, warnings about secrets an earlier run may have lost, and running the changes."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from reconcile.apply.journal import Journal, Unsettled
from reconcile.cli.common import check_outputs as check_named_outputs
from reconcile.cli.common import desired_inputs
from reconcile.errors import UsageError
from reconcile.job.changes import journal_path_for
from reconcile.job.execute import ApplyOutcome, execute
from reconcile.job.load import LoadedDesired
from reconcile.job.session import Session
from reconcile.output.recovery import Recovery
from reconcile.output.text import render_unsettled
from reconcile.plan.diff import Plan
from reconcile.secrets.sinks import Sinks

log = logging.getLogger("reconcile")


def journal_file(args: argparse.Namespace) -> Path | None:
    path: Path | None = args.journal or (journal_path_for(args.report) if args.report else None)
    return path


def check_outputs(args: argparse.Namespace, loaded: LoadedDesired | None = None) -> None:
    """Every file this run will write (the secrets file included), before it sends anything (or reads
    the project): each writable, each its own, none of them a file the run reads."""
    more = [("--journal" if args.journal else "journal", journal_file(args)), ("--secrets-out", args.secrets_out)]
    plan = [("the saved plan (--plan)", args.plan)] if getattr(args, "plan", None) else []
    check_named_outputs(args, "--report", "--summary", more=more, inputs=[*desired_inputs(loaded), *plan])


def recovery(args: argparse.Namespace) -> Recovery:
    """How this run's undelivered secrets are recovered: into its sinks, its journal, its target."""
    options: list[str] = []
    if args.secrets_out:
        options += ["--secrets-out", str(args.secrets_out)]
    if args.secrets_command:
        options += ["--secrets-command", args.secrets_command]
    journal, target = journal_file(args), getattr(args, "target_config", None)
    return Recovery(tuple(options), str(journal) if journal else None, target.name if target else None)


def require_sinks(args: argparse.Namespace, plan: Plan) -> None:
    """Before any write: issued secrets need a sink, and a journal to find one a crash may lose."""
    issuing = sum(1 for item in plan.changes if item.outcome.issues_secret)
    if not issuing:
        return
    what = f"{issuing} key(s) get a new secret"
    if not (args.secrets_out or args.secrets_command):
        raise UsageError(
            f"{what}, shown this once: add --secrets-out FILE and/or --secrets-command CMD to receive them; "
            "nothing was sent"
        )
    if journal_file(args) is None:
        raise UsageError(
            f"{what}: add --report FILE (the journal goes beside it) or --journal FILE, so that a run stopped "
            "between issuing a secret and delivering it is found by the next run; nothing was sent"
        )


def warn_unsettled(unsettled: Sequence[Unsettled], recover: Recovery) -> None:
    for line in render_unsettled(unsettled, recover):
        log.error("%s", line)


async def run_changes(
    args: argparse.Namespace, session: Session, plan: Plan, run_id: str, *, project_id: str, recover: Recovery
) -> ApplyOutcome:
    """Make the plan's writes with the journal and the sinks; say when the run stopped early. A reviewed
    plan (`--plan`) is applied exactly, or not at all: every key is re-checked before its write."""
    path = journal_file(args)
    journal = Journal(path, run_id, recover.sink_options) if path else None
    sinks = None
    if plan.issues_secrets:
        sinks = Sinks.open(args.secrets_out, args.secrets_command, project_id=project_id)
    try:
        outcome = await execute(
            session,
            plan,
            concurrency=args.concurrency,
            journal=journal,
            progress_every=None if args.quiet else args.progress_every,
            recheck=getattr(args, "recheck", False) or getattr(args, "plan", None) is not None,
            sinks=sinks,
        )
    finally:
        if journal is not None:
            journal.close()
        if sinks is not None:
            sinks.close()
    if outcome.fatal is not None:
        log.error("error: %s; the run stopped, nothing more was sent", outcome.fatal)
    return outcome


def say_interrupted() -> None:
    """The last line of a run a signal stopped (after its report): what became of the requests."""
    log.error("interrupted: requests in flight were cancelled and nothing more was sent; see the report")
