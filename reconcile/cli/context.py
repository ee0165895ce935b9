"""Where a target's output goes while several targets run in one process.

The runner makes each target's outcome current while that target runs (a context variable: every
asyncio task has its own copy, so concurrent targets never see each other's). The output helpers
read it: stdout and log lines get the target's name as a prefix, whole lines at a time, and the
Markdown summaries and JSON diagnostics are kept for the combined summaries. Outside a target's
run nothing is current and nothing changes.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only the runner of several targets makes one (not validate with PATHs, on every commit)
    from reconcile.output.targets import TargetOutcome

CURRENT: ContextVar[TargetOutcome | None] = ContextVar("reconcile_target", default=None)


def current_target() -> TargetOutcome | None:
    return CURRENT.get()


def prefixed(text: str) -> str:
    """Every line of `text` marked with the current target's name (unchanged outside a target's run)."""
    outcome = CURRENT.get()
    if outcome is None:
        return text
    return "".join(f"[{outcome.name}] {line}" for line in text.splitlines(keepends=True))


class TargetPrefix(logging.Filter):
    """On the log handler, after the redactor: each line of a record names the target it came from."""

    def filter(self, record: logging.LogRecord) -> bool:
        if CURRENT.get() is not None:
            record.msg, record.args = prefixed(record.getMessage()), None
        return True
