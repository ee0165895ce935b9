"""How a secret that was not delivered is recovered: the exact `rotate` command, for the same target,
into the same sinks and the same journal (so the next run sees the key settled)."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

PLACEHOLDER_SINK = ("--secrets-out", "FILE")  # when neither this run nor the one that lost it named a sink


@dataclass(frozen=True)
class Recovery:
    sink_options: tuple[str, ...]  # this run's sinks, as options
    journal: str | None
    target: str | None = None  # the config's target this run acted on

    def command(self, key_id: str, earlier_sinks: Sequence[str] = ()) -> str:
        """Into this run's sinks, else those of the run that issued the secret (`earlier_sinks`)."""
        words = ["descope-reconcile", "rotate", "--ids", key_id]
        words += ["--target", self.target] if self.target else []
        words += self.sink_options or tuple(earlier_sinks) or PLACEHOLDER_SINK
        words += ["--journal", self.journal] if self.journal else []
        return shlex.join(words)
