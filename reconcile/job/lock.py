"""One apply at a time per project on this machine: an advisory lock (`flock`) on a file in a per-user
state folder, keyed by the project's canonical identity (`reconcile.config.identity`: however its
base URL is spelled, `127.0.0.1` or `localhost`, any case, `:443`, the regional host or the default).

Every update body pins every field, so two applies interleaving their reads and writes on one key
would silently revert each other. The lock serializes them on one machine (and user); across
machines, CI must run applies one at a time (a concurrency group, as the bundled workflows do).
The kernel drops the lock when the process ends, however it ends: a crashed run never leaves a
stale lock behind, and the file itself is never deleted (deleting a lock file races with a waiter).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

from reconcile.config.identity import canonical_project
from reconcile.errors import ConfigError, Interrupted, ReconcileError
from reconcile.files import private_fd

POLL_SECONDS = 0.1  # how often a waiting run tries the lock again
log = logging.getLogger("reconcile")


class LockHeld(ReconcileError):
    """Another apply on this machine is changing the same project."""


def lock_dir(env: Mapping[str, str]) -> Path:
    """$XDG_STATE_HOME/descope-reconcile/locks, by default ~/.local/state/descope-reconcile/locks."""
    state = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "descope-reconcile" / "locks"


def lock_path(folder: Path, base_url: str, project_id: str) -> Path:
    key = hashlib.sha256(canonical_project(base_url, project_id).encode()).hexdigest()[:32]
    return folder / f"{key}.lock"


def _holder(fd: int) -> str:
    """Who holds the lock, as its holder wrote it."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode())
        return f"pid {info['pid']} on {info['host']}, run {info['runId']}, since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not said who it is yet"


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextlib.asynccontextmanager
async def project_lock(path: Path, *, run_id: str, wait: float, stop: asyncio.Event) -> AsyncIterator[None]:
    """Hold the project's lock for the block; wait up to `wait` seconds for it, else refuse naming the holder."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            f"cannot create the lock folder {path.parent}: {error.strerror} (set XDG_STATE_HOME)"
        ) from None
    fd = private_fd(path, os.O_RDWR)
    try:
        deadline, locked = time.monotonic() + wait, _try_lock(fd)
        if not locked and wait > 0:
            log.info("waiting up to %gs for the project's lock (%s)", wait, _holder(fd))
        while not locked:
            if stop.is_set():
                raise Interrupted("interrupted while waiting for the project's lock; nothing was sent")
            if time.monotonic() >= deadline:
                raise LockHeld(
                    f"another apply is changing this project from this machine ({_holder(fd)}; lock {path}): "
                    "nothing was sent; wait for it to finish, or give --wait-lock SECONDS"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=POLL_SECONDS)
            locked = _try_lock(fd)
        since = datetime.now(UTC).isoformat(timespec="seconds")
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "runId": run_id, "since": since}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # a later reader must not name a run that has ended
    finally:
        os.close(fd)  # closing releases the lock
