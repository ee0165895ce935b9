"""A parsed command line run: its logging, its errors mapped to exit codes, and the process as it
was afterwards."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import logging
import sys
from collections.abc import Iterator

from reconcile.cli.common import describe_error
from reconcile.cli.dispatch import dispatch
from reconcile.client.redact import redactor
from reconcile.errors import ExitCode, ReconcileError, UsageError
from reconcile.log import VERBOSE, TargetPrefix
from reconcile.output.escape import LogEscaper

log = logging.getLogger("reconcile")

# At exit the interpreter's last collections walk every object the run's imports made (0.2 s for a
# network command, measured): frozen, they are left to the end of the process, which frees them
# anyway. Nothing of the run waits on a finalizer: its files are closed and its streams flushed.
atexit.register(gc.freeze)


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


def run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """The command line's run, and its exit code."""
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
