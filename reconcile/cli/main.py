"""The `descope-reconcile` command line: the parser assembled from the command a command line names,
then the run (`run.py`). `--version` and the top-level `--help` import no command: their start-up is
the interpreter's and argparse's."""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from reconcile import __version__
from reconcile.cli.parser import COMMANDS, EPILOG, Parser
from reconcile.errors import ExitCode


def build_parser(only: str | None = None, *, listed: bool = False) -> argparse.ArgumentParser:
    """Every command, or `only` one: `validate` runs on every commit (pre-commit), and importing the
    network commands (httpx, asyncio) would double its start-up time. `listed`: every command by its
    name and summary only, as the top-level `--help` shows them (a command line that names none)."""
    parser = Parser(
        prog="descope-reconcile",
        description="Keep a Descope project's access keys exactly as versioned YAML files say.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for name in COMMANDS if only is None else (only,):
        if listed:
            subcommands.add_parser(name, help=COMMANDS[name])
        else:
            importlib.import_module(f"reconcile.cli.{name}").register(subcommands)
    return parser


def _command_named(argv: Sequence[str]) -> str | None:
    """The command of this command line, when it names one (the first word that is not an option)."""
    first = next((word for word in argv if not word.startswith("-")), None)
    return first if first in COMMANDS else None


def main(argv: Sequence[str] | None = None) -> int:  # noqa: RET503 (the process ends in end_process)
    """The command line's exit code. With no `argv`, this process's own command line (the console
    script, `python -m reconcile`): the process then ends here (`end_process`), never freeing what
    the run built."""
    if argv is not None:
        return run_command(list(argv))
    try:
        code = run_command(sys.argv[1:], ending=True)
    except KeyboardInterrupt:  # while the command's modules load, before the run's own handling
        sys.stderr.write("interrupted\n")
        code = ExitCode.FAILURE
    end_process(code)


def end_process(code: int) -> NoReturn:
    """End the process now: its files are written and closed, its output is flushed here. What the
    run built is not freed one object at a time first (0.5 s of a 100,000-key plan's wall time), nor
    are the interpreter's modules torn down."""
    import logging  # noqa: PLC0415 (loaded by every run that gets here; not for --version)

    logging.shutdown()
    try:  # what the run printed and has not flushed (a SARIF log on stdout) is lost unless written now
        if sys.stdout is not None:  # None: the process started with its stdout closed (`>&-`)
            sys.stdout.flush()
    except (OSError, ValueError) as error:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            sys.stderr.write(f"error: stdout: {getattr(error, 'strerror', None) or error}\n")
        code = code if code in (ExitCode.FAILURE, ExitCode.USAGE) else ExitCode.FAILURE  # output lost: no success
    with contextlib.suppress(OSError, ValueError, AttributeError):  # stderr closed or gone: nothing to say
        sys.stderr.flush()
    os._exit(code)


def run_command(words: Sequence[str], *, ending: bool = False) -> int:
    """One command line's run. `ending`: the process ends after it (`end_process`), so what the run
    builds is kept until then."""
    command = _command_named(words)
    # The imports make no garbage, only long-lived objects, which the collector scanned over and over
    # as they came (67 collections, 0.03 s of CPU, before an apply's first request): off meanwhile,
    # and then out of its sight (`run` puts them back in it when the run ends, as `bulk` does).
    collecting = gc.isenabled()
    gc.disable()
    try:
        # Naming no command, the command line can only ask for --help or --version, or be a usage
        # error: argparse ends it before any command's parser would run.
        parser = build_parser(command, listed=command is None)
        args = parser.parse_args(words)
        from reconcile.cli.run import run  # noqa: PLC0415 (the run's imports: not for --version nor --help)
        from reconcile.job.clock import retain_until_exit  # noqa: PLC0415 (as `run`)

        if ending:
            retain_until_exit()
    finally:
        gc.freeze()
        if collecting:
            gc.enable()
    return run(parser, args)
