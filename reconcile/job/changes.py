"""What the use cases that change keys share (apply, rotate): their output files, the journal, the
secret sinks (refused before any write when secrets would be issued with nowhere to go), the recovery
command, the secrets an earlier run may have lost, making the changes, and the exit code."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reconcile.apply.journal import Project, Unsettled, read_records, unsettled
from reconcile.errors import ExitCode, PolicyRefused, ReconcileError, SafetyThresholdExceeded, UsageError
from reconcile.job.execute import ApplyOutcome
from reconcile.job.options import Changes, Outputs
from reconcile.job.outputs import check_outputs, summary_output
from reconcile.output.recovery import Recovery, sink_options
from reconcile.output.text import render_unsettled
from reconcile.plan.diff import Plan
from reconcile.plan.safety import AmbiguousNames
from reconcile.secrets.sinks import check_command_environment, check_secrets_file

log = logging.getLogger("reconcile")
INTERRUPTED = "interrupted: requests in flight were cancelled and nothing more was sent; see the report"


def journal_path_for(report: Path) -> Path:
    return report.with_name(report.name + ".journal.jsonl")


def journal_file(changes: Changes, outputs: Outputs) -> Path | None:
    """`--journal`, else beside the report."""
    return changes.journal or (journal_path_for(outputs.report) if outputs.report else None)


def check_change_outputs(changes: Changes, outputs: Outputs, inputs: Sequence[tuple[str, Path]] = ()) -> None:
    """Every file this run will write (the secrets file included), before it sends anything (or reads
    the project): each writable, each its own, none of them a file the run reads."""
    if changes.secrets_out is not None:
        check_secrets_file(changes.secrets_out)  # a file of this user's, one link, private; its folders 0700
    check_command_environment(changes.secrets_command_env)
    journal = ("--journal" if changes.journal else "journal", journal_file(changes, outputs))
    named = [("--report", outputs.report), *summary_output(outputs.summary), journal]
    check_outputs([*named, ("--secrets-out", changes.secrets_out)], inputs)


def recovery(changes: Changes, outputs: Outputs, target: str | None) -> Recovery:
    """How this run's undelivered secrets are recovered: into its sinks, its journal, its target."""
    options = sink_options(changes.secrets_out, changes.secrets_command, changes.secrets_command_env)
    journal = journal_file(changes, outputs)
    return Recovery(options, str(journal.absolute()) if journal else None, target)


def require_sinks(changes: Changes, outputs: Outputs, plan: Plan) -> None:
    """Before any write: issued secrets need a sink, and a journal to find one a crash may lose."""
    issuing = sum(1 for item in plan.changes if item.outcome.issues_secret)
    if not issuing:
        return
    what = f"{issuing} key(s) get a new secret"
    if not (changes.secrets_out or changes.secrets_command):
        raise UsageError(
            f"{what}, shown this once: add --secrets-out FILE and/or --secrets-command CMD to receive them; "
            "nothing was sent"
        )
    if journal_file(changes, outputs) is None:
        raise UsageError(
            f"{what}: add --report FILE (the journal goes beside it) or --journal FILE, so that a run stopped "
            "between issuing a secret and delivering it is found by the next run; nothing was sent"
        )


def sink_refusal(changes: Changes, outputs: Outputs, plan: Plan) -> UsageError | None:
    """`require_sinks`' refusal, for a command that still writes its report before it raises it."""
    try:
        require_sinks(changes, outputs, plan)
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


def journal_records(journal: Path | None) -> list[dict[str, Any]]:
    """What the runs that wrote this journal recorded (nothing, without one)."""
    return read_records(journal) if journal is not None and journal.exists() else []


def unsettled_secrets(
    journal: Path | None, observed: Sequence[dict[str, Any]], project: Project | None = None
) -> list[Unsettled]:
    """Keys of the project whose secret an earlier run (that wrote this journal) issued and never
    recorded as delivered: a crash between create (or rotate) and delivery shows up here. Only the
    runs against `project` count."""
    return unsettled(journal_records(journal), observed, project)


def warn_unsettled(unsettled: Sequence[Unsettled], recover: Recovery) -> None:
    for line in render_unsettled(unsettled, recover):
        log.error("%s", line)


def failed(outcome: ApplyOutcome | None) -> bool:
    """Any key the changes left not as planned, or a run the journal's failure stopped."""
    return outcome is not None and (
        outcome.fatal is not None or any(r.outcome is not r.plan.outcome.done for r in outcome.results)
    )


def exit_code(
    plan: Plan,
    outcome: ApplyOutcome | None,
    *,
    interrupted: bool,
    unsettled: Sequence[Unsettled] = (),
    overwritten: bool = False,
) -> ExitCode:
    """How a run that changes keys ends: interrupted, or any key not as desired (in error, failed, a
    secret an earlier run lost), is a failure; else whether it overwrote someone's change."""
    if interrupted or plan.errors or unsettled or failed(outcome):
        return ExitCode.FAILURE
    return ExitCode.OVERWRITTEN if overwritten else ExitCode.OK
