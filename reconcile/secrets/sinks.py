"""The secret sinks the operator names: the only places a created or rotated key's cleartext goes.

- `--secrets-out FILE` (`SecretsFile`): JSON Lines, one object per secret (`id`, `name`, `projectId`,
  `cleartext`, `at`, `runId`). Created with mode 0600 (an existing file is made 0600 again), never through a
  symbolic link, never a FIFO or device, appended to and never truncated; each line is fsynced
  before the key counts as done.
- `--secrets-command CMD` (`SecretsCommand`): a shell command string, run with `/bin/sh -c CMD` once
  per secret. The cleartext is its standard input (no newline), and only that: never in its argv
  or environment. The environment is the tool's, without the management key, plus `KEY_ID`,
  `KEY_NAME` and `KEY_PROJECT_ID`. Its standard output is discarded; on failure the end of its standard error is shown,
  with the cleartext masked. It is killed after `SECRETS_COMMAND_TIMEOUT` seconds.

Both may be given: each secret goes to both, and counts as delivered only when both took it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from reconcile.errors import ReconcileError
from reconcile.files import private_fd
from reconcile.secrets.secret import Secret
from reconcile.secrets.vault import reveal

SECRETS_COMMAND_TIMEOUT = 120.0
MASK = "***"
# The command runs with the tool's environment minus the management key: it needs only the secret it is given.
_HIDDEN_ENVIRONMENT = ("DESCOPE_MANAGEMENT_KEY", "DESCOPE_MANAGEMENT_KEY_FILE")
_STDERR_SHOWN = 400  # characters of a failed command's standard error shown


@dataclass(frozen=True)
class Issued:
    """A secret the server issued, to deliver: for which key, by which run, when."""

    key_id: str
    name: str
    secret: Secret = field(repr=False)
    run_id: str
    at: str


class DeliveryFailed(ReconcileError):
    """A sink did not take the secret; the message says which sinks did."""


class Sink(Protocol):
    @property
    def options(self) -> list[str]: ...  # the command-line options that name this sink

    def deliver(self, issued: Issued) -> None: ...

    def close(self) -> None: ...


class SecretsFile:
    def __init__(self, path: Path, project_id: str) -> None:
        self.path = path
        self.project_id = project_id
        self._fd = _open_private_for_append(path)

    @property
    def options(self) -> list[str]:
        return ["--secrets-out", str(self.path)]

    def deliver(self, issued: Issued) -> None:
        record = {
            "id": issued.key_id,
            "name": issued.name,
            "projectId": self.project_id,
            "cleartext": reveal(issued.secret),
            "at": issued.at,
            "runId": issued.run_id,
        }
        data = (json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode()
        start = None
        try:
            start = os.fstat(self._fd).st_size
            if start and os.pread(self._fd, 1, start - 1) != b"\n":  # a line a crash cut short: not glued to it
                data = b"\n" + data
            while data:
                data = data[os.write(self._fd, data) :]
            os.fsync(self._fd)
        except OSError as error:
            # A line cut short (a full disk) would leave part of the cleartext behind and glue the next
            # line to it: the file goes back to the lines it had.
            if start is not None:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, start)
            raise DeliveryFailed(f"--secrets-out {self.path}: {error.strerror or error}") from None

    def close(self) -> None:
        os.close(self._fd)


def _open_private_for_append(path: Path) -> int:
    """Appended to (never truncated), private, never through a link (reconcile.files); a new file's
    folder entry is fsynced too, so the file survives a crash along with its lines."""
    created = not path.exists()
    fd = private_fd(path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)  # read: its last byte
    if created:
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    return fd


class SecretsCommand:
    def __init__(self, command: str, project_id: str, *, timeout: float = SECRETS_COMMAND_TIMEOUT) -> None:
        self.command = command
        self.project_id = project_id
        self.timeout = timeout

    @property
    def options(self) -> list[str]:
        return ["--secrets-command", self.command]

    def deliver(self, issued: Issued) -> None:
        value = reveal(issued.secret)
        environment = {name: v for name, v in os.environ.items() if name not in _HIDDEN_ENVIRONMENT}
        environment.update(KEY_ID=issued.key_id, KEY_NAME=issued.name, KEY_PROJECT_ID=self.project_id)
        try:
            process = subprocess.Popen(
                ["/bin/sh", "-c", self.command],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=environment,
                start_new_session=True,  # its own process group: a timeout kills all of it
            )
        except OSError as error:
            raise DeliveryFailed(f"--secrets-command could not start: {error.strerror or error}") from None
        with process:
            try:
                _, stderr = process.communicate(value.encode(), timeout=self.timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                # Not communicate(): a descendant in another session (a daemon it started) may hold
                # the stderr pipe open for ever; the command itself is dead, the pipes close on exit.
                process.wait()
                raise DeliveryFailed(f"--secrets-command did not finish in {self.timeout:g} s (killed)") from None
        if process.returncode != 0:
            said = _shown(stderr.decode("utf-8", "replace").replace(value, MASK))
            raise DeliveryFailed(f"--secrets-command exited with {process.returncode}" + (f": {said}" if said else ""))

    def close(self) -> None:
        return None


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
    def open(cls, out: Path | None, command: str | None, *, project_id: str) -> Sinks | None:
        """The named sinks of one project's secrets (the file opened now, so a bad path is refused
        before any write); None for none."""
        sinks: list[Sink] = []
        if out is not None:
            sinks.append(SecretsFile(out, project_id))
        if command is not None:
            sinks.append(SecretsCommand(command, project_id))
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
            raise DeliveryFailed("; ".join(failures) + also)

    def close(self) -> None:
        for sink in self._sinks:
            sink.close()
