"""What the commands that change keys share (apply, rotate): their output files, the journal, the
secret sinks (refused before any write when secrets would be issued with nowhere to go), the
recovery command, warnings about secrets an earlier run may have lost, and running the changes."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reconcile.apply.journal import Journal, Project, Unsettled
from reconcile.cli.common import check_outputs as check_named_outputs
from reconcile.cli.common import desired_inputs
from reconcile.client.redact import scrub
from reconcile.errors import PolicyRefused, ReconcileError, SafetyThresholdExceeded, UsageError
from reconcile.job.load import LoadedDesired
from reconcile.job.session import ApplyOutcome, Session, execute, journal_path_for
from reconcile.output.recovery import Recovery, sink_options
from reconcile.output.text import render_unsettled
from reconcile.plan.diff import Plan
from reconcile.plan.safety import AmbiguousNames
from reconcile.secrets.sinks import Sinks, check_command_environment, check_secrets_file

log = logging.getLogger("reconcile")


def journal_file(args: argparse.Namespace) -> Path | None:
    path: Path | None = args.journal or (journal_path_for(args.report) if args.report else None)
    return path


def check_outputs(args: argparse.Namespace, loaded: LoadedDesired | None = None) -> None:
    """Every file this run will write (the secrets file included), before it sends anything (or reads
    the project): each writable, each its own, none of them a file the run reads."""
    if args.secrets_out is not None:
        check_secrets_file(args.secrets_out)  # a file of this user's, one link, private; its folders 0700
    check_command_environment(args.secrets_command_env or ())
    more = [("--journal" if args.journal else "journal", journal_file(args)), ("--secrets-out", args.secrets_out)]
    plan = [("the saved plan (--plan)", args.plan)] if getattr(args, "plan", None) else []
    check_named_outputs(args, "--report", "--summary", more=more, inputs=[*desired_inputs(loaded), *plan])


def recovery(args: argparse.Namespace) -> Recovery:
    """How this run's undelivered secrets are recovered: into its sinks, its journal, its target."""
    options = sink_options(args.secrets_out, args.secrets_command, args.secrets_command_env or ())
    journal, target = journal_file(args), getattr(args, "target_config", None)
    return Recovery(options, str(journal.absolute()) if journal else None, target.name if target else None)


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


def sink_refusal(args: argparse.Namespace, plan: Plan) -> UsageError | None:
    """`require_sinks`' refusal, for a command that still writes its report before it raises it."""
    try:
        require_sinks(args, plan)
    except UsageError as error:
        return error
    return None


def refusal_record(error: ReconcileError) -> dict[str, Any]:
    """A refusal as the report records it: every refusal writes the report, when one was asked for."""
    kinds = {
        SafetyThresholdExceeded: "safety",
        AmbiguousNames: "ambiguous",
        UsageError: "usage",
        PolicyRefused: "policy",
    }
    kind = next((name for cls, name in kinds.items() if isinstance(error, cls)), "savedPlan")
    return {"kind": kind, "reason": str(error), "exitCode": int(error.exit_code)}


def warn_unsettled(unsettled: Sequence[Unsettled], recover: Recovery) -> None:
    for line in render_unsettled(unsettled, recover):
        log.error("%s", line)


async def run_changes(
    args: argparse.Namespace, session: Session, plan: Plan, run_id: str, *, project_id: str, recover: Recovery
) -> ApplyOutcome:
    """Make the plan's writes with the journal and the sinks; say when the run stopped early. A reviewed
    plan (`--plan`) is applied exactly, or not at all: every key is re-checked before its write."""
    path = journal_file(args)
    project = Project(project_id, session.client.base_url)
    journal = Journal(path, run_id, recover.sink_options, project) if path else None
    sinks = None
    try:
        if plan.issues_secrets:
            sinks = Sinks.open(
                args.secrets_out,
                args.secrets_command,
                project_id=project_id,
                scrub=scrub,
                command_environment=args.secrets_command_env or (),
                stopping=lambda: session.interrupted,  # a stop signal ends a hanging command, not 120 s later
            )
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
    if journal is not None and journal.failure is not None and outcome.fatal is None:
        outcome.fatal = ReconcileError(journal_failure(journal, recover))  # the run fails; its report is written
        log.error("error: %s", outcome.fatal)
    return outcome


def journal_failure(journal: Journal, recover: Recovery) -> str:
    """What the run did when its journal failed, and what the operator does now."""
    failure = journal.failure
    assert failure is not None
    said = f"the journal {journal.path.absolute()} could not be written ({failure.error})"
    if failure.key_id is None or failure.event not in ("issued", "delivered", "undelivered"):
        return f"{said}; no secret was issued after that. Make it writable, then run again"
    return (
        f"{said} when key {failure.key_id} ({failure.name!r}) got its new secret: the secret went to the sinks "
        "first, and no secret was issued after that. Make the journal writable, then run again; if the next run "
        f"flags {failure.key_id}, look for its secret in the sinks before you recover it with: "
        f"{recover.command(failure.key_id, name=failure.name)}"
    )


def say_interrupted() -> None:
    """The last line of a run a signal stopped (after its report): what became of the requests."""
    log.error("interrupted: requests in flight were cancelled and nothing more was sent; see the report")
