"""The journal of an apply: one JSON line per finished key, flushed before the key counts as done,
so a run killed mid-way still says what it changed."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reconcile.apply.executor import KeyResult


class Journal:
    """JSON Lines, one line per finished key, flushed before the key counts as done."""

    def __init__(self, path: Path, run_id: str) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._file: IO[str] = os.fdopen(fd, "a", encoding="utf-8")
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
