"""Reviewed plans, applied exactly: save a plan, then apply it and nothing else.

A saved plan holds every change it will make (update bodies, status changes, creates with their
request bodies, prune deactivations and deletions), a fingerprint of each planned key's state when
the plan was made, the ids of every managed key (the safety threshold is decided over them, exactly
as `apply` would), the keys in error, a checksum of the desired files' contents, and a checksum of
itself. `apply --plan` refuses when the file was edited, is too old, targets another project, holds
keys in error, when a planned key changed since (a key planned for deletion included), or when a
name planned for creation was taken meanwhile (Terraform's stale-plan rule).

The self-checksum catches edits and corruption, not forgery: anyone who can write the file can
recompute it. Keep saved plans where only CI can write them (workflow artifacts).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from datetime import date, datetime, timedelta
from typing import Any

from reconcile import __version__
from reconcile.errors import ReconcileError
from reconcile.model import DesiredFile, DesiredKey, SourceLocation, Waiver
from reconcile.plan.diff import FieldChange, KeyPlan, Outcome, Plan, digest, fingerprint, unmanaged_keys

# 2: the managed key ids; 3: each change's action (update, create, deactivate, delete); 4: the safety
# limit's denominator (`counted`: declared keys plus the keys the run prunes)
PLAN_FORMAT = 4
# Key ids named in a refusal; the rest are counted.
SHOWN_IDS = 20
# A plan made "in the future" beyond this much clock skew was not made by this tool honestly.
CLOCK_SKEW = timedelta(minutes=5)


class PlanRejected(ReconcileError):
    """The saved plan cannot be applied as it is; nothing was sent."""


def desired_checksum(files: Iterable[DesiredFile]) -> str:
    """The desired files' contents, independent of where the checkout lives."""
    return digest(sorted(f.sha256 for f in files))


def save(  # noqa: PLR0913 (keyword-only: each is one field of the saved plan)
    plan: Plan,
    *,
    project_id: str,
    base_url: str,
    files: Sequence[DesiredFile],
    created: datetime,
    policy_checked: bool = False,
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "planFormat": PLAN_FORMAT,
        "tool": {"name": "descope-reconcile", "version": __version__},
        "createdAt": created.isoformat(),
        "target": {"projectId": project_id, "baseUrl": base_url},
        "desired": {
            "checksum": desired_checksum(files),
            "files": [{"path": f.path, "sha256": f.sha256} for f in files],
        },
        "managed": sorted(item.key.label for item in plan.keys),  # a key to create counts by its name
        "counted": plan.counted,
        "changes": [
            {
                "action": item.outcome.value,
                "id": item.key.id,  # null for a create: the server chooses the id
                "name": item.name,
                "source": {"path": item.key.source.path, "line": item.key.source.line},
                "reason": item.reason,
                "fingerprint": item.fingerprint,
                "changes": [{"field": c.field, "before": c.before, "after": c.after} for c in item.changes],
                "body": dict(item.body) if item.body is not None else None,
                "status": item.status,
                "warnings": list(item.warnings),
                **({"waivers": [asdict(waiver) for waiver in item.key.waivers]} if item.key.waivers else {}),
            }
            for item in plan.changes
        ],
        "errors": [
            {"id": item.key.label, "outcome": item.outcome.value, "reason": item.reason} for item in plan.errors
        ],
        **({"policyChecked": True} if policy_checked else {}),
    }
    document["checksum"] = digest(document)
    return document


def parse_age(text: str) -> timedelta:
    """`24h`, `90m`, `3600s`, `2d` or plain seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match:
        raise ValueError(f"{text!r}: give a duration such as 24h, 90m, 3600s or 2d")
    unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    return timedelta(seconds=float(match.group(1)) * unit)


def verify(document: Any, *, now: datetime, max_age: timedelta, project_id: str) -> None:
    """Everything that can be checked offline, before any request."""
    if not isinstance(document, dict) or document.get("planFormat") != PLAN_FORMAT:
        raise PlanRejected(f"not a saved plan of format {PLAN_FORMAT}")
    claimed = document.get("checksum")
    if claimed != digest({k: v for k, v in document.items() if k != "checksum"}):
        raise PlanRejected("the plan file was edited or damaged since it was made (checksum mismatch)")
    _check_shape(document)
    created = datetime.fromisoformat(document["createdAt"])
    age = now - created
    if age > max_age:
        raise PlanRejected(f"the plan is {_hours(age)} old, over --max-plan-age {_hours(max_age)}: plan again")
    if age < -CLOCK_SKEW:
        raise PlanRejected(f"the plan claims to be made in the future ({document['createdAt']})")
    planned_for = document["target"]["projectId"]
    if planned_for != project_id:
        raise PlanRejected(f"the plan was made for project {planned_for}, not {project_id}")
    errors = [f"{error['id']} ({error['outcome']})" for error in document["errors"]]
    if errors:
        raise PlanRejected(
            f"the plan has {len(errors)} key(s) in error: {_listed(errors)}; fix the desired files and plan again"
        )


def require_policy(document: Mapping[str, Any], *, policy_given: bool) -> None:
    """A plan checked against a policy is applied under one: the policy of the moment of the write
    (a rule tightened since the plan blocks it; one loosened does not), never none because the
    option was forgotten."""
    if document.get("policyChecked") is True and not policy_given:
        raise PlanRejected(
            "the plan was checked against a policy, and this run has none: give --policy FILE (or the config's "
            "`policy:`); the policy as it is now decides"
        )


def _of(value: Any, kind: type | tuple[type, ...]) -> None:
    if not isinstance(value, kind):
        raise TypeError(kind)


def _check_shape(document: Mapping[str, Any]) -> None:
    """Every part a later step reads, of the type it reads, or KeyError / TypeError (the caller says
    "not a complete saved plan"): the checksum proves the file unchanged, not that this tool made it,
    and a part read after the project was fetched must not end the run in a traceback."""
    to_plan(document, {})
    files_of(document)
    for text in (document["createdAt"], document["target"]["projectId"], document["desired"]["checksum"]):
        _of(text, str)
    optional_text = (str, type(None))
    for change in document["changes"]:
        key = optional_text if change["action"] == Outcome.CREATE else str  # a key to create has no id yet
        fields = (("id", key), ("fingerprint", key), ("name", optional_text), ("status", optional_text))
        for field, kind in fields:
            _of(change[field], kind)
        _of(change["body"], (dict, type(None)))
        _of(change["source"]["line"], int)
        for warning in change["warnings"]:
            _of(warning, str)
        for waiver in change.get("waivers", ()):
            for text in (waiver["rule"], waiver["reason"], waiver["until"]):
                _of(text, str)
            date.fromisoformat(waiver["until"])  # the policy compares it with today
    for key_id in document["managed"]:
        _of(key_id, str)
    if isinstance(document["counted"], bool):
        raise TypeError(int)
    _of(document["counted"], int)
    for error in document["errors"]:
        _of(error, dict)


def _listed(items: Sequence[str]) -> str:
    more = len(items) - SHOWN_IDS
    return ", ".join(items[:SHOWN_IDS]) + (f" and {more} more" if more > 0 else "")


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:.1f}h"


def check_desired(document: Mapping[str, Any], files: Sequence[DesiredFile]) -> None:
    if document["desired"]["checksum"] != desired_checksum(files):
        raise PlanRejected("the desired files differ from the ones the plan was made from: plan again")


def check_current(document: Mapping[str, Any], observed: Mapping[str, Mapping[str, Any]]) -> None:
    """Refuse, before any write, when a planned key changed since the plan (or is gone), or a name
    planned for creation is now a key's."""
    now = {key_id: fingerprint(key) for key_id, key in observed.items()}
    holders: dict[str, list[str]] = {}
    for key_id, key in observed.items():
        holders.setdefault(str(key.get("name") or ""), []).append(key_id)
    stale = []
    for change in document["changes"]:
        if change["action"] == Outcome.CREATE:
            if change["name"] in holders:
                taken = ", ".join(holders[change["name"]])
                stale.append(f"{change['name']!r} (planned for creation, now taken by {taken})")
        elif now.get(change["id"]) != change["fingerprint"]:
            stale.append(change["id"] + (" (planned for deletion)" if change["action"] == Outcome.DELETE else ""))
    if stale:
        raise PlanRejected(f"{len(stale)} planned key(s) changed since the plan was made: {_listed(stale)}; plan again")


_PRUNES = (Outcome.DEACTIVATE, Outcome.DELETE)


def to_plan(document: Mapping[str, Any], observed: Mapping[str, Mapping[str, Any]]) -> Plan:
    """The saved changes as a plan the executor can run; nothing is recomputed. The unmanaged keys
    are the project's as read now; the managed count is the plan's, for the safety threshold; a
    pruned key's last state is as read now (proven unchanged)."""
    keys = []
    for change in document["changes"]:
        source = SourceLocation(change["source"]["path"], change["source"]["line"])
        outcome = Outcome(change["action"])
        keys.append(
            KeyPlan(
                key=DesiredKey(
                    change["id"],
                    {"name": change["name"]} if change["id"] is None else {},
                    source,
                    tuple(Waiver(**waiver) for waiver in change.get("waivers", ())),  # the policy applies them
                ),
                outcome=outcome,
                reason=change["reason"],
                name=change["name"],
                changes=tuple(FieldChange(c["field"], c["before"], c["after"]) for c in change["changes"]),
                body=change["body"],
                status=change["status"],
                fingerprint=change["fingerprint"],
                warnings=tuple(change["warnings"]),
                last_state=observed.get(change["id"]) if outcome in _PRUNES else None,
            )
        )
    managed = set(document["managed"])
    counted = document["counted"]
    return Plan(tuple(keys), unmanaged_keys(observed, managed), managed_count=len(managed), counted_count=counted)


def provenance(document: Mapping[str, Any], path: str, now: datetime) -> dict[str, Any]:
    """What the report of `apply --plan` records of the plan it applied."""
    age = now - datetime.fromisoformat(document["createdAt"])
    return {
        "path": path,
        "checksum": document["checksum"],
        "createdAt": document["createdAt"],
        "ageSeconds": round(max(age.total_seconds(), 0.0), 3),
    }


def files_of(document: Mapping[str, Any]) -> tuple[DesiredFile, ...]:
    return tuple(DesiredFile(f["path"], f["sha256"]) for f in document["desired"]["files"])
