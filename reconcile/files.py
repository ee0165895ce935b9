"""Output files: private (0600) and atomic, never through a symbolic link, checked before a run starts.
Input files read whole (the config, a key file, a saved plan): regular files only, bounded.

Every writer of the tool goes through here (report, journal, saved plan, summary, audit, export), so
the rules hold everywhere: a symbolic link at an output path is refused, not followed (it could
point anywhere, and the target would keep its own, wider mode); a file that already exists is
made private again (the mode given to `open` only applies when it creates the file).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

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


def _temporary_beside(path: Path, suffix: str) -> tuple[int, str]:
    """A new private file in `path`'s folder (so a rename onto `path` is atomic), open. tempfile is
    imported here: `validate`, which the pre-commit hook runs on every commit, never writes."""
    import tempfile  # noqa: PLC0415

    return tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)


def check_output(path: Path, what: str, *, append: bool = False) -> None:
    """Prove `path` can be written, before the run sends anything: a run that changes a project and
    then cannot write its report has lost the record of what it did. Creates missing parent folders
    (the writers would) and probes the folder with a temporary file, which is what the atomic writer
    needs; an appended file (the journal) must also be writable itself."""
    existing = _refuse_special(path, what)
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, probe = _temporary_beside(path, ".probe")
        os.close(fd)
        Path(probe).unlink()
    except OSError as error:
        raise ConfigError(f"{what} {path}: cannot write in {parent}: {error.strerror}") from None
    if append and existing is not None and not os.access(path, os.W_OK):
        raise ConfigError(f"{what} {path}: the file is not writable")


def _identity(path: Path) -> tuple[int, int] | str:
    """What a path names: the file itself when it exists (any link, `..` or hard link to it), else its
    absolute path once the folders on the way are resolved."""
    try:
        info = path.stat()
    except OSError:
        return os.path.realpath(path)
    return (info.st_dev, info.st_ino)


def check_distinct(outputs: Sequence[tuple[str, Path]], inputs: Sequence[tuple[str, Path]] = ()) -> None:
    """Each output its own file, and none of them a file the run reads: two outputs at one path leave
    only the last one written (a report over the saved plan, a summary over the report), and an output
    at an input (`plan --out desired/keys.yaml`) destroys what the run was made from."""
    seen = {_identity(path): what for what, path in inputs}
    for what, path in outputs:
        identity = _identity(path)
        if identity in seen:
            raise ConfigError(f"{what} {path}: is also {seen[identity]}; give each output a file of its own")
        seen[identity] = what


def write_private_atomically(path: Path, text: str | Iterable[str], *, mode: int = 0o600) -> None:
    """Temporary file beside the target (same filesystem), fsync, rename: readers never see half a file.
    Private (0600) unless said otherwise: reports describe a project's credentials. A symbolic link
    at `path` is refused (renaming over it would silently replace the link the user made). `text`:
    the whole text, or its chunks (written as they come)."""
    _refuse_special(path, "output")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = _temporary_beside(path, ".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.writelines([text] if isinstance(text, str) else text)
            handle.flush()
            os.fsync(handle.fileno())
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def private_fd(path: Path, flags: int, *, private: bool = True) -> int:
    """A file descriptor opened without following a symbolic link (O_NOFOLLOW: the open fails on one),
    private (0600) even when the file existed with a wider mode (fchmod), never a FIFO or device.
    `private=False` (a file someone else owns the mode of, GitHub's step summary): 0644 when created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600 if private else 0o644)
    except OSError as error:
        _refuse_special(path, "output")  # names a link or a folder plainly
        raise ConfigError(f"output {path}: {error.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ConfigError(f"output {path}: is not a regular file")
        if private:
            os.fchmod(fd, 0o600)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


class JsonLines:
    """An append-only JSON Lines file (the journal, the secrets file): private, never through a link,
    never truncated. One policy for both:
    - each line is one `write` (no buffer to lose), whole or not at all: a write cut short (a full
      disk) is truncated back, so neither a fragment nor a glued line is left behind;
    - a line a crash cut short in an earlier run stays a line of its own, never glued to the next;
    - `durable=True` lines (a secret's step, a secret) are fsynced before `append` returns, and a new
      file's folder entry too, so both survive a crash; the others are fsynced when the file closes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        created = not os.path.lexists(path)
        self._fd = private_fd(path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)  # read: its last byte
        self._unsynced = created
        self._folder_unsynced = created
        # A sink's delivery runs in a thread: once the file is closed its number may be another
        # file's or a socket's, so a late line must find it closed, never write there.
        self._lock = threading.Lock()

    def fileno(self) -> int:
        return self._fd

    def append(self, line: str, *, durable: bool = False) -> None:
        with self._lock:
            if self._fd < 0:
                raise OSError(errno.EBADF, f"{self.path} is closed")
            self._append(line, durable=durable)

    def _append(self, line: str, *, durable: bool) -> None:
        data = (line + "\n").encode("utf-8")
        start = None
        try:
            start = os.fstat(self._fd).st_size
            if start and os.pread(self._fd, 1, start - 1) != b"\n":
                data = b"\n" + data
            while data:
                data = data[os.write(self._fd, data) :]
            self._unsynced = True
            if durable:
                self._sync()
        except OSError:
            if start is not None:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, start)
            raise

    def _sync(self) -> None:
        if self._unsynced:
            os.fsync(self._fd)
            self._unsynced = False
        if self._folder_unsynced:
            folder = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
            self._folder_unsynced = False

    def close(self) -> None:
        """Every line written was fsynced or is fsynced now; a failing fsync here loses no line the
        caller relied on (those were `durable`). Closing twice closes once."""
        with self._lock:
            if self._fd < 0:
                return
            try:
                with contextlib.suppress(OSError):
                    self._sync()
            finally:
                os.close(self._fd)
                self._fd = -1


def append_text(path: Path, text: str) -> None:
    """Appended to a file that is not ours to make private (GitHub's step summary), never through a link."""
    with os.fdopen(private_fd(path, os.O_WRONLY | os.O_APPEND, private=False), "a", encoding="utf-8") as handle:
        handle.write(text)


def read_input(path: Path, *, max_bytes: int | None = 64 * 1024 * 1024) -> bytes:
    """A file the run reads whole, or OSError (with the path) when it is not a regular file (a FIFO
    would block the run for ever, `/dev/zero` would never end) or is larger than `max_bytes`."""
    # O_NONBLOCK: a FIFO opens at once, to be refused below (a folder is refused by `open` itself)
    with open(path, "rb", opener=lambda name, flags: os.open(name, flags | os.O_NONBLOCK)) as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        data = handle.read() if max_bytes is None else handle.read(max_bytes + 1)
    if max_bytes is not None and len(data) > max_bytes:
        raise OSError(errno.EFBIG, f"larger than {max_bytes} bytes", str(path))
    return data
