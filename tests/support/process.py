"""The one way a test starts the CLI as a process of its own: only where a process is the point
(signals, `kill -9`, resource limits, two runs at once, the console script). Everything else runs
it in-process (tests/support/cli.py), a hundred times cheaper."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from tests.support.cli import CliResult

COMMAND = (sys.executable, "-m", "reconcile")


def start_process(
    args: Sequence[str],
    env: Mapping[str, str],
    *,
    cwd: Path | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.Popen[str]:
    """`python -m reconcile *args` running, its stdout and stderr piped (the caller waits for it).
    A process under a resource limit writes no bytecode: a .pyc cut short by RLIMIT_FSIZE is still
    renamed into place (CPython does not check for a short write) and breaks every later import."""
    limited = {"PYTHONDONTWRITEBYTECODE": "1"} if preexec_fn is not None else {}
    return subprocess.Popen(
        [*COMMAND, *args],
        env={**env, **limited},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=preexec_fn,  # noqa: PLW1509 (resource limits; the child runs no thread before exec)
    )


def run_process(
    args: Sequence[str],
    env: Mapping[str, str],
    *,
    cwd: Path | None = None,
    timeout: float = 120,
    preexec_fn: Callable[[], None] | None = None,
) -> CliResult:
    """`python -m reconcile *args` run to its end, as `run_cli` reports a run."""
    process = start_process(args, env, cwd=cwd, preexec_fn=preexec_fn)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    return CliResult(process.returncode, stdout, stderr)
