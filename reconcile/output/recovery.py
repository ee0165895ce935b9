"""How a secret that was not delivered is recovered: the exact `rotate` command, for the same target,
into the same sinks and the same journal (so the next run sees the key settled); or, when a sink
took the secret and another did not (a partial delivery), how to pass on the copy that exists,
since a rotation would kill it.

The commands are written to be copied into a job summary: paths are absolute (the job's working
folder is not the reader's), and the secrets command is never repeated (it may hold a token
inline): `CMD` stands for it.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

OUT, COMMAND, COMMAND_ENV = "--secrets-out", "--secrets-command", "--secrets-command-env"
COMMAND_PLACEHOLDER = "CMD"  # this run's --secrets-command, not repeated
PLACEHOLDER_SINK = (OUT, "FILE")  # when neither this run nor the one that lost it named a sink


def sink_options(out: Path | None, command: str | None, environment: Sequence[str] = ()) -> tuple[str, ...]:
    """The options naming a run's sinks as a recovery repeats them (and the journal keeps them)."""
    words = [OUT, str(out.absolute())] if out is not None else []
    if command is not None:
        words += [COMMAND, COMMAND_PLACEHOLDER]
        words += [word for name in environment for word in (COMMAND_ENV, name)]
    return tuple(words)


def _without_inline_command(options: Sequence[str]) -> tuple[str, ...]:
    """`CMD` for the command, also in the sinks of a journal written before the command was kept out."""
    return tuple(
        COMMAND_PLACEHOLDER if index and options[index - 1] == COMMAND else word for index, word in enumerate(options)
    )


@dataclass(frozen=True)
class Recovery:
    sink_options: tuple[str, ...]  # this run's sinks, as options (see sink_options)
    journal: str | None  # absolute
    target: str | None = None  # the config's target this run acted on

    def command(
        self, key_id: str, earlier_sinks: Sequence[str] = (), *, name: str = "", delivered_to: Sequence[str] = ()
    ) -> str:
        """Into this run's sinks, else those of the run that issued the secret (`earlier_sinks`);
        `delivered_to`: the sinks that took it (a partial delivery), whose copy must not be killed."""
        sinks = _without_inline_command(self.sink_options or earlier_sinks)
        if OUT in delivered_to:
            return self._hand_over(key_id, name, sinks)
        if COMMAND in delivered_to:
            return f"# none: the secret reached {COMMAND} (rotate {key_id} only if that copy is lost)"
        words = ["descope-reconcile", "rotate", "--ids", key_id]
        words += ["--target", self.target] if self.target else []
        words += sinks or PLACEHOLDER_SINK
        words += ["--journal", self.journal] if self.journal else []
        return shlex.join(words)

    def _hand_over(self, key_id: str, name: str, sinks: Sequence[str]) -> str:
        """The file took the secret, the command did not: the file's latest line for the key, to the
        command; then a `delivered` line in the journal, so the next run sees the key settled."""
        file = sinks[sinks.index(OUT) + 1] if OUT in sinks else PLACEHOLDER_SINK[1]
        select = "[.[] | select(.id == $id)] | last | .cleartext"
        read = shlex.join(["jq", "-js", "--arg", "id", key_id, select, file])
        environment = shlex.join([f"KEY_ID={key_id}", f"KEY_NAME={name}"])
        command = f"{read} | {environment} sh -c {COMMAND_PLACEHOLDER}"
        if self.journal is None:
            return command
        settled = {"type": "secret", "event": "delivered", "op": "hand-over", "id": key_id, "name": name}
        line = json.dumps(settled, sort_keys=True)
        return f"{command} && printf '%s\\n' {shlex.quote(line)} >> {shlex.quote(self.journal)}"
