"""Progress of a long apply: a live line on a terminal, a log line every few seconds otherwise."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import TextIO

from reconcile.executor import Progress

log = logging.getLogger("reconcile.progress")


def describe(progress: Progress, now: float) -> str:
    elapsed = max(now - progress.started, 1e-9)
    rate = progress.done / elapsed
    remaining = progress.total - progress.done
    eta = f"{remaining / rate:.0f}s" if rate > 0 else "?"
    return (
        f"{progress.done}/{progress.total} keys, {rate:.1f}/s, ETA {eta}, "
        f"{progress.retries} retries, {progress.failed} not updated"
    )


async def report_progress(progress: Progress, *, stream: TextIO = sys.stderr, interval: float | None = None) -> None:
    """Runs until cancelled; the caller cancels it when the apply ends."""
    live = stream.isatty()
    interval = interval if interval is not None else (0.5 if live else 5.0)
    try:
        while True:
            await asyncio.sleep(interval)
            line = describe(progress, time.monotonic())
            if live:
                stream.write(f"\r\x1b[2K{line}")
                stream.flush()
            else:
                log.info("progress: %s", line)
    finally:
        if live:
            stream.write("\r\x1b[2K")
            stream.flush()
