"""The project's keys → a desired file (bootstrap): deterministic, updatable fields only.

Server-managed facts (status, expiry, bound user, creator) go in comments: worth reading in a
review, never managed by the file, and escaped (a line break in `createdBy` must not end the
comment and add a key). Values are written as JSON, which is YAML, so quoting is always right,
with every control character as a `\\u` escape; keys come sorted by id, fields in wire order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from reconcile.model import UPDATABLE_FIELDS, current_fields
from reconcile.output.escape import json_value, plain


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
        f"# Exported by descope-reconcile from {plain(source)}.",
        "# Every updatable field is pinned; delete a field to stop managing it.",
        "version: 1",
        "keys:",
    ]
    exported = sorted(keys, key=lambda key: str(key.get("id")))
    if not exported:
        lines[-1] = "keys: []"
    for key in exported:
        fields = current_fields(key)
        lines.append(f"  # {plain(_facts(key))}")
        lines.append(f"  - id: {json_value(key['id'])}")
        for name in UPDATABLE_FIELDS:
            if name == "name" and not fields[name]:
                continue  # an empty name is not a valid desired value: leave it unmanaged
            lines.append(f"    {name}: {json_value(fields[name])}")
    return "\n".join(lines) + "\n"
