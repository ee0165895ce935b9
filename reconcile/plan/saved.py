"""Reviewed plans, applied exactly: save a plan, then apply it and nothing else.

A saved plan holds the update bodies and status changes it will send, a fingerprint of each
planned key's state when the plan was made, a checksum of the desired files' contents, and a
checksum of itself. `apply --plan` refuses when the file was edited, is too old, targets another
project, or when a planned key changed since (Terraform's stale-plan rule).

The self-checksum catches edits and corruption, not forgery: anyone who can write the file can
recompute it. Keep saved plans where only CI can write them (workflow artifacts).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from reconcile import __version__
from reconcile.errors import ReconcileError
from reconcile.model import DEFAULT_STATUS, DesiredFile, DesiredKey, SourceLocation, current_fields
from reconcile.plan.diff import FieldChange, KeyPlan, Outcome, Plan

PLAN_FORMAT = 1
# A plan made "in the future" beyond this much clock skew was not made by this tool honestly.
CLOCK_SKEW = timedelta(minutes=5)


class PlanRejected(ReconcileError):
    """The saved plan cannot be applied as it is; nothing was sent."""


def _digest(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def fingerprint(key: Mapping[str, Any]) -> str:
    """What a planned change depends on: the key's updatable fields, status and editability."""
    state = current_fields(key)
    state["status"] = key.get("status") or DEFAULT_STATUS
    state["editable"] = key.get("editable", True)
    return _digest(state)


def desired_checksum(files: Iterable[DesiredFile]) -> str:
    """The desired files' contents, independent of where the checkout lives."""
    return _digest(sorted(f.sha256 for f in files))


def save(
    plan: Plan,
    observed: Iterable[Mapping[str, Any]],
    *,
    project_id: str,
    base_url: str,
    files: Sequence[DesiredFile],
    created: datetime,
) -> dict[str, Any]:
    by_id = {str(key.get("id")): key for key in observed}
    document: dict[str, Any] = {
        "planFormat": PLAN_FORMAT,
        "tool": {"name": "descope-reconcile", "version": __version__},
        "createdAt": created.isoformat(),
        "target": {"projectId": project_id, "baseUrl": base_url},
        "desired": {
            "checksum": desired_checksum(files),
            "files": [{"path": f.path, "sha256": f.sha256} for f in files],
        },
        "changes": [
            {
                "id": item.key.id,
                "name": item.name,
                "source": {"path": item.key.source.path, "line": item.key.source.line},
                "reason": item.reason,
                "fingerprint": fingerprint(by_id[item.key.id]),
                "changes": [{"field": c.field, "before": c.before, "after": c.after} for c in item.changes],
                "body": dict(item.body) if item.body is not None else None,
                "status": item.status,
            }
            for item in plan.updates
        ],
        "errors": [{"id": item.key.id, "outcome": item.outcome.value, "reason": item.reason} for item in plan.errors],
    }
    document["checksum"] = _digest(document)
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
    if claimed != _digest({k: v for k, v in document.items() if k != "checksum"}):
        raise PlanRejected("the plan file was edited or damaged since it was made (checksum mismatch)")
    created = datetime.fromisoformat(document["createdAt"])
    age = now - created
    if age > max_age:
        raise PlanRejected(f"the plan is {_hours(age)} old, over --max-plan-age {_hours(max_age)}: plan again")
    if age < -CLOCK_SKEW:
        raise PlanRejected(f"the plan claims to be made in the future ({document['createdAt']})")
    planned_for = document["target"]["projectId"]
    if planned_for != project_id:
        raise PlanRejected(f"the plan was made for project {planned_for}, not {project_id}")


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:.1f}h"


def check_desired(document: Mapping[str, Any], files: Sequence[DesiredFile]) -> None:
    if document["desired"]["checksum"] != desired_checksum(files):
        raise PlanRejected("the desired files differ from the ones the plan was made from: plan again")


def stale_keys(document: Mapping[str, Any], observed: Iterable[Mapping[str, Any]]) -> list[str]:
    """Planned keys whose state changed since the plan (or that are gone)."""
    now = {str(key.get("id")): fingerprint(key) for key in observed}
    return [change["id"] for change in document["changes"] if now.get(change["id"]) != change["fingerprint"]]


def to_plan(document: Mapping[str, Any]) -> Plan:
    """The saved changes as a plan the executor can run; nothing is recomputed."""
    keys = []
    for change in document["changes"]:
        source = SourceLocation(change["source"]["path"], change["source"]["line"])
        keys.append(
            KeyPlan(
                key=DesiredKey(change["id"], {}, source),
                outcome=Outcome.UPDATE,
                reason=change["reason"],
                name=change["name"],
                changes=tuple(FieldChange(c["field"], c["before"], c["after"]) for c in change["changes"]),
                body=change["body"],
                status=change["status"],
            )
        )
    return Plan(tuple(keys), unmanaged=())


def files_of(document: Mapping[str, Any]) -> tuple[DesiredFile, ...]:
    return tuple(DesiredFile(f["path"], f["sha256"]) for f in document["desired"]["files"])
