"""How a secret that was not delivered is recovered: the exact `rotate` command, into the same sinks
and the same journal (so the next run sees the key settled)."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

PLACEHOLDER_SINK = ("--secrets-out", "FILE")  # when the run named no sink


@dataclass(frozen=True)
class Recovery:
    options: tuple[str, ...]  # the sink options, then --journal FILE

    @classmethod
    def of(cls, sink_options: Sequence[str], journal: str | None) -> Recovery:
        return cls((*(sink_options or PLACEHOLDER_SINK), *(("--journal", journal) if journal else ())))

    def command(self, key_id: str) -> str:
        return shlex.join(["descope-reconcile", "rotate", "--ids", key_id, *self.options])
