"""The `descope-reconcile` command line: arguments, logging, and errors mapped to exit codes."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from reconcile import __version__
from reconcile.cli import commands
from reconcile.client.descope import DEFAULT_TIMEOUT_SECONDS
from reconcile.client.redact import redactor
from reconcile.desired.loader import DEFAULT_MAX_FILE_BYTES
from reconcile.errors import ExitCode, ReconcileError, UsageError
from reconcile.job import DEFAULT_MAX_CHANGES_SHARE, DEFAULT_THRESHOLD_MIN_KEYS, ChangeLimit
from reconcile.plan.saved import parse_age

log = logging.getLogger("reconcile")
Converter = Callable[[str], Any]

# Descope publishes 1000 requests per 10 s for backend (SDK) traffic: 100/s never exceeds it,
# and the limiter slows down by itself where a project's limit is lower.
DEFAULT_RATE = 100.0
DEFAULT_CONCURRENCY = 8
DEFAULT_MAX_ATTEMPTS = 6
DEFAULT_KEY_DEADLINE = 300.0

EPILOG = f"""\
exit codes:
  {ExitCode.OK:<3} valid (validate), in sync (plan), everything applied (apply), done (export, audit)
  {ExitCode.FAILURE:<3} an error: invalid input, API or network failure, a refused saved plan, or a key
      failed, missing, not editable, in conflict or interrupted
  {ExitCode.CHANGES_PENDING:<3} plan found changes to make (audit --fail-on-drift: drift found)
  {ExitCode.SAFETY_THRESHOLD:<3} apply refused: the plan changes more keys than --max-changes allows
  {ExitCode.USAGE:<3} usage error (bad command line)

environment:
  DESCOPE_PROJECT_ID            the project (every command but validate)
  DESCOPE_MANAGEMENT_KEY        its management key; never give it on the command line
  DESCOPE_MANAGEMENT_KEY_FILE   or: a file holding the key (mounted secrets)
  DESCOPE_BASE_URL              API base URL (DESCOPE_BASE_URI, the SDKs' name, works too);
                                default https://api.descope.com, or the regional host for
                                32+ character project ids. Plain http:// only on loopback.
  SSL_CERT_FILE                 CA bundle for TLS (verification cannot be switched off)
  GITHUB_STEP_SUMMARY           where --summary goes by default, when set (GitHub Actions)

examples:
  descope-reconcile validate desired/
  descope-reconcile plan desired/ --report report.json --out plan.json   # exit 2: drift
  descope-reconcile apply --plan plan.json --report report.json          # exactly the reviewed plan
  descope-reconcile apply desired/ --report report.json
  descope-reconcile export --out desired/keys.yaml
  descope-reconcile audit desired/ --summary audit.md --out audit.json
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(ExitCode.USAGE, f"{self.prog}: error: {message}\n")


def _checked(convert: type[float] | type[int], minimum: float, what: str) -> Converter:
    def parse(text: str) -> float | int:
        value = convert(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    return parse


_positive_float = _checked(float, 1e-9, "positive")
_positive_int = _checked(int, 1, "at least 1")
_non_negative_int = _checked(int, 0, "0 or more")


def _parsed(parse: Converter) -> Converter:
    """A parser's ValueError as argparse's usage error (exit 64)."""

    def wrapper(text: str) -> object:
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return wrapper


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more detail on stderr (-vv: debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors on stderr, nothing on stdout")


def build_parser() -> argparse.ArgumentParser:
    desired = _Parser(add_help=False)
    desired.add_argument(
        "--max-file-size",
        type=_positive_int,
        default=DEFAULT_MAX_FILE_BYTES,
        metavar="BYTES",
        help=f"refuse desired files larger than this (default {DEFAULT_MAX_FILE_BYTES:,})",
    )
    remote = _Parser(add_help=False)
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
        help="failed attempts per request before giving up, first included; 429s do not count "
        f"(default {DEFAULT_MAX_ATTEMPTS})",
    )
    remote.add_argument(
        "--key-deadline",
        type=_positive_float,
        default=DEFAULT_KEY_DEADLINE,
        metavar="SECONDS",
        help=f"give up on a key this long after its first attempt (default {DEFAULT_KEY_DEADLINE:g})",
    )
    reported = _Parser(add_help=False)
    reported.add_argument("--report", type=Path, metavar="FILE", help="write the JSON report here (mode 0600)")
    reported.add_argument(
        "--summary",
        type=Path,
        metavar="FILE",
        help="write a Markdown summary here (default: $GITHUB_STEP_SUMMARY when set)",
    )

    parser = _Parser(
        prog="descope-reconcile",
        description="Keep a Descope project's access keys exactly as versioned YAML files say.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    def command(name: str, parents: list[_Parser], summary: str, text: str) -> argparse.ArgumentParser:
        sub = subcommands.add_parser(
            name,
            parents=parents,
            help=summary,
            description=text,
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _add_output_options(sub)
        return sub

    paths_help = "desired-state YAML files or folders (recursive)"
    validate = command(
        "validate",
        [desired],
        "check the desired files offline (no credentials, no network)",
        "Check every desired file against schemas/desired.schema.json and report every problem.",
    )
    validate.add_argument("paths", nargs="+", metavar="PATH", help=paths_help)
    validate.add_argument(
        "--format",
        choices=("text", "github", "json"),
        default="text",
        help="text: path:line:col: error: ...; github: workflow annotations; json: a list",
    )

    plan = command(
        "plan",
        [desired, remote, reported],
        "show what apply would change (read-only); exit 2 when there are changes",
        "Read the project, compare it with the desired files, print the changes. Sends no change.",
    )
    plan.add_argument("paths", nargs="+", metavar="PATH", help=paths_help)
    plan.add_argument("--out", type=Path, metavar="FILE", help="save the plan for `apply --plan FILE`")

    apply = command(
        "apply",
        [desired, remote, reported],
        "send one update per key that differs, and none for the others",
        "Plan (or load a saved plan), then change every key that differs: rate-limited, retried, journaled.",
    )
    apply.add_argument("paths", nargs="*", metavar="PATH", help=paths_help + "; optional with --plan")
    apply.add_argument(
        "--plan",
        type=Path,
        metavar="FILE",
        help="apply this saved plan and nothing else; refused if stale, edited or too old "
        "(with PATHs, also if the desired files changed)",
    )
    apply.add_argument(
        "--max-plan-age",
        type=_parsed(parse_age),
        default=parse_age("24h"),
        metavar="AGE",
        help="refuse a saved plan older than this: 24h (default), 90m, 3600s, 2d",
    )
    apply.add_argument(
        "--concurrency",
        type=_positive_int,
        default=DEFAULT_CONCURRENCY,
        help=f"updates in flight at once (default {DEFAULT_CONCURRENCY})",
    )
    apply.add_argument(
        "--max-changes",
        type=_parsed(ChangeLimit.parse),
        metavar="N|P%",
        help="refuse (exit 3) before any write when more keys would change; default "
        f"{DEFAULT_MAX_CHANGES_SHARE * 100:.0f}%% when more than {DEFAULT_THRESHOLD_MIN_KEYS} keys are managed",
    )
    apply.add_argument("--force", action="store_true", help="apply even over --max-changes")
    apply.add_argument("--journal", type=Path, metavar="FILE", help="JSON Lines journal (default: beside --report)")
    apply.add_argument(
        "--progress-every",
        type=_positive_float,
        default=0.0,
        metavar="SECONDS",
        help="progress on stderr this often (default: a live line on a terminal, else a log line every 5 s)",
    )

    export = command(
        "export",
        [remote],
        "write every key of the project as a desired file (bootstrap)",
        "Write the project's keys as a valid desired file: sorted, updatable fields only, "
        "server-managed facts as comments. `plan` on the result reports no change.",
    )
    export.add_argument("--out", type=Path, required=True, metavar="FILE", help="the desired file to write")
    export.add_argument("--ids", metavar="ID,ID", help="only these key ids (comma-separated)")
    export.add_argument("--tenant", action="append", metavar="TENANT_ID", help="only keys of this tenant (repeatable)")
    export.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")

    audit = command(
        "audit",
        [desired, remote],
        "read-only audit of the whole project, in Markdown and JSON",
        "Managed and unmanaged keys, drift, inactive keys, keys expiring soon, keys with no IP "
        "restriction, keys with neither roles nor tenants. Exit 0 even with drift, unless --fail-on-drift.",
    )
    audit.add_argument("paths", nargs="*", metavar="PATH", help=paths_help + " (none: every key is unmanaged)")
    audit.add_argument("--out", type=Path, metavar="FILE", help="write the audit as JSON (mode 0600)")
    audit.add_argument(
        "--summary", type=Path, metavar="FILE", help="write it as Markdown (default: $GITHUB_STEP_SUMMARY when set)"
    )
    audit.add_argument("--expiring-within", type=_non_negative_int, default=30, metavar="DAYS", help="default 30 days")
    audit.add_argument("--fail-on-drift", action="store_true", help="exit 2 when any managed key drifted")
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose, args.quiet)
    try:
        if args.command == "validate":
            return commands.validate(args)
        return asyncio.run(commands.REMOTE[args.command](args))
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
