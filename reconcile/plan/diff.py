"""Desired state + observed keys → a plan: per key an outcome, field-level changes and the request body.

Pure: no I/O. The update body carries every updatable field with its final value (managed
fields from the desired state, the rest from the current state), so applying it gives the
same result whether the server merges the body into the key or replaces the key with it.

A desired key is identified by its id, or without one by its name: one project key with the name
is that key, none means `create`, several mean `ambiguous`. Project keys that no desired key names
are `unmanaged`, unless a prune scope owns them: then they are planned for its action.

Prune fails safe: a key whose name is any desired key's name (a key given by an id that is missing
included: the id may be mistyped) is never pruned; inside a scope, the files own the status of the
keys they declare (a key declared again is activated); a create and a prune that look like one rename
are said to be one (the executor prunes only after every create's secret was delivered).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from reconcile.model import (
    CREATE_ONLY_FIELDS,
    DEFAULT_STATUS,
    STATUS_FIELD,
    UPDATABLE_FIELDS,
    DesiredKey,
    DesiredState,
    PruneScope,
    SourceLocation,
    canonical_value,
    current_fields,
    normalize_field,
    quick_init,
    same_field,
)


class Outcome(StrEnum):
    UNCHANGED = "unchanged"
    UPDATE = "update"  # plan: an update is needed
    UPDATED = "updated"  # apply: the update was accepted
    CREATE = "create"  # plan: no project key has the desired key's name
    CREATED = "created"  # apply: created, and its secret delivered
    ACTIVATE = "activate"  # plan: declared again inside a prune scope, which owns its status
    ACTIVATED = "activated"
    DEACTIVATE = "deactivate"  # plan: pruned, named by no desired key
    DEACTIVATED = "deactivated"
    DELETE = "delete"  # plan: pruned, named by no desired key
    DELETED = "deleted"
    ROTATE = "rotate"  # `rotate`: a new secret for the key
    ROTATED = "rotated"  # ...issued and delivered
    MISSING = "missing"
    NOT_EDITABLE = "not_editable"
    CONFLICT = "conflict"
    AMBIGUOUS = "ambiguous"  # several project keys have the name that identifies a desired key
    FAILED = "failed"
    UNDELIVERED = "undelivered"  # created or rotated, but the secret did not reach every sink
    INTERRUPTED = "interrupted"
    HELD = "held"  # apply: not sent, because something before it failed (prunes wait; issuing stops)
    STALE = "stale"  # apply: the key changed since it was read for the plan, so it was not written
    UNCONFIRMED = "unconfirmed"  # apply: the update was accepted, but the server answered another key

    @property
    def is_error(self) -> bool:
        return self in ERROR_OUTCOMES

    @property
    def is_change(self) -> bool:
        """A planned change (apply sends something for it)."""
        return self in DONE

    @property
    def done(self) -> Outcome:
        """What a planned change becomes once it is made (a key in error stays in its error, even
        when its status change, sent anyway, was made)."""
        return DONE.get(self, self)

    @property
    def issues_secret(self) -> bool:
        return self in ISSUING


DONE = {
    Outcome.UPDATE: Outcome.UPDATED,
    Outcome.CREATE: Outcome.CREATED,
    Outcome.ACTIVATE: Outcome.ACTIVATED,
    Outcome.DEACTIVATE: Outcome.DEACTIVATED,
    Outcome.DELETE: Outcome.DELETED,
    Outcome.ROTATE: Outcome.ROTATED,
}
ERROR_OUTCOMES = frozenset(
    {
        Outcome.MISSING,
        Outcome.NOT_EDITABLE,
        Outcome.CONFLICT,
        Outcome.AMBIGUOUS,
        Outcome.FAILED,
        Outcome.UNDELIVERED,
        Outcome.INTERRUPTED,
        Outcome.STALE,
        Outcome.UNCONFIRMED,
    }
)
PRUNES = frozenset({Outcome.DEACTIVATE, Outcome.DELETE})
ISSUING = frozenset({Outcome.CREATE, Outcome.ROTATE})  # a new secret, for the sinks


@dataclass(frozen=True)
class FieldChange:
    field: str
    before: Any
    after: Any


@quick_init
@dataclass(frozen=True, slots=True)
class KeyPlan:
    key: DesiredKey
    outcome: Outcome
    reason: str
    name: str  # the key's name after the change (or as it is), for people reading the plan
    changes: tuple[FieldChange, ...] = ()
    body: Mapping[str, Any] | None = None  # the update (or create) request, when there is one to send
    status: str | None = None  # the status to set, when it changes
    fingerprint: str | None = None  # the key as read for the plan, when something is to be sent
    warnings: tuple[str, ...] = ()  # worth a look, never a change (a create-only field that differs)
    last_state: Mapping[str, Any] | None = None  # a pruned key as it was read, every field

    @property
    def is_prune(self) -> bool:
        """Planned by a prune scope, not declared by a file."""
        return self.last_state is not None or self.outcome in PRUNES


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
    counted_count: int | None = None  # likewise for `counted`
    held_by: str | None = None  # why the prunes must wait although the plan is sound (a secret not settled)

    @property
    def managed(self) -> int:
        return len(self.keys) if self.managed_count is None else self.managed_count

    @property
    def counted(self) -> int:
        """The safety limit's denominator: the keys the files declare plus the keys this run prunes. A key
        a scope already left in its final state is not in play: counting it would loosen the limit."""
        if self.counted_count is not None:
            return self.counted_count
        return sum(1 for item in self.keys if not item.is_prune or item.outcome.is_change)

    @property
    def issuing(self) -> tuple[KeyPlan, ...]:
        """The keys that get a new secret (applying needs a sink for them)."""
        return tuple(item for item in self.keys if item.outcome.issues_secret)

    @property
    def changes(self) -> tuple[KeyPlan, ...]:
        """Every planned change: updates, creates, deactivations, deletions (rotations)."""
        return tuple(k for k in self.keys if k.outcome.is_change)

    @property
    def writes(self) -> tuple[KeyPlan, ...]:
        """Keys with something to send: the changes, and keys whose field change is impossible but
        whose status change is not (the status endpoints are separate: disabling a key stays possible)."""
        return tuple(k for k in self.keys if k.outcome.is_change or k.status is not None)

    @property
    def issues_secrets(self) -> bool:
        return any(k.outcome.issues_secret for k in self.keys)

    @property
    def errors(self) -> tuple[KeyPlan, ...]:
        return tuple(k for k in self.keys if k.outcome.is_error)

    @property
    def prune_hold(self) -> str | None:
        """Why this plan's prunes must not run at all: keys in error (a missing id may be a typo of a key
        a scope would prune; a key the files mean must never go because the files were wrong)."""
        errors = self.errors
        if not errors:
            return self.held_by
        shown = ", ".join(f"{item.key.label} {item.outcome.value}" for item in errors[:5])
        return f"the plan has {len(errors)} key(s) in error ({shown}{', ...' if len(errors) > 5 else ''})"


def diff_fields(desired: DesiredKey, current: Mapping[str, Any]) -> tuple[FieldChange, ...]:
    """The managed fields whose semantic value differs, in wire order, status last."""
    changes = []
    for name in UPDATABLE_FIELDS:
        if name not in desired.fields:
            continue  # absent means unmanaged
        wanted, present = desired.fields[name], current.get(name)
        if same_field(name, wanted, present):
            continue  # to the letter: no normal form needed (every field of a key in sync)
        if normalize_field(name, wanted) != normalize_field(name, present):
            changes.append(FieldChange(name, canonical_value(name, present), canonical_value(name, wanted)))
    if STATUS_FIELD in desired.fields:
        present_status = current.get(STATUS_FIELD) or DEFAULT_STATUS
        if desired.fields[STATUS_FIELD] != present_status:
            changes.append(FieldChange(STATUS_FIELD, present_status, desired.fields[STATUS_FIELD]))
    return tuple(changes)


def update_body(
    desired: DesiredKey, current: Mapping[str, Any], fields: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """`fields`: `current_fields(current)`, when the caller has it already."""
    final = dict(current_fields(current) if fields is None else fields)
    final.update({name: canonical_value(name, v) for name, v in desired.fields.items() if name in UPDATABLE_FIELDS})
    return {"id": desired.id, **final}


def digest(value: Any) -> str:
    """sha256 of the canonical JSON of `value`: the same value, the same digest, on any machine."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def fingerprint(key: Mapping[str, Any], fields: Mapping[str, Any] | None = None) -> str:
    """What a planned change depends on: the key's updatable fields, status and editability
    (`fields`: `current_fields(key)`, when the caller has it already)."""
    state = dict(current_fields(key) if fields is None else fields)
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


def create_only_warnings(desired: DesiredKey, current: Mapping[str, Any]) -> tuple[str, ...]:
    """A create-only field the file gives differently from the key: shown, neither sent nor a change."""
    warnings = []
    for name in CREATE_ONLY_FIELDS:
        if name not in desired.fields:
            continue
        wanted, present = desired.fields[name], current.get(name) or (0 if name == "expireTime" else "")
        if wanted != present:
            warnings.append(
                f"{name} is set only at creation: the key has {json.dumps(present)}, "
                f"the file says {json.dumps(wanted)} (not sent; recreate the key to change it)"
            )
    return tuple(warnings)


MISSING_REASON = "not in the project; ids are chosen by the server: remove the id to create the key by its name"


def plan_key(
    desired: DesiredKey, current: Mapping[str, Any] | None, holders: Sequence[str] = (), owner: PruneScope | None = None
) -> KeyPlan:
    """`holders`: the project keys that have the desired key's name (a missing id may be a typo of theirs);
    `owner`: the prune scope that owns the status of this declared key."""
    if current is None:
        reason = MISSING_REASON
        if holders:
            reason += (
                f"; the project has a key with its name ({', '.join(holders)}), maybe the id meant:"
                " it is never pruned while a file names it"
            )
        return KeyPlan(desired, Outcome.MISSING, reason, str(desired.fields.get("name", "")))
    if owner is not None and STATUS_FIELD not in desired.fields:
        desired = replace(desired, fields={**desired.fields, STATUS_FIELD: DEFAULT_STATUS})
    planned = _plan_existing(desired, current)
    only_activated = planned.outcome is Outcome.UPDATE and planned.body is None and planned.status == DEFAULT_STATUS
    if owner is not None and only_activated:  # shown as what it is
        why = f"declared inside the prune scope at {owner.source}, which owns its status: it will be activated"
        planned = replace(planned, outcome=Outcome.ACTIVATE, reason=why)
    warnings = create_only_warnings(desired, current)
    return replace(planned, warnings=warnings) if warnings else planned


def _plan_existing(desired: DesiredKey, current: Mapping[str, Any]) -> KeyPlan:
    changes = diff_fields(desired, current)
    name = str(desired.fields.get("name", current.get("name") or ""))
    if not changes:
        return KeyPlan(desired, Outcome.UNCHANGED, "in sync", name)  # no body: most keys, at scale
    status = next((str(change.after) for change in changes if change.field == STATUS_FIELD), None)
    fields = current_fields(current)  # once: the body and the fingerprint both start from it
    body = update_body(desired, current, fields) if any(change.field != STATUS_FIELD for change in changes) else None
    # `editable: false` is about the update endpoint; activation and deactivation are separate
    # endpoints, so a status change is always tried and the server's answer reported.
    blocked = _blocked(desired, current, body) if body is not None else None
    if blocked is not None:
        outcome, reason = blocked
        if status is not None:
            reason += f"; the status change to {status} is still sent"
        return KeyPlan(
            desired, outcome, reason, name, changes, None, status, fingerprint(current, fields) if status else None
        )
    differs = ", ".join(change.field for change in changes)
    return KeyPlan(
        desired, Outcome.UPDATE, f"differs in {differs}", name, changes, body, status, fingerprint(current, fields)
    )


def unmanaged_keys(observed: Mapping[str, Mapping[str, Any]], managed: set[str]) -> tuple[UnmanagedKey, ...]:
    """The project's keys that no desired file mentions and no prune scope owns (by id, sorted)."""
    unmanaged = sorted(observed.keys() - managed)  # sorting only those (the difference made in C)
    return tuple(UnmanagedKey(key_id, str(observed[key_id].get("name") or "")) for key_id in unmanaged)


def create_body(desired: DesiredKey) -> dict[str, Any]:
    """The create request: the name, each updatable field the file gives, and the create-only fields."""
    body = {name: canonical_value(name, desired.fields[name]) for name in UPDATABLE_FIELDS if name in desired.fields}
    body.update({wire: desired.fields[name] for name, wire in CREATE_ONLY_FIELDS.items() if name in desired.fields})
    return body


def plan_create(desired: DesiredKey) -> KeyPlan:
    """No project key has the name: create it, showing every field it will set."""
    body = create_body(desired)
    shown = {
        name: canonical_value(name, value) if name in UPDATABLE_FIELDS else value
        for name, value in desired.fields.items()
    }
    changes = tuple(FieldChange(name, None, value) for name, value in shown.items())
    status = desired.fields.get(STATUS_FIELD)
    name = str(desired.fields["name"])
    reason = "no key in the project has this name: it will be created (its secret goes to the sinks)"
    return KeyPlan(desired, Outcome.CREATE, reason, name, changes, body, status if status != DEFAULT_STATUS else None)


def plan_by_name(
    desired: DesiredKey,
    matches: Sequence[Mapping[str, Any]],
    by_id: Mapping[str, DesiredKey],
    scopes: Sequence[PruneScope],
) -> KeyPlan:
    """A desired key without an id: the one project key with its name, a create, or ambiguous."""
    name = str(desired.fields["name"])
    if not matches:
        return plan_create(desired)
    ids = sorted(str(key.get("id")) for key in matches)
    if len(matches) > 1:
        reason = (
            f"{len(ids)} keys in the project are named {name!r}: {', '.join(ids)}; "
            "give the key's id in the file (or rename or remove the others); nothing is created"
        )
        return KeyPlan(desired, Outcome.AMBIGUOUS, reason, name)
    owner = by_id.get(ids[0])
    if owner is not None:
        reason = f"the key named {name!r} is {ids[0]}, which {owner.source} already manages by id"
        return KeyPlan(replace(desired, id=ids[0]), Outcome.CONFLICT, reason, name)
    return plan_key(replace(desired, id=ids[0]), matches[0], owner=_owner(matches[0], scopes))


def _owner(key: Mapping[str, Any] | None, scopes: Sequence[PruneScope]) -> PruneScope | None:
    if key is None or not scopes:  # most runs have no prune scope: no generator per key
        return None
    return next((scope for scope in scopes if scope.contains(key)), None)


def plan_prune(key: Mapping[str, Any], scopes: Sequence[PruneScope]) -> KeyPlan:
    """A project key no desired key names, inside these scopes: deleted only when every one says delete.
    A key the server marks not editable cannot be deleted: it is deactivated instead, with a warning
    (never an error: it would block every reviewed plan of the project from then on)."""
    delete = all(scope.action == "delete" for scope in scopes)
    first = scopes[0]
    desired = DesiredKey(str(key.get("id")), {}, first.source)
    name = str(key.get("name") or "")
    why = f"named by no desired key; inside the prune scope at {first.source} ({first.describe()})"
    warnings: tuple[str, ...] = ()
    if delete and key.get("editable") is False:
        delete = False
        warnings = (
            f"{key.get('id')} ({name}) is not editable, so it cannot be deleted: it is deactivated instead; "
            "to leave it alone, declare it in a file or narrow the scope (namePrefix, tenantIds, customAttributes)",
        )
    current_status = key.get(STATUS_FIELD) or DEFAULT_STATUS
    if not delete and current_status != DEFAULT_STATUS:
        return KeyPlan(desired, Outcome.UNCHANGED, f"{why}; already inactive", name, warnings=warnings, last_state=key)
    if delete:
        reason = f"{why}: it will be DELETED"
        return KeyPlan(desired, Outcome.DELETE, reason, name, fingerprint=fingerprint(key), last_state=key)
    change = FieldChange(STATUS_FIELD, current_status, "inactive")
    return KeyPlan(
        desired,
        Outcome.DEACTIVATE,
        why,
        name,
        (change,),
        status="inactive",
        fingerprint=fingerprint(key),
        warnings=warnings,
        last_state=key,
    )


# The fields two keys compare on when deciding whether a create and a prune are one rename.
_RENAME_FIELDS = tuple(name for name in UPDATABLE_FIELDS if name != "name")


def _likeness(desired: DesiredKey, key: Mapping[str, Any]) -> int:
    wanted = desired.fields
    return sum(
        1
        for name in _RENAME_FIELDS
        if name in wanted and normalize_field(name, wanted[name]) == normalize_field(name, key.get(name))
    )


def pair_renames(keys: Sequence[KeyPlan], scopes: Sequence[PruneScope]) -> list[KeyPlan]:
    """A create and a prune that look like one rename (the new key inside a scope that prunes the old
    one; the most fields alike) are said to be one, on both sides: the old key goes only once the new
    key's secret reached every sink (the executor prunes last, and only after everything succeeded)."""
    result = list(keys)
    pruned = [index for index, item in enumerate(keys) if item.outcome in PRUNES]
    for index, item in enumerate(keys):
        if item.outcome is not Outcome.CREATE or not pruned:
            continue
        inside = [scope for scope in scopes if scope.contains(item.key.fields)]
        candidates = [i for i in pruned if inside and any(scope.contains(keys[i].last_state or {}) for scope in inside)]
        if not candidates:
            continue
        old = max(candidates, key=lambda i: _likeness(item.key, keys[i].last_state or {}))
        pruned.remove(old)
        gone = keys[old]
        result[index] = replace(item, reason=f"{item.reason}; probably the rename of {gone.key.id} ({gone.name!r})")
        result[old] = replace(
            gone,
            reason=f"{gone.reason}; probably renamed to {item.name!r} (created by this run): it is pruned only "
            "after the new key's secret reached every sink",
        )
    return result


def _by_name(by_id: Mapping[str, Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    by_name: dict[str, list[Mapping[str, Any]]] = {}
    for found in by_id.values():
        by_name.setdefault(str(found.get("name") or ""), []).append(found)
    return by_name


def compute_plan(desired: DesiredState, observed: Iterable[Mapping[str, Any]]) -> Plan:
    by_id = {str(key.get("id")): key for key in observed}
    desired_by_id = {key.id: key for key in desired.keys if key.id is not None}
    by_name: dict[str, list[Mapping[str, Any]]] | None = None  # made when a key is looked up by its name
    keys, named, scopes = [], set(desired_by_id), desired.prune
    for key in desired.keys:
        current = None if key.id is None else by_id.get(key.id)
        if current is not None:  # (most keys: one look-up, no name index)
            keys.append(plan_key(key, current, (), _owner(current, scopes)))
            continue
        by_name = _by_name(by_id) if by_name is None else by_name
        matches = by_name.get(str(key.fields.get("name", "")), [])
        if key.id is not None:
            keys.append(plan_key(key, None, sorted(str(match.get("id")) for match in matches)))
            continue
        named.update(str(match.get("id")) for match in matches)  # never pruned, even when ambiguous
        keys.append(plan_by_name(key, matches, desired_by_id, scopes))
    named.update(key.id for key in desired.elsewhere if key.id is not None)
    if scopes:  # no scope: nothing to prune
        keys += _prunes(desired, by_id, named)
    return Plan(tuple(pair_renames(keys, scopes)), unmanaged_keys(by_id, named))


def _prunes(desired: DesiredState, by_id: Mapping[str, Mapping[str, Any]], named: set[str]) -> list[KeyPlan]:
    """The project keys the scopes own that no desired key names (`named` grows by them)."""
    # Never pruned: a key with a name any desired key gives (an id that is missing may be a typo).
    declared_names = {str(key.fields["name"]) for key in desired.keys if key.fields.get("name")}
    # Nor a key the files beside the given ones declare: a scope owns only what the run was given.
    declared_names.update(str(key.fields["name"]) for key in desired.elsewhere if key.fields.get("name"))
    pruned = []
    for key_id, found in sorted(by_id.items()):
        if key_id in named or str(found.get("name") or "") in declared_names:
            continue
        scopes = [scope for scope in desired.prune if scope.contains(found)]
        if scopes:
            pruned.append(plan_prune(found, scopes))
            named.add(key_id)
    return pruned


def hold_lost_creates(plan: Plan, lost: Mapping[str, str], allowed: Collection[str] = ()) -> Plan:
    """A name whose create an earlier run sent and never heard back from is not created again (the
    server may still make that key: two keys, one name, one secret lost) until a run finds the key it
    made, or the operator says, for this name only, that it was never made (`--allow-recreate NAME`)."""
    held = {name for name in lost if name not in allowed}
    if not any(item.outcome is Outcome.CREATE and item.name in held for item in plan.keys):
        return plan
    keys = tuple(
        replace(
            item,
            outcome=Outcome.CONFLICT,
            reason=(
                f"a create of {item.name!r} was sent and its answer lost ({lost[item.name]}): the server may still "
                "make that key, so the name is not created again until a run finds it; if you know it was never "
                f"made, rerun with --allow-recreate {item.name!r}"
            ),
            changes=(),
            body=None,
            status=None,
        )
        if item.outcome is Outcome.CREATE and item.name in held
        else item
        for item in plan.keys
    )
    return replace(plan, keys=keys)


ROTATION_SOURCE = SourceLocation("(command line)", 1)


def _rotation_warnings(key: Mapping[str, Any], desired: DesiredState | None) -> tuple[str, ...]:
    """What an operator should know before rotating: an inactive key; a key no desired file manages."""
    warnings = []
    if (key.get(STATUS_FIELD) or DEFAULT_STATUS) != DEFAULT_STATUS:
        warnings.append("the key is inactive: its new secret works only once the key is activated")
    if desired is not None:
        ids = {item.id for item in desired.keys}
        names = {item.fields.get("name") for item in desired.keys if item.id is None}
        if key.get("id") not in ids and key.get("name") not in names:
            scope = _owner(key, desired.prune)
            fate = f"; the prune scope at {scope.source} owns it: the next apply prunes it" if scope else ""
            warnings.append(f"no desired file manages this key{fate}")
    return tuple(warnings)


def plan_rotation(
    key_ids: Sequence[str], found: Mapping[str, Mapping[str, Any] | None], declared: DesiredState | None = None
) -> Plan:
    """`rotate --ids`: a new secret for each key the project has (and may change). With `declared`
    (rotate's PATHs), each key no file manages is said to be so."""
    keys = []
    for key_id in key_ids:
        key = found.get(key_id)
        desired = DesiredKey(key_id, {}, ROTATION_SOURCE)
        if key is None:
            keys.append(KeyPlan(desired, Outcome.MISSING, "not in the project", ""))
            continue
        name = str(key.get("name") or "")
        if key.get("editable") is False:
            keys.append(KeyPlan(desired, Outcome.NOT_EDITABLE, "the server marks this key as not editable", name))
        else:
            reason = "a new secret, to the sinks; the old one stops working at once"
            warnings = _rotation_warnings(key, declared)
            keys.append(KeyPlan(desired, Outcome.ROTATE, reason, name, fingerprint=fingerprint(key), warnings=warnings))
    return Plan(tuple(keys), ())
