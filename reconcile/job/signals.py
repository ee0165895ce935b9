"""The stop signals: the first SIGINT/SIGTERM stops every run of the process (several targets run at
once), the second exits at once with 128 + the signal's number.

Python-level handlers: they run even while the event loop is blocked (a hung file write), where
asyncio's own handlers would wait for it. The first run to listen installs them, the last puts the
previous ones back: nothing is left behind once no run listens (an in-process caller keeps its own).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from types import FrameType
from typing import Any, Protocol

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stoppable(Protocol):
    interrupted: bool

    def interrupt_soon(self) -> None:
        """Stop the run (called from the signal handler: thread-safe, returns at once)."""


_listening: set[Stoppable] = set()  # the runs a signal stops now
_previous: dict[int, Any] = {}  # the handlers the first run replaced


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    runs = list(_listening)
    if any(run.interrupted for run in runs):  # the second signal: leave now
        os.write(2, b"interrupted again: exiting at once\n")
        os._exit(128 + signum)
    for run in runs:
        run.interrupted = True
        run.interrupt_soon()


@contextlib.contextmanager
def signals_stop(run: Stoppable) -> Iterator[None]:
    """Within the block, a SIGINT/SIGTERM stops `run` (and every other run listening)."""
    if not _listening:
        _previous.update({signum: signal.signal(signum, _on_signal) for signum in STOP_SIGNALS})
    _listening.add(run)
    try:
        yield
    finally:
        _listening.discard(run)
        if not _listening:
            for signum, handler in _previous.items():
                signal.signal(signum, handler)
            _previous.clear()
