"""The journal of an apply: one JSON line per finished key, flushed before the key counts as done,
so a run killed mid-way still says what it changed."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from reconcile.files import open_private_append

if TYPE_CHECKING:
    from reconcile.apply.executor import KeyResult


class Journal:
    """JSON Lines, one line per finished key, flushed before the key counts as done."""

    def __init__(self, path: Path, run_id: str) -> None:
        self.path = path
        self._file: IO[str] = open_private_append(path)  # never through a link, 0600 even if it existed
        self._write({"type": "start", "runId": run_id, "at": now_iso()})

    def _write(self, record: Mapping[str, Any]) -> None:
        self._file.write(json.dumps(record, sort_keys=True) + "\n")
        self._file.flush()

    def record(self, result: KeyResult) -> None:
        self._write(
            {
                "type": "key",
                "id": result.plan.key.id,
                "outcome": result.outcome.value,
                "attempts": result.attempts,
                "error": result.error.as_json() if result.error else None,
                "at": now_iso(),
            }
        )

    def close(self) -> None:
        self._file.close()


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
