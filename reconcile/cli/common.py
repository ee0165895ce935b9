"""What the command handlers share: loading the desired files, connecting, showing and writing outputs."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconcile.client.descope import DescopeClient, base_url_for, credentials_from_env
from reconcile.client.redact import redactor
from reconcile.desired.loader import Diagnostic
from reconcile.errors import ValidationFailed
from reconcile.files import write_private_atomically
from reconcile.job import LoadedDesired, RetrySettings, RunClock, Session, load_desired
from reconcile.log import VERBOSE
from reconcile.output.markdown import render_summary
from reconcile.output.report import write_report

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


@dataclass(frozen=True)
class Target:
    project_id: str
    base_url: str


@asynccontextmanager
async def connect(args: argparse.Namespace) -> AsyncIterator[tuple[Session, Target]]:
    credentials = credentials_from_env(os.environ)
    redactor.add(credentials.management_key)
    target = Target(credentials.project_id, base_url_for(credentials.project_id, os.environ))
    connections = getattr(args, "concurrency", 1)
    settings = RetrySettings(args.rate, args.max_attempts, args.key_deadline, args.timeout)
    async with DescopeClient(credentials, target.base_url, timeout=args.timeout, max_connections=connections) as client:
        session = Session(client, settings)
        with session.signals_stop_the_run():
            log.debug("reading access keys from %s", target.base_url)
            yield session, target


# The run's knobs, for the report: argparse's name → the report's camelCase name (like the wire).
_SETTINGS = {
    "timeout": "timeout",
    "rate": "rate",
    "concurrency": "concurrency",
    "max_attempts": "maxAttempts",
    "key_deadline": "keyDeadline",
    "max_changes": "maxChanges",
    "force": "force",
    "plan": "plan",
}


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """The run's knobs, for the report (JSON-ready)."""
    values = {_SETTINGS[name]: getattr(args, name) for name in _SETTINGS if hasattr(args, name)}
    return {
        name: value if value is None or isinstance(value, int | float | bool) else str(value)
        for name, value in values.items()
    }


def write_markdown(explicit: Path | None, markdown: str) -> None:
    """`--summary FILE`, else GitHub's step summary when running in Actions (appended, as GitHub expects)."""
    if explicit is not None:
        write_private_atomically(explicit, markdown, mode=0o644)
    elif step_summary := os.environ.get("GITHUB_STEP_SUMMARY"):
        with Path(step_summary).open("a", encoding="utf-8") as handle:
            handle.write(markdown)


def write_outputs(args: argparse.Namespace, report: Mapping[str, Any], clock: RunClock) -> None:
    with clock.phase("report"):
        if args.report:
            write_report(args.report, report)
            log.info("report written to %s", args.report)
        write_markdown(args.summary, render_summary(report))
    log.log(VERBOSE, "timings: %s", clock.describe_timings())


SHOWN_FAILURES = 20


def log_failures(lines: Sequence[str]) -> None:
    """Why keys failed, on stderr whatever the verbosity (-q silences stdout, never the reasons)."""
    for line in lines[:SHOWN_FAILURES]:
        log.error("error: %s", line)
    if len(lines) > SHOWN_FAILURES:
        log.error("error: and %d more (the report lists every key)", len(lines) - SHOWN_FAILURES)
