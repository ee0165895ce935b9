"""The project's keys → a desired file (bootstrap): deterministic, updatable fields only.

Server-managed facts (status, expiry, bound user, creator) go in comments: worth reading in a
review, never managed by the file, and escaped (a line break in `createdBy` must not end the
comment and add a key). Values are written as JSON, which is YAML, so quoting is always right,
with every control character as a `\\u` escape; keys come sorted by id, fields in wire order. With
`factor_defaults`, a value most keys share goes once into the file's `defaults`, and only the keys
that differ say their own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
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


def common_values(keys: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """`--factor-defaults`: per field, the value (as written) that more than half of the keys, and at
    least two, share. Never `name`: names tell keys apart, and an empty one cannot be managed."""
    defaults = {}
    for name in UPDATABLE_FIELDS:
        counts = Counter(fields[name] for fields in keys if name in fields)
        if name != "name" and counts:
            text, count = counts.most_common(1)[0]
            if count >= 2 and count * 2 > len(keys):
                defaults[name] = text
    return defaults


def render_export(keys: Iterable[Mapping[str, Any]], *, source: str, factor_defaults: bool = False) -> str:
    exported = sorted(keys, key=lambda key: str(key.get("id")))
    written = [{name: json_value(value) for name, value in current_fields(key).items()} for key in exported]
    defaults = common_values(written) if factor_defaults else {}
    lines = [
        f"# Exported by descope-reconcile from {plain(source)}.",
        "# Every updatable field is pinned; delete a field to stop managing it.",
        "version: 1",
    ]
    if defaults:
        lines[-1:-1] = ["# `defaults`: what most keys share; a key that differs says its own value."]
        lines.append("defaults:")
        lines.extend(f"  {name}: {text}" for name, text in defaults.items())
    lines.append("keys:" if exported else "keys: []")
    for key, fields in zip(exported, written, strict=True):
        lines.append(f"  # {plain(_facts(key))}")
        lines.append(f"  - id: {json_value(key['id'])}")
        for name in UPDATABLE_FIELDS:
            if name == "name" and fields[name] == '""':
                continue  # an empty name is not a valid desired value: leave it unmanaged
            if defaults.get(name) != fields[name]:
                lines.append(f"    {name}: {fields[name]}")
    return "\n".join(lines) + "\n"
