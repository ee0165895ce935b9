"""What every command handler shares, and nothing heavy: the offline `validate` imports it on every commit."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from reconcile.cli.command import Display
from reconcile.cli.context import current_target
from reconcile.cli.context import prefixed as prefixed_here
from reconcile.desired.loader import Diagnostic
from reconcile.errors import ExitCode, ReconcileError, ValidationFailed
from reconcile.files import append_text, check_distinct, check_output, write_private_atomically
from reconcile.job.clock import RunClock
from reconcile.job.load import LoadedDesired, load_desired
from reconcile.job.options import Outputs
from reconcile.job.result import Result
from reconcile.log import VERBOSE, prefixed
from reconcile.output.escape import gh_data, gh_property, text_line

if TYPE_CHECKING:  # only the runner of several targets makes one (not validate with PATHs, on every commit)
    from reconcile.output.targets import TargetOutcome

log = logging.getLogger("reconcile")
APPENDED = ("$GITHUB_STEP_SUMMARY", "--journal", "journal", "--secrets-out")  # appended to, not replaced


def show(args: argparse.Namespace, text: str) -> None:
    """Text for people on stdout: within a target's run, each line prefixed with the target's name."""
    if not args.quiet:
        sys.stdout.write(prefixed_here(text))
        sys.stdout.flush()


def describe_error(error: ReconcileError | OSError) -> tuple[int, str]:
    """An error that ends a run → its exit code and one line for people."""
    if isinstance(error, ReconcileError):
        return error.exit_code, str(error)
    # An unwritable report path, a full disk: the environment, not a bug.
    where = f": {error.filename}" if error.filename else ""
    return ExitCode.FAILURE, f"{error.strerror or error}{where}"


def print_diagnostics(diagnostics: Sequence[Diagnostic], output_format: str, kept: TargetOutcome | None = None) -> None:
    """File names and messages (which quote values) come from the files: escaped for where they go."""
    if output_format == "json":
        records = [d.__dict__ for d in diagnostics]
        if (target := kept or current_target()) is not None:
            target.diagnostics.extend(records)  # every target's, in one list at the end
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


def load(args: argparse.Namespace, output_format: str = "text", clock: RunClock | None = None) -> LoadedDesired:
    """The desired state, or ValidationFailed after printing every problem: then nothing is sent."""
    loaded = load_desired(args.paths, max_bytes=args.max_file_size, clock=clock)
    if loaded.diagnostics:
        print_diagnostics(loaded.diagnostics, output_format)
        raise ValidationFailed(len(loaded.diagnostics))
    return loaded


def check_outputs(
    args: argparse.Namespace,
    *options: str,
    more: Sequence[tuple[str, Path | None]] = (),
    inputs: Sequence[tuple[str, Path]] = (),
) -> None:
    """The output files these options name (and `more`), proven writable before the run reads or sends
    anything, each a file of its own and none of them one of the run's `inputs`: a one-line error
    (exit 1) instead of a run that changes the project and then cannot say so, or overwrites its source."""
    named = [(option, getattr(args, option.removeprefix("--").replace("-", "_"))) for option in options]
    if "--summary" in options and args.summary is None and (step_summary := os.environ.get("GITHUB_STEP_SUMMARY")):
        named.append((APPENDED[0], Path(step_summary)))  # where the summary goes by default
    outputs = [(what, path) for what, path in [*named, *more] if path is not None]
    for what, path in outputs:
        check_output(path, what, append=what in APPENDED)
    check_distinct(outputs, inputs)


def desired_inputs(loaded: LoadedDesired | None) -> list[tuple[str, Path]]:
    """The desired files a run read, as inputs no output may overwrite."""
    return [("the desired file", Path(file.path)) for file in (loaded.files if loaded else ())]


def write_markdown(explicit: Path | None, markdown: str, kept: TargetOutcome | None = None) -> None:
    """`--summary FILE`, else GitHub's step summary when running in Actions (appended, as GitHub expects).
    Within a target's run it is kept instead: all targets' summaries are written once, combined."""
    if (target := kept or current_target()) is not None:
        target.markdown.append(markdown)
        return
    from reconcile.output.markdown import fit_summary  # noqa: PLC0415 (validate, light, writes no summary)

    markdown = fit_summary(markdown)
    if explicit is not None:
        write_private_atomically(explicit, markdown, mode=0o644)
    elif step_summary := os.environ.get("GITHUB_STEP_SUMMARY"):
        append_text(Path(step_summary), markdown)


def deliver(result: Result, outputs: Outputs | None, display: Display, kept: TargetOutcome | None = None) -> int:
    """One run's Result shown and written: its text, the problems in its files, its report and summary,
    then the lines that say how it ended; what ended it early is raised last. Within a target's run
    (`kept`), its text is prefixed with the target's name and its Markdown and JSON diagnostics are
    kept for the combined summaries."""
    if result.text and not display.quiet:
        sys.stdout.write(prefixed(result.text, kept.name) if kept else result.text)
        sys.stdout.flush()
    if result.diagnostics or display.format == "json":
        print_diagnostics(result.diagnostics, display.format, kept)
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
    return result.code
