"""What many tests build or read: fleets of keys, the API's endpoint paths, journal lines."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

ACCESSKEY = "/v1/mgmt/accesskey"
SEARCH = f"{ACCESSKEY}/search"
UPDATE = f"{ACCESSKEY}/update"
CREATE = f"{ACCESSKEY}/create"
ROTATE = f"{ACCESSKEY}/rotate"
DEACTIVATE = f"{ACCESSKEY}/deactivate"
DELETE_BATCH = f"{ACCESSKEY}/delete/batch"
EXCHANGE = "/v1/auth/accesskey/exchange"
AUDIT_SEARCH = "/v1/mgmt/audit/search"
AUDIT_EVENT = "/v1/mgmt/audit/event"


def fleet(count: int, *, width: int = 3, **fields: Any) -> list[dict[str, Any]]:
    """`count` keys K000, K001, ... (ids `width` digits long) named key-0, key-1, ..., each with `fields`."""
    return [{"id": f"K{i:0{width}d}", "name": f"key-{i}", **copy.deepcopy(fields)} for i in range(count)]


def journal_lines(path: Path) -> list[dict[str, Any]]:
    """The records of a journal (or any JSON Lines file), blank lines skipped."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
