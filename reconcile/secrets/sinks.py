"""The secret sinks the operator names: the only places a created or rotated key's cleartext goes.

- `--secrets-out FILE` (`SecretsFile`): JSON Lines, one object per secret (`id`, `name`, `projectId`,
  `cleartext`, `at`, `runId`), written through `reconcile.files.JsonLines` (0600, never through a
  symbolic link, never truncated, a line cut short by a crash never glued to the next, every line
  fsynced before the key counts as done; every character beyond ASCII as a `\\u` escape, so a name
  from the server never puts a line or bidi separator in the file). The file must be a regular file
  owned by the running user with one link (`check_secrets_file`, before the run sends anything): a
  file someone else owns keeps its owner's readers whatever its mode, and a hard link is a second
  name nobody chose. Missing folders are created 0700.
- `--secrets-command CMD` (`SecretsCommand`): a shell command string, run with `/bin/sh -c CMD` once
  per secret. The cleartext is its standard input (no newline), and only that: never in its argv
  or environment. It is delivered only when the command exits 0 having read all of it. Its
  environment is allow-listed: `PATH`, `HOME`, `TMPDIR`, the locale, `KEY_ID`, `KEY_NAME`,
  `KEY_PROJECT_ID`, and the names given with `--secrets-command-env` (never a management key's
  variable). Its standard output is discarded; the end of its standard error (bounded) is kept,
  and on failure a short excerpt is shown, with every secret and key of the run masked in every
  encoding. It is killed after `SECRETS_COMMAND_TIMEOUT` seconds; a descendant it leaves running
  is not waited for.

Both may be given: each secret goes to both, and counts as delivered only when both took it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import selectors
import shlex
import signal
import stat
import struct
import subprocess
import termios
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from reconcile.errors import ConfigError, ReconcileError, UsageError
from reconcile.files import JsonLines
from reconcile.secrets.coredumps import forbid_core_dumps
from reconcile.secrets.secret import Secret
from reconcile.secrets.vault import reveal

SECRETS_COMMAND_TIMEOUT = 120.0
# The command's environment: what a shell and its tools need, nothing that could be a credential.
_BASIC_ENVIRONMENT = ("PATH", "HOME", "TMPDIR", "LANG", "LANGUAGE", "TZ")
_LOCALE_PREFIX = "LC_"
# Never handed to the command, even when named: the management key's sources.
FORBIDDEN_ENVIRONMENT = ("DESCOPE_MANAGEMENT_KEY", "DESCOPE_MANAGEMENT_KEY_FILE")
_STDERR_KEPT = 64 * 1024  # bytes of a command's standard error kept (its end)
_STDERR_CUT = 4 * 1024  # dropped from the start of a cut tail: a secret split there is not matched whole
_STDERR_SHOWN = 300  # characters of a failed command's standard error shown
_PART = 12  # characters of a secret that, in a row, are part of it (72 random bits), not chance
_POLL = 0.05  # seconds between looks at the command when the system cannot signal its exit
_COMMAND_WORD = re.compile(r"[\w./+-]+")  # a command's name or path, nothing the shell would expand
_STOP_POLL = 0.2  # seconds between looks at whether the run was told to stop
# After the run is told to stop (SIGINT/SIGTERM), a command still running gets this long, then is
# killed: a CI runner sends SIGKILL ~10 s after cancelling, and the report and journal must be written first.
STOP_GRACE = 5.0

# text, and the cleartexts the run issued -> the text without any of them or any management key, in any encoding
Scrub = Callable[[str, Sequence[str]], str]


@dataclass(frozen=True)
class Issued:
    """A secret the server issued, to deliver: for which key, by which run, when."""

    key_id: str
    name: str
    secret: Secret = field(repr=False)
    run_id: str
    at: str


class DeliveryFailed(ReconcileError):
    """A sink did not take the secret; `took` names the sinks (their options) that did."""

    def __init__(self, message: str, took: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.took = tuple(took)


class Sink(Protocol):
    @property
    def options(self) -> list[str]: ...  # the command-line options that name this sink

    def deliver(self, issued: Issued) -> None: ...

    def close(self) -> None: ...


def check_secrets_file(path: Path) -> None:
    """Before the run sends anything: `--secrets-out` is, or can be, a regular file of the running
    user's with one link, mode 0600; missing folders are created 0700."""
    _make_private_folders(path.parent)
    _refuse_open_folder(path)
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    except OSError as error:
        raise ConfigError(f"--secrets-out {path}: {error.strerror}") from None
    _refuse_shared(path, info)
    try:
        path.chmod(0o600, follow_symlinks=False)
    except OSError as error:
        raise ConfigError(f"--secrets-out {path}: cannot be made private (chmod 0600): {error.strerror}") from None


def _make_private_folders(folder: Path) -> None:
    missing = []
    while not os.path.lexists(folder) and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for new in reversed(missing):
        try:
            new.mkdir(mode=0o700)
            new.chmod(0o700)  # mkdir's mode passes through the umask
        except FileExistsError:
            continue
        except OSError as error:
            raise ConfigError(f"--secrets-out: cannot create the folder {new}: {error.strerror}") from None


def _refuse_open_folder(path: Path) -> None:
    """The file's folder is a real folder only its owner (or root) can change: through a symbolic link
    whoever controls the link chooses where secrets go, and in a folder others may write without the
    sticky bit (/tmp has it) they can rename the file away and put one of theirs in its place."""
    folder = path.parent
    try:
        info = folder.lstat()
    except OSError as error:
        raise ConfigError(f"--secrets-out {path}: its folder {folder}: {error.strerror}") from None
    if stat.S_ISLNK(info.st_mode):
        raise ConfigError(f"--secrets-out {path}: its folder {folder} is a symbolic link; give the real folder")
    if info.st_mode & stat.S_IWOTH and not info.st_mode & stat.S_ISVTX:
        raise ConfigError(
            f"--secrets-out {path}: its folder {folder} can be written by other users (mode "
            f"{stat.S_IMODE(info.st_mode):o}): they could replace the file; give a folder only you can change"
        )
    if info.st_uid not in (os.geteuid(), 0):
        raise ConfigError(
            f"--secrets-out {path}: its folder {folder} is owned by uid {info.st_uid}: its owner could replace the file"
        )


def _refuse_shared(path: Path, info: os.stat_result) -> None:
    if stat.S_ISLNK(info.st_mode):
        raise ConfigError(f"--secrets-out {path}: is a symbolic link; refusing to write secrets through it")
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"--secrets-out {path}: is not a regular file")
    if info.st_uid != os.geteuid():
        raise ConfigError(
            f"--secrets-out {path}: is owned by uid {info.st_uid}, not by this user ({os.geteuid()}): "
            "its owner could read every secret; give a file of your own"
        )
    if info.st_nlink != 1:
        raise ConfigError(f"--secrets-out {path}: has {info.st_nlink} links; give a file with no other name")


def check_command_environment(names: Sequence[str], holding_a_key: Sequence[str] = ()) -> None:
    """Before the run sends anything: no management key's source is handed to the secrets command
    (`holding_a_key`: the names whose value holds a key the run knows, once the keys are read)."""
    refused = list(dict.fromkeys([*(name for name in names if name in FORBIDDEN_ENVIRONMENT), *holding_a_key]))
    if refused:
        raise UsageError(
            f"--secrets-command-env {', '.join(refused)}: a management key's source is never handed to the "
            "secrets command; nothing was sent"
        )


class SecretsFile:
    def __init__(self, path: Path, project_id: str) -> None:
        self.path = path
        self.project_id = project_id
        check_secrets_file(path)
        self._lines = JsonLines(path)
        _refuse_shared(path, os.fstat(self._lines.fileno()))  # what was opened, not what was checked before

    @property
    def options(self) -> list[str]:
        return ["--secrets-out", str(self.path)]

    def deliver(self, issued: Issued) -> None:
        record = {
            "id": issued.key_id,
            "name": issued.name,
            "projectId": self.project_id,
            "cleartext": _known(reveal(issued.secret)),
            "at": issued.at,
            "runId": issued.run_id,
        }
        try:
            self._lines.append(json.dumps(record, sort_keys=True), durable=True)
        except OSError as error:
            raise DeliveryFailed(f"--secrets-out {self.path}: {error.strerror or error}") from None

    def close(self) -> None:
        self._lines.close()


@dataclass
class _Exchange:
    """What passed between the tool and one run of the command."""

    unread: int = 0  # bytes of the secret the command did not read
    stderr: bytearray = field(default_factory=bytearray)  # its end, at most _STDERR_KEPT bytes
    cut: bool = False  # the start of its standard error was dropped

    def heard(self, chunk: bytes) -> None:
        self.stderr += chunk
        if len(self.stderr) > _STDERR_KEPT:
            del self.stderr[: len(self.stderr) - _STDERR_KEPT]
            self.cut = True


class SecretsCommand:
    def __init__(  # noqa: PLR0913 (the command and how it runs; keyword-only past the first)
        self,
        command: str,
        project_id: str,
        *,
        scrub: Scrub,
        environment: Sequence[str] = (),
        timeout: float = SECRETS_COMMAND_TIMEOUT,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.command = command
        self.project_id = project_id
        self.timeout = timeout
        self._stopping = stopping
        self._scrub = scrub
        self._names = tuple(environment)
        holding = [name for name in self._names if (value := os.environ.get(name, "")) and scrub(value, ()) != value]
        check_command_environment(self._names, holding)
        self._check_runnable()

    def _check_runnable(self) -> None:
        """Before any write: a command that cannot run (a syntax error, a first word that is no command
        in its PATH, a file that is not executable) would cost the first key its secret."""
        environment = self._environment()
        syntax = subprocess.run(
            ["/bin/sh", "-n", "-c", self.command], env=environment, capture_output=True, text=True, check=False
        )
        if syntax.returncode != 0:
            said = _shown(syntax.stderr)
            raise UsageError(f"--secrets-command: the shell cannot parse it: {said}; nothing was sent")
        try:
            first = shlex.split(self.command)[0]
        except (ValueError, IndexError):
            return
        if not _COMMAND_WORD.fullmatch(first) or "=" in first:
            return  # an assignment, a group, a redirection: the shell's to judge
        if "/" in first:
            found = Path(first).is_file() and os.access(first, os.X_OK)
        else:
            found = (
                subprocess.run(
                    ["/bin/sh", "-c", 'command -v -- "$1"', "sh", first],
                    env=environment,
                    capture_output=True,
                    check=False,
                ).returncode
                == 0
            )
        if not found:
            where = (
                "is not an executable file" if "/" in first else f"is not found in PATH={environment.get('PATH', '')}"
            )
            raise UsageError(f"--secrets-command: {first} {where}; nothing was sent")

    @property
    def options(self) -> list[str]:
        return ["--secrets-command", self.command, *(w for n in self._names for w in ("--secrets-command-env", n))]

    def _environment(self, issued: Issued | None = None) -> dict[str, str]:
        environment = {
            name: value
            for name, value in os.environ.items()
            if name in _BASIC_ENVIRONMENT or name.startswith(_LOCALE_PREFIX) or name in self._names
        }
        if issued is not None:
            environment.update(KEY_ID=issued.key_id, KEY_NAME=issued.name, KEY_PROJECT_ID=self.project_id)
        return environment

    def deliver(self, issued: Issued) -> None:
        value = _known(reveal(issued.secret))
        # Our own copy of the read end stays open: after the command exits, what it left in the pipe
        # is what it did not read.
        read_end, write_end = os.pipe()
        error_read, error_write = os.pipe()
        try:
            try:
                process = subprocess.Popen(
                    ["/bin/sh", "-c", self.command],
                    stdin=read_end,
                    stdout=subprocess.DEVNULL,
                    stderr=error_write,
                    env=self._environment(issued),
                    start_new_session=True,  # its own process group: a timeout kills all of it
                )
            except OSError as error:
                raise DeliveryFailed(f"--secrets-command could not start: {error.strerror or error}") from None
            os.close(error_write)
            error_write = -1
            stdin, write_end = write_end, -1  # the exchange closes it, whatever happens (never twice)
            exchange = self._exchange(process, value.encode(), stdin, error_read)
            exchange.unread += _pending(read_end)
        finally:
            for fd in (read_end, write_end, error_read, error_write):
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
        if process.returncode != 0:
            said = self._excerpt(exchange)
            raise DeliveryFailed(
                f"--secrets-command {_ending(process.returncode)}"
                + (f": {said}" if said else "")
                + " (a variable it needs beyond PATH, HOME, the locale and KEY_*: hand it over with "
                + "--secrets-command-env NAME)"
            )
        if exchange.unread:
            raise DeliveryFailed(
                f"--secrets-command exited 0 without reading the secret ({exchange.unread} of {len(value.encode())} "
                "bytes left unread on its standard input)"
            )

    def _exchange(self, process: subprocess.Popen[bytes], data: bytes, stdin: int, error_read: int) -> _Exchange:
        """The secret to the command's stdin (closed here, whatever happens), its stderr's end kept,
        until it exits (or is killed at the timeout). Not until its stderr closes: a daemon it started
        may hold that open for ever."""
        exchange = _Exchange()
        deadline = time.monotonic() + self.timeout
        told_to_stop = False
        stdin_open = True
        try:
            os.set_blocking(stdin, False)
            os.set_blocking(error_read, False)
            with selectors.DefaultSelector() as selector, _exit_signal(process.pid) as exited:
                selector.register(error_read, selectors.EVENT_READ)
                if exited is not None:
                    selector.register(exited, selectors.EVENT_READ)
                selector.register(stdin, selectors.EVENT_WRITE)
                while process.poll() is None:
                    if stdin_open and not data:  # all written: the command reads to its end
                        selector.unregister(stdin)
                        os.close(stdin)
                        stdin_open = False
                    if not told_to_stop and self._stopping():
                        told_to_stop = True
                        deadline = min(deadline, time.monotonic() + STOP_GRACE)
                    left = deadline - time.monotonic()
                    if left <= 0:
                        _kill(process)
                        if told_to_stop:
                            raise DeliveryFailed(
                                f"--secrets-command was still running {STOP_GRACE:g} s after the run was told to "
                                "stop (killed)"
                            )
                        raise DeliveryFailed(f"--secrets-command did not finish in {self.timeout:g} s (killed)")
                    for key, _ in selector.select(min(left, _STOP_POLL if exited is not None else _POLL)):
                        if key.fd == error_read and not _read_into(error_read, exchange):
                            selector.unregister(error_read)
                        elif key.fd == stdin and stdin_open:
                            data = data[_write(stdin, data) :]
                for _ in range(_STDERR_KEPT // 4096):  # what is there now; never wait for more
                    if not _read_into(error_read, exchange):
                        break
        finally:
            if stdin_open:
                os.close(stdin)
        exchange.unread = len(data)
        return exchange

    def _excerpt(self, exchange: _Exchange) -> str:
        """The end of the command's standard error, every secret and key of the run masked in every
        encoding (on the whole kept end, before it is cut short), on one line, without controls."""
        text = exchange.stderr.decode("utf-8", "replace")
        if exchange.cut:
            text = text[_STDERR_CUT:]
        masked = self._scrub(text, _ISSUED)
        # A form no mask names (hex, a wrapped base64, `\u` for every character) is found once the
        # text is decoded; then nothing of it is shown: a withheld excerpt is the safe failure.
        if any(self._scrub(plain, _ISSUED) != plain or _holds_part(plain) for plain in _decodings(masked)):
            return "(its standard error is withheld: it held a secret of the run in a form that is not masked)"
        return _shown(masked)

    def close(self) -> None:
        return None


# Every cleartext a command was given in this process (every target's): a command's standard error
# is masked for all of them, not only its own.
_ISSUED: list[str] = []


def _known(value: str) -> str:
    _ISSUED.append(value)
    return value


@contextlib.contextmanager
def _exit_signal(pid: int) -> Iterator[int | None]:
    """A descriptor that becomes readable when the process exits (Linux), else None (then polled)."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        yield None
        return
    try:
        yield fd
    finally:
        os.close(fd)


_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})|\\x([0-9a-fA-F]{2})|%([0-9a-fA-F]{2})")
_HEX_RUN = re.compile(r"(?:[0-9a-fA-F]{2}){4,}")


def _decodings(text: str) -> list[str]:
    """`text` as a reader could decode it: without the spaces, line breaks and NULs that wrap or split
    an encoded value, then with escapes (`\\uXXXX`, `\\xXX`, `%XX`) and hex runs decoded."""
    compact = re.sub(r"[\s\x00]+", "", text)
    escaped = _ESCAPE.sub(lambda m: chr(int(m.group(1) or m.group(2) or m.group(3), 16)), compact)
    unhexed = _HEX_RUN.sub(lambda m: bytes.fromhex(m.group(0)).decode("latin-1"), compact)
    return [compact, escaped, unhexed]


def _holds_part(text: str) -> bool:
    """`text` holds `_PART` characters in a row of a cleartext the run issued (a line cut short, `%.20s`)."""
    parts = {value[i : i + _PART] for value in _ISSUED for i in range(len(value) - _PART + 1)}
    return any(text[i : i + _PART] in parts for i in range(len(text) - _PART + 1))


def _read_into(fd: int, exchange: _Exchange) -> bool:
    """One read of what is there; False at the end, or when nothing is there now."""
    try:
        chunk = os.read(fd, 65536)
    except BlockingIOError:
        return False
    if chunk:
        exchange.heard(chunk)
    return bool(chunk)


def _write(fd: int, data: bytes) -> int:
    try:
        return os.write(fd, data)
    except BlockingIOError:
        return 0


def _pending(read_end: int) -> int:
    """Bytes still in a pipe, unread."""
    count: int = struct.unpack("i", fcntl.ioctl(read_end, termios.FIONREAD, bytes(4)))[0]
    return count


def _kill(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _ending(returncode: int) -> str:
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by signal {signal.Signals(-returncode).name}"
        return f"was killed by signal {-returncode}"
    return f"exited with {returncode}"


def _shown(text: str) -> str:
    """The end of a command's standard error, on one line, without control characters."""
    flat = " / ".join(line.strip() for line in text.strip().splitlines() if line.strip())
    flat = flat[-_STDERR_SHOWN:]
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in flat)


class Sinks:
    """Every sink the operator named; a secret is delivered when each of them took it."""

    def __init__(self, sinks: list[Sink]) -> None:
        self._sinks = sinks

    @classmethod
    def open(  # noqa: PLR0913 (each sink and how it runs; keyword-only past the sinks)
        cls,
        out: Path | None,
        command: str | None,
        *,
        project_id: str,
        scrub: Scrub,
        command_environment: Sequence[str] = (),
        stopping: Callable[[], bool] = lambda: False,
    ) -> Sinks | None:
        """The named sinks of one project's secrets (the file opened now, so a bad path is refused
        before any write); None for none."""
        forbid_core_dumps()  # before the first cleartext exists
        sinks: list[Sink] = []
        if command is not None:
            sinks.append(
                SecretsCommand(command, project_id, scrub=scrub, environment=command_environment, stopping=stopping)
            )
        if out is not None:
            sinks.insert(0, SecretsFile(out, project_id))
        return cls(sinks) if sinks else None

    @property
    def options(self) -> list[str]:
        return [option for sink in self._sinks for option in sink.options]

    def deliver(self, issued: Issued) -> None:
        """To every sink, even after one failed: the more of them hold the secret, the better."""
        took, failures = [], []
        for sink in self._sinks:
            try:
                sink.deliver(issued)
            except DeliveryFailed as error:
                failures.append(str(error))
            else:
                took.append(sink.options[0])
        if failures:
            also = f" (delivered to {', '.join(took)} only)" if took else ""
            raise DeliveryFailed("; ".join(failures) + also, took)

    def close(self) -> None:
        for sink in self._sinks:
            sink.close()
