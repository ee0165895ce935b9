"""Desired state + observed keys → a plan: per key an outcome, field-level changes and the update body.

Pure: no I/O. The update body carries every updatable field with its final value (managed
fields from the desired state, the rest from the current state), so applying it gives the
same result whether the server merges the body into the key or replaces the key with it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from reconcile.model import (
    DEFAULT_STATUS,
    STATUS_FIELD,
    UPDATABLE_FIELDS,
    DesiredKey,
    DesiredState,
    canonical_value,
    current_fields,
    normalize_field,
)


class Outcome(StrEnum):
    UNCHANGED = "unchanged"
    UPDATE = "update"  # plan: an update is needed
    UPDATED = "updated"  # apply: the update was accepted
    MISSING = "missing"
    NOT_EDITABLE = "not_editable"
    CONFLICT = "conflict"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    STALE = "stale"  # apply: the key changed since it was read for the plan, so it was not written
    UNCONFIRMED = "unconfirmed"  # apply: the update was accepted, but the server answered another key

    @property
    def is_error(self) -> bool:
        return self in ERROR_OUTCOMES


ERROR_OUTCOMES = frozenset(
    {
        Outcome.MISSING,
        Outcome.NOT_EDITABLE,
        Outcome.CONFLICT,
        Outcome.FAILED,
        Outcome.INTERRUPTED,
        Outcome.STALE,
        Outcome.UNCONFIRMED,
    }
)


@dataclass(frozen=True)
class FieldChange:
    field: str
    before: Any
    after: Any


@dataclass(frozen=True)
class KeyPlan:
    key: DesiredKey
    outcome: Outcome
    reason: str
    name: str  # the key's name after the change (or as it is), for people reading the plan
    changes: tuple[FieldChange, ...] = ()
    body: Mapping[str, Any] | None = None  # the update request, when an updatable field changes
    status: str | None = None  # the status to set, when it changes
    fingerprint: str | None = None  # the key as read for the plan, when something is to be sent


@dataclass(frozen=True)
class UnmanagedKey:
    id: str
    name: str


@dataclass(frozen=True)
class Plan:
    keys: tuple[KeyPlan, ...]
    unmanaged: tuple[UnmanagedKey, ...]
    # A saved plan keeps only its changes; the safety threshold and the report still need how many
    # keys the plan was made over. None: `keys` holds every managed key.
    managed_count: int | None = None

    @property
    def managed(self) -> int:
        return len(self.keys) if self.managed_count is None else self.managed_count

    @property
    def updates(self) -> tuple[KeyPlan, ...]:
        return tuple(k for k in self.keys if k.outcome is Outcome.UPDATE)

    @property
    def writes(self) -> tuple[KeyPlan, ...]:
        """Keys with something to send: the updates, and keys whose field change is impossible but
        whose status change is not (the status endpoints are separate: disabling a key stays possible)."""
        return tuple(k for k in self.keys if k.outcome is Outcome.UPDATE or k.status is not None)

    @property
    def errors(self) -> tuple[KeyPlan, ...]:
        return tuple(k for k in self.keys if k.outcome.is_error)


def diff_fields(desired: DesiredKey, current: Mapping[str, Any]) -> tuple[FieldChange, ...]:
    """The managed fields whose semantic value differs, in wire order, status last."""
    changes = []
    for name in UPDATABLE_FIELDS:
        if name not in desired.fields:
            continue  # absent means unmanaged
        wanted, present = desired.fields[name], current.get(name)
        if normalize_field(name, wanted) != normalize_field(name, present):
            changes.append(FieldChange(name, canonical_value(name, present), canonical_value(name, wanted)))
    if STATUS_FIELD in desired.fields:
        present_status = current.get(STATUS_FIELD) or DEFAULT_STATUS
        if desired.fields[STATUS_FIELD] != present_status:
            changes.append(FieldChange(STATUS_FIELD, present_status, desired.fields[STATUS_FIELD]))
    return tuple(changes)


def update_body(desired: DesiredKey, current: Mapping[str, Any]) -> dict[str, Any]:
    final = current_fields(current)
    final.update({name: canonical_value(name, v) for name, v in desired.fields.items() if name in UPDATABLE_FIELDS})
    return {"id": desired.id, **final}


def digest(value: Any) -> str:
    """sha256 of the canonical JSON of `value`: the same value, the same digest, on any machine."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def fingerprint(key: Mapping[str, Any]) -> str:
    """What a planned change depends on: the key's updatable fields, status and editability."""
    state = current_fields(key)
    state[STATUS_FIELD] = key.get(STATUS_FIELD) or DEFAULT_STATUS
    state["editable"] = key.get("editable", True)
    return digest(state)


def _blocked(desired: DesiredKey, current: Mapping[str, Any], body: Mapping[str, Any]) -> tuple[Outcome, str] | None:
    """Why the update body cannot be sent, if it cannot."""
    if current.get("editable") is False:
        return Outcome.NOT_EDITABLE, "the server marks this key as not editable"
    if body["roleNames"] and body["keyTenants"]:
        held = "roleNames" if "roleNames" not in desired.fields else "keyTenants"
        return Outcome.CONFLICT, (
            f"the result would have both roleNames and keyTenants; the key's current {held} must be set to []"
        )
    return None


def plan_key(desired: DesiredKey, current: Mapping[str, Any] | None) -> KeyPlan:
    if current is None:
        name = str(desired.fields.get("name", ""))
        return KeyPlan(desired, Outcome.MISSING, "not in the project; the update API cannot create keys", name)
    changes = diff_fields(desired, current)
    name = str(desired.fields.get("name", current.get("name") or ""))
    if not changes:
        return KeyPlan(desired, Outcome.UNCHANGED, "in sync", name)  # no body: most keys, at scale
    status = next((str(change.after) for change in changes if change.field == STATUS_FIELD), None)
    body = update_body(desired, current) if any(change.field != STATUS_FIELD for change in changes) else None
    # `editable: false` is about the update endpoint; activation and deactivation are separate
    # endpoints, so a status change is always tried and the server's answer reported.
    blocked = _blocked(desired, current, body) if body is not None else None
    if blocked is not None:
        outcome, reason = blocked
        if status is not None:
            reason += f"; the status change to {status} is still sent"
        return KeyPlan(desired, outcome, reason, name, changes, None, status, fingerprint(current) if status else None)
    fields = ", ".join(change.field for change in changes)
    return KeyPlan(desired, Outcome.UPDATE, f"differs in {fields}", name, changes, body, status, fingerprint(current))


def unmanaged_keys(observed: Mapping[str, Mapping[str, Any]], managed: set[str]) -> tuple[UnmanagedKey, ...]:
    """The project's keys that no desired file mentions (by id, sorted)."""
    return tuple(
        UnmanagedKey(key_id, str(key.get("name") or ""))
        for key_id, key in sorted(observed.items())
        if key_id not in managed
    )


def compute_plan(desired: DesiredState, observed: Iterable[Mapping[str, Any]]) -> Plan:
    by_id = {str(key.get("id")): key for key in observed}
    unmanaged = unmanaged_keys(by_id, {key.id for key in desired.keys})
    return Plan(tuple(plan_key(key, by_id.get(key.id)) for key in desired.keys), unmanaged)
