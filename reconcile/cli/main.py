"""The `descope-reconcile` command line: the commands assembled, logging, and errors mapped to exit codes."""

from __future__ import annotations

import argparse
import asyncio
import inspect
import logging
import sys
from collections.abc import Sequence

from reconcile import __version__
from reconcile.cli import apply, audit, export, plan, validate
from reconcile.cli.options import EPILOG, Parser
from reconcile.client.redact import redactor
from reconcile.errors import ExitCode, ReconcileError, UsageError
from reconcile.log import VERBOSE

log = logging.getLogger("reconcile")
COMMANDS = (validate, plan, apply, export, audit)  # the order of `--help`


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="descope-reconcile",
        description="Keep a Descope project's access keys exactly as versioned YAML files say.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for command in COMMANDS:
        command.register(subcommands)
    return parser


def _configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.ERROR if quiet else (logging.INFO, VERBOSE, logging.DEBUG)[min(verbose, 2)]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s" if verbose else "%(message)s"))
    handler.addFilter(redactor)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs one INFO line per request: useful at -v, noise otherwise.
    logging.getLogger("httpx").setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.DEBUG if verbose >= 2 else logging.WARNING)


def _run(args: argparse.Namespace) -> int:
    outcome = args.handler(args)
    code: int = asyncio.run(outcome) if inspect.iscoroutine(outcome) else outcome
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose, args.quiet)
    try:
        return _run(args)
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
