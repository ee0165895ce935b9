"""When each key's secret was last issued, and which keys are due for rotation (`rotate --due`). Pure.

A secret is as old as the key (`createdTime`), unless a rotation is proven later: a journal line of
a rotation that issued a new secret. (The audit trail records a rotation as `AccessKeyModified`, like
any update: it proves no rotation, so it is not used.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reconcile.policy.rules import DAY

ISSUED = ("issued", "delivered")  # journal events after which the key has its new secret


def last_rotations(records: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Key id → when its latest rotation issued a secret (Unix seconds), from journal records."""
    found: dict[str, float] = {}
    for record in records:
        if record.get("type") != "secret" or record.get("op") != "rotate" or record.get("event") not in ISSUED:
            continue
        try:
            at = datetime.fromisoformat(str(record.get("at"))).timestamp()
        except ValueError:
            continue
        key_id = str(record.get("id"))
        found[key_id] = max(at, found.get(key_id, at))
    return found


def secret_since(key: Mapping[str, Any], rotated: Mapping[str, float]) -> float | None:
    """Since when the key's secret exists: its creation or its latest proven rotation."""
    created = key.get("createdTime")
    times = [float(created)] if isinstance(created, int | float) and not isinstance(created, bool) and created else []
    times += [rotated[key_id]] if (key_id := str(key.get("id"))) in rotated else []
    return max(times) if times else None


@dataclass(frozen=True)
class Due:
    id: str
    name: str
    since: float  # Unix seconds
    age_days: int


def due_keys(
    observed: Iterable[Mapping[str, Any]], max_days: int, now: datetime, rotated: Mapping[str, float]
) -> list[Due]:
    """The active keys whose secret is older than `max_days`, oldest first (expired keys need none)."""
    found = []
    for key in observed:
        since = secret_since(key, rotated)
        expires = key.get("expireTime")
        if key.get("status", "active") != "active" or since is None:
            continue
        if isinstance(expires, int | float) and 0 < expires <= now.timestamp():
            continue
        if now.timestamp() - since > max_days * DAY:
            age = int((now.timestamp() - since) // DAY)
            found.append(Due(str(key.get("id")), str(key.get("name") or ""), since, age))
    return sorted(found, key=lambda item: (item.since, item.id))
