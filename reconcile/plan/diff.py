"""Desired state + observed keys → a plan: per key an outcome, field-level changes and the update body.

Pure: no I/O. The update body carries every updatable field with its final value (managed
fields from the desired state, the rest from the current state), so applying it gives the
same result whether the server merges the body into the key or replaces the key with it.
"""

from __future__ import annotations

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

    @property
    def is_error(self) -> bool:
        return self in ERROR_OUTCOMES


ERROR_OUTCOMES = frozenset(
    {Outcome.MISSING, Outcome.NOT_EDITABLE, Outcome.CONFLICT, Outcome.FAILED, Outcome.INTERRUPTED}
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


@dataclass(frozen=True)
class UnmanagedKey:
    id: str
    name: str


@dataclass(frozen=True)
class Plan:
    keys: tuple[KeyPlan, ...]
    unmanaged: tuple[UnmanagedKey, ...]

    @property
    def updates(self) -> tuple[KeyPlan, ...]:
        return tuple(k for k in self.keys if k.outcome is Outcome.UPDATE)

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


def plan_key(desired: DesiredKey, current: Mapping[str, Any] | None) -> KeyPlan:
    if current is None:
        name = str(desired.fields.get("name", ""))
        return KeyPlan(desired, Outcome.MISSING, "not in the project; the update API cannot create keys", name)
    changes = diff_fields(desired, current)
    name = str(desired.fields.get("name", current.get("name") or ""))
    if not changes:
        return KeyPlan(desired, Outcome.UNCHANGED, "in sync", name)  # no body: most keys, at scale
    body = update_body(desired, current)
    if current.get("editable") is False:
        return KeyPlan(desired, Outcome.NOT_EDITABLE, "the server marks this key as not editable", name, changes)
    field_changes = [change for change in changes if change.field != STATUS_FIELD]
    if field_changes and body["roleNames"] and body["keyTenants"]:
        held = "roleNames" if "roleNames" not in desired.fields else "keyTenants"
        reason = f"the result would have both roleNames and keyTenants; the key's current {held} must be set to []"
        return KeyPlan(desired, Outcome.CONFLICT, reason, name, changes)
    status = next((str(change.after) for change in changes if change.field == STATUS_FIELD), None)
    fields = ", ".join(change.field for change in changes)
    return KeyPlan(
        desired, Outcome.UPDATE, f"differs in {fields}", name, changes, body if field_changes else None, status
    )


def compute_plan(desired: DesiredState, observed: Iterable[Mapping[str, Any]]) -> Plan:
    by_id = {str(key.get("id")): key for key in observed}
    managed = {key.id for key in desired.keys}
    unmanaged = tuple(
        UnmanagedKey(key_id, str(key.get("name") or ""))
        for key_id, key in sorted(by_id.items())
        if key_id not in managed
    )
    return Plan(tuple(plan_key(key, by_id.get(key.id)) for key in desired.keys), unmanaged)
