"""Helpers for the key-lifecycle tests (create, prune, rotate): secrets files, exchange, write requests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reconcile.emulator import Emulator, RecordedRequest
from tests.support import ACCESSKEY, EXCHANGE, SEARCH, http, journal_lines

KEYS = ACCESSKEY
READS = (SEARCH, ACCESSKEY)
journal = journal_lines


def exchange(emulator: Emulator, cleartext: str) -> int:
    """The auth API's answer to this secret: 200 when it works, 401 when it does not."""
    headers = {"Authorization": f"Bearer {emulator.config.project_id}:{cleartext}"}
    return http.post(f"{emulator.url}{EXCHANGE}", headers=headers, json={}, timeout=10).status_code


def secret_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def writes(emulator: Emulator) -> list[RecordedRequest]:
    """Every request that could change the project's keys (not a read, an exchange or the audit trail)."""
    return [r for r in emulator.recorded() if r.path.startswith(KEYS) and r.path not in READS]
