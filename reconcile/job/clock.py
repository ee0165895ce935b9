"""A run's identity and clock: its id, when it started, seconds per phase; and memory settings for bulk data.
Light on purpose: the offline commands import it."""

from __future__ import annotations

import contextlib
import gc
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime


class _Retained:
    """What a run built that its process never frees: the command line ends its process with
    `os._exit` once everything is written (cli/main.py), and freeing a 100,000-key run's objects one
    by one took 0.5 s of its wall time. An in-process caller (the tests) frees them as usual."""

    def __init__(self) -> None:
        self.objects: list[object] | None = None  # None: not retaining


_retained = _Retained()


def retain_until_exit() -> None:
    """From now on, `keep` holds what it is given until the process ends."""
    _retained.objects = []


def keep(*objects: object) -> None:
    """Big data a run built (the desired keys, the project's keys, the plan and its report): held
    until the process ends when it ends without freeing them (`retain_until_exit`)."""
    if _retained.objects is not None:
        _retained.objects.extend(objects)


@contextlib.contextmanager
def bulk() -> Iterator[None]:
    """Building long-lived, acyclic data (100,000 keys read, fetched, diffed, reported): the cyclic
    collector would rescan the growing heap again and again (measured: 26% of a 100,000-key plan).
    Off meanwhile; afterwards the survivors are frozen out of its sight. Not for apply's retry loop,
    whose exceptions do make cycles."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


@dataclass
class RunClock:
    """One run's id, start and seconds per phase (the report's `run`)."""

    mode: str
    # 128 random bits, as uuid4().hex but without importing uuid (and platform): validate makes one too.
    run_id: str = field(default_factory=lambda: os.urandom(16).hex())
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase of the run

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - began

    def describe_timings(self) -> str:
        return ", ".join(f"{name} {seconds:.2f}s" for name, seconds in self.timings.items())
