"""Before and after each write: is the key still as it was read for the plan, and is the server's answer
the key the plan intended? Pure comparisons; the executor does the reading.

Every update body pins every field, so a writer who changed the key between our read and our write
would be silently reverted: the check before the write keeps that window to one round trip, and the
check of the answer says so when something still moved.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconcile.model import DEFAULT_STATUS, STATUS_FIELD, UPDATABLE_FIELDS, normalize_field
from reconcile.plan.diff import KeyPlan, fingerprint


def still_as_planned(item: KeyPlan, key: Mapping[str, Any], *, status_done: bool) -> bool:
    """Whether `key` (just read) is as it was when the plan was made; after our own status change,
    with the status we set."""
    seen = dict(key)
    if status_done:
        if (key.get(STATUS_FIELD) or DEFAULT_STATUS) != item.status:
            return False
        seen[STATUS_FIELD] = next(change.before for change in item.changes if change.field == STATUS_FIELD)
    return fingerprint(seen) == item.fingerprint


def _same(name: str, sent: Any, answered: Any) -> bool:
    try:
        return bool(normalize_field(name, sent) == normalize_field(name, answered))
    except (TypeError, KeyError, AttributeError):  # an answer of a shape no key has
        return False


def unconfirmed(item: KeyPlan, answer: Mapping[str, Any], *, status_done: bool) -> str | None:
    """Why the server's answer to an update is not the intended key, or None when it is."""
    if not answer:
        return "the update was accepted, but the answer holds no key to confirm it"
    body = item.body or {}
    differing = [name for name in UPDATABLE_FIELDS if not _same(name, body.get(name), answer.get(name))]
    if status_done and (answer.get(STATUS_FIELD) or DEFAULT_STATUS) != item.status:
        differing.append(STATUS_FIELD)
    if not differing:
        return None
    return (
        f"the update was accepted, but the server answered a key that differs in {', '.join(differing)} "
        "(another writer, or the server changed the values): check the key, then plan again"
    )
