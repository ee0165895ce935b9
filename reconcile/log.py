"""Log levels beyond the standard ones: VERBOSE (-v) sits between INFO (normal output) and DEBUG (-vv);
and which target a line comes from, when several run at once."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar

# Retries with their cause, limiter pauses and probes, phase timings: what -v adds to a run's output.
VERBOSE = 15
logging.addLevelName(VERBOSE, "VERBOSE")

# Several targets run concurrently in one process, and their lines (retries, progress, errors) come
# from every stage: each asyncio task has its own copy of this, so a line names the target it came from.
_TARGET: ContextVar[str | None] = ContextVar("reconcile_target", default=None)


@contextlib.contextmanager
def target_lines(name: str) -> Iterator[None]:
    """Within the block (one target's run), each log line is prefixed with the target's name."""
    token = _TARGET.set(name)
    try:
        yield
    finally:
        _TARGET.reset(token)


def prefixed(text: str, name: str) -> str:
    """Every line of `text` marked with a target's name."""
    return "".join(f"[{name}] {line}" for line in text.splitlines(keepends=True))


class TargetPrefix(logging.Filter):
    """On the log handler, after the redactor: each line of a record names the target it came from."""

    def filter(self, record: logging.LogRecord) -> bool:
        if (name := _TARGET.get()) is not None:
            record.msg, record.args = prefixed(record.getMessage(), name), None
        return True
