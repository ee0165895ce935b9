"""What the commands that call the API share: the connection (session and target), the run's settings
for the report, and writing the report and summary. Imported by their handlers only, when they run."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from reconcile.cli.common import print_diagnostics, write_markdown
from reconcile.cli.context import current_target
from reconcile.cli.options import SETTING_NAMES
from reconcile.client.descope import (
    ENVIRONMENT,
    Credentials,
    CredentialSource,
    DescopeClient,
    base_url_for,
    credentials_from_env,
)
from reconcile.client.redact import redactor
from reconcile.config.targets import TargetConfig
from reconcile.errors import ValidationFailed
from reconcile.job.clock import RunClock
from reconcile.job.declared import DeclaredCheck
from reconcile.job.session import RetrySettings, Session
from reconcile.job.trail import TrailSettings
from reconcile.log import VERBOSE
from reconcile.output.markdown import render_summary
from reconcile.output.recovery import COMMAND_PLACEHOLDER
from reconcile.output.report import write_report

log = logging.getLogger("reconcile")


@dataclass(frozen=True)
class Target:
    project_id: str
    base_url: str


def _source(config: TargetConfig) -> CredentialSource:
    """A config target's credentials: only the variable or file it names (not the DESCOPE_* ones)."""
    return CredentialSource(
        project_id=config.project_id,
        project_id_env=config.project_id_env,
        key_env=config.management_key_env,
        key_file_env="",
        key_file=config.management_key_file,
        key_file_label="managementKeyFile",
    )


def credentials_for(args: argparse.Namespace) -> tuple[Credentials, str]:
    """This run's credentials and base URL: its config target's, else the environment's. The key joins
    the redaction filter at once: it is process-wide, so with several targets every key is scrubbed
    from every line."""
    config: TargetConfig | None = getattr(args, "target_config", None)
    credentials = credentials_from_env(os.environ, _source(config) if config else ENVIRONMENT)
    redactor.add(credentials.management_key)
    if config is None:
        return credentials, base_url_for(credentials.project_id, os.environ)
    # A target's base URL is its own (or the default and regional rule), never DESCOPE_BASE_URL.
    override = {"DESCOPE_BASE_URL": config.base_url} if config.base_url else {}
    return credentials, base_url_for(credentials.project_id, override)


@asynccontextmanager
async def connect(args: argparse.Namespace) -> AsyncIterator[tuple[Session, Target]]:
    credentials, base_url = credentials_for(args)
    target = Target(credentials.project_id, base_url)
    connections = getattr(args, "concurrency", 1) + 1  # one more for the audit search beside the updates
    settings = RetrySettings(args.rate, args.max_attempts, args.key_deadline, args.timeout)
    async with DescopeClient(credentials, target.base_url, timeout=args.timeout, max_connections=connections) as client:
        session = Session(client, settings)
        with session.signals_stop_the_run():
            log.debug("reading access keys from %s", target.base_url)
            yield session, target


def refuse_undeclared(check: DeclaredCheck) -> None:
    """Custom attributes the project does not declare, or values it will not take: located errors,
    before any write (a warning when the declarations could not be trusted)."""
    if check.unchecked:
        log.warning("warning: custom attributes not checked against the project's declarations: %s", check.unchecked)
    if check.diagnostics:
        print_diagnostics(check.diagnostics, "text")
        raise ValidationFailed(len(check.diagnostics))


def trail_settings(args: argparse.Namespace) -> TrailSettings:
    """What the run asks of the audit trail (apply's event options only where the command has them)."""
    return TrailSettings(
        search=args.attribution,
        pages=args.attribution_pages,
        actions=args.attribution_actions,
        event=getattr(args, "audit_event", False),
        tenant=getattr(args, "audit_tenant", None),
    )


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """The run's knobs, for the report (JSON-ready)."""
    values = {SETTING_NAMES[name]: getattr(args, name) for name in SETTING_NAMES if hasattr(args, name)}
    if values.get("secretsCommand") is not None:
        values["secretsCommand"] = COMMAND_PLACEHOLDER  # it may hold a token inline
    return {
        name: value if value is None or isinstance(value, int | float | bool) else str(value)
        for name, value in values.items()
    }


def write_outputs(args: argparse.Namespace, report: Mapping[str, Any], clock: RunClock) -> None:
    if (outcome := current_target()) is not None:
        outcome.counts = report["summary"]["byOutcome"]  # for the combined summaries
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
