"""The `descope-reconcile` command line: the commands assembled, logging, and errors mapped to exit codes."""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import logging
import sys
from collections.abc import Iterator, Sequence

from reconcile import __version__
from reconcile.cli.common import describe_error
from reconcile.cli.dispatch import dispatch
from reconcile.cli.options import EPILOG, Parser
from reconcile.client.redact import redactor
from reconcile.errors import ExitCode, ReconcileError, UsageError
from reconcile.log import VERBOSE, TargetPrefix
from reconcile.output.escape import LogEscaper

log = logging.getLogger("reconcile")
# modules of reconcile.cli, in `--help` order
COMMANDS = ("validate", "plan", "apply", "rotate", "export", "audit", "doctor")


def build_parser(only: str | None = None, *, commands: Sequence[str] = COMMANDS) -> argparse.ArgumentParser:
    """Every command, or `only` one: `validate` runs on every commit (pre-commit), and importing the
    network commands (httpx, asyncio) would double its start-up time."""
    parser = Parser(
        prog="descope-reconcile",
        description="Keep a Descope project's access keys exactly as versioned YAML files say.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for name in commands if only is None else (only,):
        importlib.import_module(f"reconcile.cli.{name}").register(subcommands)
    return parser


@contextlib.contextmanager
def _process_state(verbose: int, quiet: bool) -> Iterator[None]:
    """The run's logging, and afterwards the process as it was (for a caller that runs `main`
    in-process, again and again): its log handlers and levels, no management key left in the
    redaction filter, the bulk data's objects back in the collector's sight. The stop signals'
    handlers are put back by the last run that listens (`job/signals.py`)."""
    level = logging.ERROR if quiet else (logging.INFO, VERBOSE, logging.DEBUG)[min(verbose, 2)]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s" if verbose else "%(message)s"))
    handler.addFilter(redactor)  # first: the key is found in the text as it was made
    handler.addFilter(LogEscaper())  # then each record becomes one line safe for a terminal or a CI log
    handler.addFilter(TargetPrefix())  # several targets at once: each line names its target
    root, httpx, httpcore = logging.getLogger(), logging.getLogger("httpx"), logging.getLogger("httpcore")
    before = (root.handlers[:], root.level, httpx.level, httpcore.level)
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs one INFO line per request: useful at -v, noise otherwise.
    httpx.setLevel(logging.INFO if verbose else logging.WARNING)
    httpcore.setLevel(logging.DEBUG if verbose >= 2 else logging.WARNING)
    try:
        yield
    finally:
        root.handlers[:], levels = before[0], before[1:]
        for logger, was in zip((root, httpx, httpcore), levels, strict=True):
            logger.setLevel(was)
        redactor.clear()
        gc.unfreeze()


def _run(args: argparse.Namespace) -> int:
    outcome = dispatch(args.invocation(args))  # the parse step: no Namespace goes further
    if isinstance(outcome, int):
        return outcome
    import asyncio  # noqa: PLC0415 (only the network commands pay for it: validate runs on every commit)

    async def run() -> int:
        return await outcome

    return asyncio.run(run())


def _command_named(argv: Sequence[str]) -> str | None:
    """The command of this command line, when it names one (the first word that is not an option)."""
    first = next((word for word in argv if not word.startswith("-")), None)
    return first if first in COMMANDS else None


def _just_the_version(argv: Sequence[str]) -> bool:
    """`--version` and no command nor help: no command module is needed (their imports are most of
    the start-up of a network command)."""
    return "--version" in argv and _command_named(argv) is None and not {"-h", "--help"} & set(argv)


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command_named(words), commands=() if _just_the_version(words) else COMMANDS)
    args = parser.parse_args(words)
    with _process_state(args.verbose, args.quiet):
        try:
            return _run(args)
        except UsageError as error:
            parser.print_usage(sys.stderr)
            log.error("error: %s", error)
            return error.exit_code
        except (ReconcileError, OSError) as error:
            code, message = describe_error(error)
            log.error("error: %s", message)
            return code
        except KeyboardInterrupt:
            log.error("interrupted")
            return ExitCode.FAILURE
