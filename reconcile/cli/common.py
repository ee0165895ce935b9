"""Showing and writing a use case's Result, and nothing heavy: the offline `validate` imports it on every commit."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from reconcile.cli.command import Display
from reconcile.desired.loader import Diagnostic
from reconcile.errors import ExitCode, ReconcileError
from reconcile.files import append_text, write_private_atomically
from reconcile.job.options import Outputs
from reconcile.job.result import Result
from reconcile.log import VERBOSE, prefixed
from reconcile.output.escape import gh_data, gh_property, text_line

if TYPE_CHECKING:  # only the runner of several targets makes one (not validate with PATHs, on every commit)
    from reconcile.output.targets import TargetOutcome

log = logging.getLogger("reconcile")


def describe_error(error: ReconcileError | OSError) -> tuple[int, str]:
    """An error that ends a run → its exit code and one line for people."""
    if isinstance(error, ReconcileError):
        return error.exit_code, str(error)
    # An unwritable report path, a full disk: the environment, not a bug.
    where = f": {error.filename}" if error.filename else ""
    return ExitCode.FAILURE, f"{error.strerror or error}{where}"


def print_diagnostics(diagnostics: Sequence[Diagnostic], output_format: str, kept: TargetOutcome | None = None) -> None:
    """File names and messages (which quote values) come from the files: escaped for where they go."""
    if output_format == "sarif":  # code scanning shows a file it cannot read, too
        from reconcile.cli.policy import print_findings  # noqa: PLC0415 (only for SARIF)
        from reconcile.policy.findings import Finding  # noqa: PLC0415

        invalid = [
            Finding(d.path, d.line, d.column, "invalid-desired-file", "error", d.message, "", d.field)
            for d in diagnostics
        ]
        print_findings(invalid, None, output_format, kept)
        return
    if output_format == "json":
        records = [d.__dict__ for d in diagnostics]
        if kept is not None:
            kept.diagnostics.extend(records)  # every target's, in one list at the end
        else:
            print(json.dumps(records, indent=2))  # ASCII: every control a \u escape
        return
    for diagnostic in diagnostics:
        if output_format == "github":
            message = gh_data(diagnostic.message + (f" [{diagnostic.field}]" if diagnostic.field else ""))
            where = f"file={gh_property(diagnostic.path)},line={diagnostic.line},col={diagnostic.column}"
            print(f"::error {where}::{message}")
        else:
            print(text_line(diagnostic.render()), file=sys.stderr)


def write_markdown(explicit: Path | None, markdown: str, kept: TargetOutcome | None = None) -> None:
    """`--summary FILE`, else GitHub's step summary when running in Actions (appended, as GitHub expects).
    Within a target's run it is kept instead: all targets' summaries are written once, combined."""
    if kept is not None:
        kept.markdown.append(markdown)
        return
    from reconcile.output.markdown import fit_summary  # noqa: PLC0415 (validate, light, writes no summary)

    markdown = fit_summary(markdown)
    if explicit is not None:
        write_private_atomically(explicit, markdown, mode=0o644)
    elif step_summary := os.environ.get("GITHUB_STEP_SUMMARY"):
        append_text(Path(step_summary), markdown)


def deliver(result: Result, outputs: Outputs | None, display: Display, kept: TargetOutcome | None = None) -> int:
    """One run's Result shown and written: its text, the problems in its files, its report and summary,
    then the lines that say how it ended; what ended it early is raised last (a stdout that failed,
    after the files: an apply whose reader went away still leaves its report). Within a target's run
    (`kept`), its text is prefixed with the target's name and its Markdown and JSON diagnostics are
    kept for the combined summaries."""
    unshown: OSError | None = None
    try:
        _show(result, display, kept)
    except OSError as error:  # the reader went away (a closed pipe, a full disk): the files still count
        unshown = error
    if result.report is not None and kept is not None:
        kept.counts = result.report["summary"]["byOutcome"]  # for the combined summaries
    with result.clock.phase("report") if result.clock else contextlib.nullcontext():
        if result.report is not None and outputs is not None and outputs.report is not None:
            from reconcile.output.report import write_report  # noqa: PLC0415 (not for validate, on every commit)

            write_report(outputs.report, result.report)
            log.info("report written to %s", outputs.report)
        if result.markdown is not None and outputs is not None:
            write_markdown(outputs.summary, result.markdown, kept)
    if result.clock is not None:
        log.log(VERBOSE, "timings: %s", result.clock.describe_timings())
    for level, line in result.messages:
        log.log(level, "%s", line)
    if result.error is not None:
        raise result.error
    if unshown is not None:
        raise unshown
    return result.code


def _show(result: Result, display: Display, kept: TargetOutcome | None) -> None:
    """The run's text and the problems in its files, on stdout."""
    if result.text and not display.quiet:
        sys.stdout.write(prefixed(result.text, kept.name) if kept else result.text)
        sys.stdout.flush()
    if result.findings is not None:
        from reconcile.cli.policy import print_findings  # noqa: PLC0415 (only when a policy was checked)

        print_findings(result.findings, result.policy, display.format, kept)
    elif result.diagnostics or display.format in ("json", "sarif"):
        print_diagnostics(result.diagnostics, display.format, kept)
