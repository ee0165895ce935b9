"""What every command handler shares, and nothing heavy: the offline `validate` imports it on every commit."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from reconcile.desired.loader import Diagnostic
from reconcile.errors import ValidationFailed
from reconcile.files import write_private_atomically
from reconcile.job.clock import RunClock
from reconcile.job.load import LoadedDesired, load_desired

log = logging.getLogger("reconcile")


def show(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        sys.stdout.write(text)
        sys.stdout.flush()


def print_diagnostics(diagnostics: Sequence[Diagnostic], output_format: str) -> None:
    if output_format == "json":
        print(json.dumps([d.__dict__ for d in diagnostics], indent=2))
        return
    for diagnostic in diagnostics:
        if output_format == "github":
            message = diagnostic.message + (f" [{diagnostic.field}]" if diagnostic.field else "")
            escaped = message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
            print(f"::error file={diagnostic.path},line={diagnostic.line},col={diagnostic.column}::{escaped}")
        else:
            print(diagnostic.render(), file=sys.stderr)


def load(args: argparse.Namespace, output_format: str = "text", clock: RunClock | None = None) -> LoadedDesired:
    """The desired state, or ValidationFailed after printing every problem: then nothing is sent."""
    loaded = load_desired(args.paths, max_bytes=args.max_file_size, clock=clock)
    if loaded.diagnostics:
        print_diagnostics(loaded.diagnostics, output_format)
        raise ValidationFailed(len(loaded.diagnostics))
    return loaded


def write_markdown(explicit: Path | None, markdown: str) -> None:
    """`--summary FILE`, else GitHub's step summary when running in Actions (appended, as GitHub expects)."""
    if explicit is not None:
        write_private_atomically(explicit, markdown, mode=0o644)
    elif step_summary := os.environ.get("GITHUB_STEP_SUMMARY"):
        with Path(step_summary).open("a", encoding="utf-8") as handle:
            handle.write(markdown)
