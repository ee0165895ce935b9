"""Progress of a long apply: a live line on a terminal, a log line every few seconds otherwise."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import TextIO

from reconcile.apply.executor import Progress

log = logging.getLogger("reconcile.apply.progress")


def describe(progress: Progress, now: float) -> str:
    elapsed = max(now - progress.started, 1e-9)
    rate = progress.done / elapsed
    remaining = progress.total - progress.done
    eta = f"{remaining / rate:.0f}s" if rate > 0 else "?"
    return (
        f"{progress.done}/{progress.total} keys, {rate:.1f}/s, ETA {eta}, "
        f"{progress.retries} retries, {progress.failed} not updated"
    )


LIVE_INTERVAL = 0.5
LOG_INTERVAL = 5.0


async def report_progress(progress: Progress, *, stream: TextIO | None = None, interval: float = 0.0) -> None:
    """Runs until cancelled (the caller cancels it when the apply ends). `interval` 0: the default
    for the stream, a live line twice a second on a terminal, a log line every 5 s otherwise."""
    stream = stream or sys.stderr
    live = stream.isatty()
    interval = interval or (LIVE_INTERVAL if live else LOG_INTERVAL)
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
