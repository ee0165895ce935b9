"""Every file a run will write, proven writable before it reads or sends anything: each a file of its
own, none of them one of the run's inputs. A one-line error (exit 1) instead of a run that changes the
project and then cannot say so, or overwrites its source. Light: the offline commands import it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from reconcile.files import check_distinct, check_output
from reconcile.job.load import LoadedDesired

STEP_SUMMARY = "$GITHUB_STEP_SUMMARY"
APPENDED = (STEP_SUMMARY, "--journal", "journal", "--secrets-out")  # appended to, not replaced
Named = Sequence[tuple[str, Path | None]]


def summary_output(summary: Path | None) -> list[tuple[str, Path | None]]:
    """Where the Markdown summary goes: `--summary`, else GitHub's step summary when set."""
    if summary is None and (step_summary := os.environ.get("GITHUB_STEP_SUMMARY")):
        return [(STEP_SUMMARY, Path(step_summary))]
    return [("--summary", summary)]


def check_outputs(named: Named, inputs: Sequence[tuple[str, Path]] = ()) -> None:
    """The output files named (an option, or what it is, and its path; None: not written) checked."""
    outputs = [(what, path) for what, path in named if path is not None]
    for what, path in outputs:
        check_output(path, what, append=what in APPENDED)
    check_distinct(outputs, inputs)


def desired_inputs(loaded: LoadedDesired | None) -> list[tuple[str, Path]]:
    """The desired files a run read, as inputs no output may overwrite."""
    return [("the desired file", Path(file.path)) for file in (loaded.files if loaded else ())]
