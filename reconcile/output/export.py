"""The project's keys → a desired file (bootstrap): deterministic, updatable fields only.

Server-managed facts (status, expiry, bound user, creator) go in comments: worth reading in a
review, never managed by the file. Values are written as JSON, which is YAML, so quoting is
always right; keys come sorted by id, fields in wire order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from reconcile.model import UPDATABLE_FIELDS, current_fields


def _when(seconds: Any) -> str:
    if not isinstance(seconds, int | float) or seconds <= 0:
        return "never"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d")


def _facts(key: Mapping[str, Any]) -> str:
    facts = [
        f"status: {key.get('status') or 'active'}",
        f"expires: {_when(key.get('expireTime'))}",
        f"bound user: {key.get('boundUserId') or 'none'}",
        f"created {_when(key.get('createdTime'))} by {key.get('createdBy') or 'unknown'}",
    ]
    if key.get("editable") is False:
        facts.append("not editable")
    return "; ".join(facts)


def render_export(keys: Iterable[Mapping[str, Any]], *, source: str) -> str:
    lines = [
        f"# Exported by descope-reconcile from {source}.",
        "# Every updatable field is pinned; delete a field to stop managing it.",
        "version: 1",
        "keys:",
    ]
    exported = sorted(keys, key=lambda key: str(key.get("id")))
    if not exported:
        lines[-1] = "keys: []"
    for key in exported:
        fields = current_fields(key)
        lines.append(f"  # {_facts(key)}")
        lines.append(f"  - id: {json.dumps(key['id'], ensure_ascii=False)}")
        for name in UPDATABLE_FIELDS:
            if name == "name" and not fields[name]:
                continue  # an empty name is not a valid desired value: leave it unmanaged
            lines.append(f"    {name}: {json.dumps(fields[name], ensure_ascii=False)}")
    return "\n".join(lines) + "\n"
