"""The `descope-reconcile` command: wires the steps of reconcile.runner to arguments and output."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from reconcile import __version__
from reconcile.client import DEFAULT_TIMEOUT_SECONDS, DescopeClient, base_url_for, credentials_from_env
from reconcile.errors import ExitCode, ReconcileError, SafetyThresholdExceeded, UsageError, ValidationFailed
from reconcile.executor import Journal
from reconcile.loader import DEFAULT_MAX_FILE_BYTES, Diagnostic
from reconcile.plan import Outcome, Plan
from reconcile.redact import redactor
from reconcile.render import render_plan, render_results
from reconcile.report import write_report
from reconcile.runner import (
    DEFAULT_MAX_CHANGES_SHARE,
    DEFAULT_THRESHOLD_MIN_KEYS,
    ApplyOutcome,
    ChangeLimit,
    LoadedDesired,
    RetrySettings,
    RunClock,
    Session,
    check_safety,
    execute,
    fetch_plan,
    journal_path_for,
    load_desired,
    make_report,
)

log = logging.getLogger("reconcile")

# Descope publishes 1000 requests per 10 s for backend (SDK) traffic: 100/s never exceeds it,
# and the limiter slows down by itself where a project's limit is lower.
DEFAULT_RATE = 100.0
DEFAULT_CONCURRENCY = 8
DEFAULT_MAX_ATTEMPTS = 6
DEFAULT_KEY_DEADLINE = 300.0

EPILOG = f"""\
exit codes:
  {ExitCode.OK:<3} valid (validate), in sync (plan), everything applied (apply)
  {ExitCode.FAILURE:<3} an error: invalid input, API or network failure, or a key failed, missing,
      not editable, in conflict or interrupted
  {ExitCode.CHANGES_PENDING:<3} plan found changes to make
  {ExitCode.SAFETY_THRESHOLD:<3} apply refused: the plan changes more keys than --max-changes allows
  {ExitCode.USAGE:<3} usage error (bad command line)

environment:
  DESCOPE_PROJECT_ID            the project (required by plan and apply)
  DESCOPE_MANAGEMENT_KEY        its management key; never give it on the command line
  DESCOPE_MANAGEMENT_KEY_FILE   or: a file holding the key (mounted secrets)
  DESCOPE_BASE_URL              API base URL (DESCOPE_BASE_URI, the SDKs' name, works too);
                                default https://api.descope.com, or the regional host for
                                32+ character project ids. Plain http:// only on loopback.
  SSL_CERT_FILE                 CA bundle for TLS (verification cannot be switched off)

examples:
  descope-reconcile validate desired/
  descope-reconcile plan desired/ --report plan.json        # exit 2 when there is drift
  descope-reconcile apply desired/ --report report.json
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(ExitCode.USAGE, f"{self.prog}: error: {message}\n")


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def _change_limit(text: str) -> ChangeLimit:
    try:
        return ChangeLimit.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("paths", nargs="+", metavar="PATH", help="desired-state YAML files or folders (recursive)")
    common.add_argument("-v", "--verbose", action="count", default=0, help="more detail on stderr (-vv: debug)")
    common.add_argument("-q", "--quiet", action="store_true", help="only errors on stderr, no plan on stdout")
    common.add_argument(
        "--max-file-size",
        type=_positive_int,
        default=DEFAULT_MAX_FILE_BYTES,
        metavar="BYTES",
        help=f"refuse desired files larger than this (default {DEFAULT_MAX_FILE_BYTES:,})",
    )
    remote = _Parser(add_help=False)
    remote.add_argument("--report", type=Path, metavar="FILE", help="write the JSON report here (mode 0600)")
    remote.add_argument(
        "--timeout",
        type=_positive_float,
        default=DEFAULT_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help=f"per-request timeout (default {DEFAULT_TIMEOUT_SECONDS:g})",
    )
    remote.add_argument(
        "--rate",
        type=_positive_float,
        default=DEFAULT_RATE,
        metavar="PER_SECOND",
        help=f"request rate ceiling; lowered automatically when throttled (default {DEFAULT_RATE:g}: "
        "Descope's published 1000 requests / 10 s)",
    )
    remote.add_argument(
        "--max-attempts",
        type=_positive_int,
        default=DEFAULT_MAX_ATTEMPTS,
        help="failed attempts per key before giving up, first included; 429s do not count "
        f"(default {DEFAULT_MAX_ATTEMPTS})",
    )
    remote.add_argument(
        "--key-deadline",
        type=_positive_float,
        default=DEFAULT_KEY_DEADLINE,
        metavar="SECONDS",
        help=f"give up on a key this long after its first attempt (default {DEFAULT_KEY_DEADLINE:g})",
    )

    parser = _Parser(
        prog="descope-reconcile",
        description="Keep a Descope project's access keys exactly as versioned YAML files say.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    validate = commands.add_parser(
        "validate",
        parents=[common],
        help="check the desired files offline (no credentials, no network)",
        description="Check every desired file against schemas/desired.schema.json and report every problem.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    validate.add_argument(
        "--format",
        choices=("text", "github", "json"),
        default="text",
        help="text: path:line:col: error: ...; github: workflow annotations; json: a list",
    )

    commands.add_parser(
        "plan",
        parents=[common, remote],
        help="show what apply would change (read-only); exit 2 when there are changes",
        description="Read the project, compare it with the desired files, print the changes. Sends no update.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )

    apply = commands.add_parser(
        "apply",
        parents=[common, remote],
        help="send one update per key that differs, and none for the others",
        description="Plan, then update every key that differs: rate-limited, retried, journaled.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    apply.add_argument(
        "--concurrency",
        type=_positive_int,
        default=DEFAULT_CONCURRENCY,
        help=f"updates in flight at once (default {DEFAULT_CONCURRENCY})",
    )
    apply.add_argument(
        "--max-changes",
        type=_change_limit,
        metavar="N|P%",
        help=f"refuse (exit 3) before any write when more keys would change; default "
        f"{DEFAULT_MAX_CHANGES_SHARE * 100:.0f}%% when more than {DEFAULT_THRESHOLD_MIN_KEYS} keys are managed",
    )
    apply.add_argument("--force", action="store_true", help="apply even over --max-changes")
    apply.add_argument(
        "--progress-every",
        type=_positive_float,
        default=0.0,
        metavar="SECONDS",
        help="progress on stderr this often (default: a live line on a terminal, else a log line every 5 s)",
    )
    apply.add_argument("--journal", type=Path, metavar="FILE", help="JSON Lines journal (default: beside --report)")
    return parser


def _configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.ERROR if quiet else (logging.DEBUG if verbose >= 2 else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s" if verbose else "%(message)s"))
    handler.addFilter(redactor)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs one INFO line per request: useful at -v, noise otherwise.
    logging.getLogger("httpx").setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.DEBUG if verbose >= 2 else logging.WARNING)


def _print_diagnostics(diagnostics: Sequence[Diagnostic], output_format: str) -> None:
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


def _load(args: argparse.Namespace, output_format: str = "text") -> LoadedDesired:
    loaded = load_desired(args.paths, max_bytes=args.max_file_size)
    if loaded.diagnostics:
        _print_diagnostics(loaded.diagnostics, output_format)
        raise ValidationFailed(len(loaded.diagnostics))
    return loaded


def cmd_validate(args: argparse.Namespace) -> int:
    loaded = _load(args, args.format)
    if args.format == "json":
        print("[]")
    log.info("%d file(s), %d key(s): valid", len(loaded.files), len(loaded.state.keys))
    return ExitCode.OK


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """The run's knobs, for the report (JSON-ready)."""
    names = ("timeout", "rate", "concurrency", "max_attempts", "key_deadline", "max_changes", "force")
    values = {name: getattr(args, name) for name in names if hasattr(args, name)}
    return {name: str(value) if isinstance(value, ChangeLimit) else value for name, value in values.items()}


def _exit_code(args: argparse.Namespace, plan: Plan, outcome: ApplyOutcome | None) -> ExitCode:
    if plan.errors or (outcome and any(r.outcome is not Outcome.UPDATED for r in outcome.results)):
        return ExitCode.FAILURE
    if args.command == "plan" and plan.updates:
        return ExitCode.CHANGES_PENDING
    return ExitCode.OK


async def _apply(args: argparse.Namespace, session: Session, plan: Plan, run_id: str) -> ApplyOutcome:
    journal_file = args.journal or (journal_path_for(args.report) if args.report else None)
    journal = Journal(journal_file, run_id) if journal_file else None
    try:
        outcome = await execute(
            session,
            plan,
            concurrency=args.concurrency,
            journal=journal,
            progress_every=None if args.quiet else args.progress_every,
        )
    finally:
        if journal is not None:
            journal.close()
    if not args.quiet:
        sys.stdout.write(render_results(outcome.results))
    if outcome.fatal is not None:
        log.error("error: %s; the run stopped, nothing more was sent", outcome.fatal)
    if outcome.interrupted:
        log.error("interrupted: in-flight updates finished, the rest were not sent")
    return outcome


async def _plan_or_apply(args: argparse.Namespace) -> int:
    clock = RunClock(args.command)
    loaded = _load(args)  # any validation error: no network call at all
    credentials = credentials_from_env(os.environ)
    redactor.add(credentials.management_key)
    base_url = base_url_for(credentials.project_id, os.environ)
    connections = getattr(args, "concurrency", 1)
    retry = RetrySettings(args.rate, args.max_attempts, args.key_deadline)
    async with DescopeClient(credentials, base_url, timeout=args.timeout, max_connections=connections) as client:
        session = Session(client, retry)
        with session.signals_stop_the_run():
            log.debug("reading access keys from %s", base_url)
            plan = await fetch_plan(session, loaded.state)
            if not args.quiet:
                sys.stdout.write(render_plan(plan, verbose=args.verbose > 0))
                sys.stdout.flush()
            outcome, refusal = None, None
            if args.command == "apply" and plan.updates:
                try:
                    check_safety(plan, args.max_changes, force=args.force)  # before any write
                except SafetyThresholdExceeded as error:
                    refusal = error  # still write the report: a refused plan is worth auditing
                else:
                    outcome = await _apply(args, session, plan, clock.run_id)
        if args.report:
            report = make_report(
                clock, loaded, client, credentials.project_id, plan, settings=_settings(args), outcome=outcome
            )
            write_report(args.report, report)
            log.info("report written to %s", args.report)
    if refusal is not None:
        raise refusal
    return _exit_code(args, plan, outcome)


COMMANDS = {"validate": cmd_validate}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose, args.quiet)
    try:
        if args.command in COMMANDS:
            return COMMANDS[args.command](args)
        return asyncio.run(_plan_or_apply(args))
    except UsageError as error:
        parser.print_usage(sys.stderr)
        log.error("error: %s", error)
        return error.exit_code
    except ReconcileError as error:
        log.error("error: %s", error)
        return error.exit_code
    except OSError as error:  # an unwritable report path, a full disk: the environment, not a bug
        where = f": {error.filename}" if error.filename else ""
        log.error("error: %s%s", error.strerror or error, where)
        return ExitCode.FAILURE
    except KeyboardInterrupt:
        log.error("interrupted")
        return ExitCode.FAILURE
