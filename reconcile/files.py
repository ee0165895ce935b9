"""Output files: private (0600) and atomic, never through a symbolic link, checked before a run starts.

Every writer of the tool goes through here (report, journal, saved plan, summary, audit, export), so
the rules hold everywhere: a symbolic link at an output path is refused, not followed (it could
point anywhere, and the target would keep its own, wider mode); a file that already exists is
made private again (the mode given to `open` only applies when it creates the file).
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import IO

from reconcile.errors import ConfigError


def _refuse_special(path: Path, what: str) -> os.stat_result | None:
    """The path's own status (not its target's), or a one-line error when it cannot be an output file."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ConfigError(f"{what} {path}: {error.strerror}") from None
    if stat.S_ISLNK(info.st_mode):
        raise ConfigError(f"{what} {path}: is a symbolic link; refusing to write through it")
    if stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"{what} {path}: is a directory; give a file name")
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{what} {path}: is not a regular file")
    return info


def check_output(path: Path, what: str, *, append: bool = False) -> None:
    """Prove `path` can be written, before the run sends anything: a run that changes a project and
    then cannot write its report has lost the record of what it did. Creates missing parent folders
    (the writers would) and probes the folder with a temporary file, which is what the atomic writer
    needs; an appended file (the journal) must also be writable itself."""
    existing = _refuse_special(path, what)
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=parent)
        os.close(fd)
        Path(probe).unlink()
    except OSError as error:
        raise ConfigError(f"{what} {path}: cannot write in {parent}: {error.strerror}") from None
    if append and existing is not None and not os.access(path, os.W_OK):
        raise ConfigError(f"{what} {path}: the file is not writable")


def write_private_atomically(path: Path, text: str, *, mode: int = 0o600) -> None:
    """Temporary file beside the target (same filesystem), fsync, rename: readers never see half a file.
    Private (0600) unless said otherwise: reports describe a project's credentials. A symbolic link
    at `path` is refused (renaming over it would silently replace the link the user made)."""
    _refuse_special(path, "output")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def private_fd(path: Path, flags: int) -> int:
    """A file descriptor opened without following a symbolic link (O_NOFOLLOW: the open fails on one),
    private (0600) even when the file existed with a wider mode (fchmod), never a FIFO or device."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
    except OSError as error:
        _refuse_special(path, "output")  # names a link or a folder plainly
        raise ConfigError(f"output {path}: {error.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ConfigError(f"output {path}: is not a regular file")
        os.fchmod(fd, 0o600)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_private_append(path: Path) -> IO[str]:
    """For files written line by line (the journal): appended to, private, never through a link."""
    return os.fdopen(private_fd(path, os.O_WRONLY | os.O_APPEND), "a", encoding="utf-8")
