"""The test harness: the CLI run in-process (`run_cli`), one subprocess starter for where a process is
the point (`start_process`, `run_process`), and what many tests build or read (fleets, endpoint
paths, journals). The fixtures that start the emulator live in tests/conftest.py."""

from tests.support.cli import CliResult, cli_env, run_cli
from tests.support.fleet import (
    ACCESSKEY,
    AUDIT_EVENT,
    AUDIT_SEARCH,
    CREATE,
    DEACTIVATE,
    DELETE_BATCH,
    EXCHANGE,
    ROTATE,
    SEARCH,
    UPDATE,
    fleet,
    journal_lines,
)
from tests.support.process import run_process, start_process

__all__ = [
    "ACCESSKEY",
    "AUDIT_EVENT",
    "AUDIT_SEARCH",
    "CREATE",
    "DEACTIVATE",
    "DELETE_BATCH",
    "EXCHANGE",
    "ROTATE",
    "SEARCH",
    "UPDATE",
    "CliResult",
    "cli_env",
    "fleet",
    "journal_lines",
    "run_cli",
    "run_process",
    "start_process",
]
