"""What the use cases that change keys share (apply, rotate): their output files, the journal, the
secret sinks (refused before any write when secrets would be issued with nowhere to go), the recovery
command, the secrets an earlier run may have lost, making the changes, and the exit code."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reconcile.apply.journal import Unsettled, read_records, unsettled
from reconcile.errors import ExitCode, UsageError
from reconcile.job.execute import ApplyOutcome
from reconcile.job.options import Changes, Outputs
from reconcile.job.outputs import check_outputs, summary_output
from reconcile.output.recovery import Recovery
from reconcile.output.text import render_unsettled
from reconcile.plan.diff import Plan

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
    journal = ("--journal" if changes.journal else "journal", journal_file(changes, outputs))
    named = [("--report", outputs.report), *summary_output(outputs.summary), journal]
    check_outputs([*named, ("--secrets-out", changes.secrets_out)], inputs)


def recovery(changes: Changes, outputs: Outputs, target: str | None) -> Recovery:
    """How this run's undelivered secrets are recovered: into its sinks, its journal, its target."""
    options: list[str] = []
    if changes.secrets_out:
        options += ["--secrets-out", str(changes.secrets_out)]
    if changes.secrets_command:
        options += ["--secrets-command", changes.secrets_command]
    journal = journal_file(changes, outputs)
    return Recovery(tuple(options), str(journal) if journal else None, target)


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


def unsettled_secrets(journal: Path | None, observed: Sequence[dict[str, Any]]) -> list[Unsettled]:
    """Keys of the project whose secret an earlier run (that wrote this journal) issued and never
    recorded as delivered: a crash between create (or rotate) and delivery shows up here."""
    if journal is None or not journal.exists():
        return []
    return unsettled(read_records(journal), observed)


def warn_unsettled(unsettled: Sequence[Unsettled], recover: Recovery) -> None:
    for line in render_unsettled(unsettled, recover):
        log.error("%s", line)


def failed(outcome: ApplyOutcome | None) -> bool:
    """Any key the changes left not as planned."""
    return outcome is not None and any(r.outcome is not r.plan.outcome.done for r in outcome.results)


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
