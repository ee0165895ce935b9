"""The CLI run in-process: `reconcile.cli.main.main(argv)` with its own environment, working
folder, stdout and stderr, and nothing of the run left behind for the next test.

A run in a process of its own cost ~0.5 s of interpreter and import start-up; ~400 runs made the
suite slow. In-process, a run sees what a process would: the environment it was given (and only
that), its own streams (pipes: not terminals), exit codes as the interpreter would report them
(SystemExit, and 1 with a traceback on stderr for an uncaught exception). Around the run, the
process-wide state the CLI sets up is saved and put back exactly: the environment, the working
folder, the standard streams, logging (root handlers, levels), the log redactor's known secrets
and the signal handlers. A run that leaves a signal handler behind fails its test.
"""

from __future__ import annotations

import contextlib
import copy
import faulthandler
import io
import logging
import os
import signal
import sys
import traceback
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconcile.cli.main import main
from reconcile.client.redact import redactor

# The loggers whose level the CLI sets (reconcile/cli/run.py): put back after each run.
LOGGERS = ("", "httpx", "httpcore")
SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def cli_env(emulator: Any | None, **extra: str) -> dict[str, str]:
    """This process's environment without DESCOPE_*, pointed at `emulator` (when given), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESCOPE_")}
    if emulator is not None:
        env.update(
            DESCOPE_PROJECT_ID=emulator.config.project_id,
            DESCOPE_MANAGEMENT_KEY=emulator.config.management_key,
            DESCOPE_BASE_URL=emulator.url,
        )
    env.update(extra)
    return env


def run_cli(args: Sequence[str], env: Mapping[str, str], *, cwd: Path | None = None, timeout: float = 120) -> CliResult:
    """`descope-reconcile *args` in this process, with exactly `env` as its environment, in `cwd`.
    A run still going after `timeout` seconds gets every thread's stack dumped to the real stderr
    (it cannot be killed in-process; a test that needs that runs a process: tests/support/process.py)."""
    stdout, stderr = _pipe("strict"), _pipe("backslashreplace")  # as Python sets up a piped process
    with _isolated(env, cwd), _streams(stdout, stderr), _watchdog(timeout):
        code = _exit_code(args)
    return CliResult(code, _text(stdout), _text(stderr))


def _pipe(errors: str) -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors=errors, write_through=True)


def _text(stream: io.TextIOWrapper) -> str:
    stream.flush()
    buffer = stream.buffer
    assert isinstance(buffer, io.BytesIO)
    return buffer.getvalue().decode("utf-8")


def _exit_code(args: Sequence[str]) -> int:
    """What the interpreter would exit with, had `main` run as `python -m reconcile`."""
    try:
        return main(list(args))
    except SystemExit as leaving:  # argparse: usage errors, --help, --version
        if leaving.code is None or isinstance(leaving.code, int):
            return leaving.code or 0
        print(leaving.code, file=sys.stderr)
        return 1
    except Exception:  # a traceback, as an uncaught exception prints it: tests assert there is none
        traceback.print_exc(file=sys.stderr)
        return 1


@contextlib.contextmanager
def _streams(stdout: io.TextIOWrapper, stderr: io.TextIOWrapper) -> Iterator[None]:
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = io.StringIO(), stdout, stderr  # stdin: at its end, as /dev/null
    try:
        yield
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved


@contextlib.contextmanager
def _watchdog(timeout: float) -> Iterator[None]:
    faulthandler.dump_traceback_later(timeout, file=sys.__stderr__)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@contextlib.contextmanager
def _isolated(env: Mapping[str, str], cwd: Path | None) -> Iterator[None]:
    """`env` and `cwd` for the run; afterwards everything the run may have changed, as it was."""
    environment, folder = dict(os.environ), os.getcwd()
    loggers = [logging.getLogger(name) for name in LOGGERS]
    levels, root_handlers = [logger.level for logger in loggers], list(logging.getLogger().handlers)
    known_secrets = copy.deepcopy(vars(redactor))
    handlers = {signum: signal.getsignal(signum) for signum in SIGNALS}
    os.environ.clear()
    os.environ.update(env)
    if cwd is not None:
        os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(folder)
        os.environ.clear()
        os.environ.update(environment)
        logging.getLogger().handlers[:] = root_handlers
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
        vars(redactor).clear()
        vars(redactor).update(known_secrets)
        left = {signum: signal.getsignal(signum) for signum in SIGNALS}
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    assert left == handlers, f"the run left signal handlers behind: {left}"
