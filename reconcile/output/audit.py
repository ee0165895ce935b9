"""The whole project, read-only: managed and unmanaged keys, drift, and keys worth a second look."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from reconcile.output.escape import md_code, md_text, text_block
from reconcile.output.trail import attribution_json, step_json, who_changed_what
from reconcile.plan.diff import Outcome, Plan
from reconcile.trail.findings import TrailFindings

# A managed key that differs from its desired state, whether or not the tool can change it; a key the
# files name that the project lacks (create); a key a prune scope owns that no file names; a name the
# files give that several keys hold (which one the files mean is unknown: drift until someone decides).
DRIFTED = frozenset(
    {
        Outcome.UPDATE,
        Outcome.NOT_EDITABLE,
        Outcome.CONFLICT,
        Outcome.CREATE,
        Outcome.ACTIVATE,
        Outcome.DEACTIVATE,
        Outcome.DELETE,
        Outcome.AMBIGUOUS,
    }
)

FINDINGS = {
    "inactive": "inactive keys",
    "expiring": "keys expired or expiring soon",
    "noIpRestriction": "keys usable from any IP (no permittedIps)",
    "noRolesNoTenants": "keys with neither roles nor tenants",
}


def _brief(key: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": key.get("id"), "name": key.get("name") or ""}


def build_audit(
    plan: Plan,
    observed: Iterable[Mapping[str, Any]],
    *,
    now: datetime,
    expiring_within: timedelta,
    trail: TrailFindings | None = None,
) -> dict[str, Any]:
    keys = sorted(observed, key=lambda key: str(key.get("id")))
    unmanaged = {key.id for key in plan.unmanaged}  # a key an ambiguous name may mean is not unmanaged
    horizon = (now + expiring_within).timestamp()
    findings: dict[str, list[dict[str, Any]]] = {name: [] for name in FINDINGS}
    for key in keys:
        if (key.get("status") or "active") != "active":
            findings["inactive"].append(_brief(key))
        expires = key.get("expireTime") or 0
        if isinstance(expires, int | float) and 0 < expires <= horizon:
            expired = expires <= now.timestamp()
            findings["expiring"].append({**_brief(key), "expireTime": expires, "expired": expired})
        if not key.get("permittedIps"):
            findings["noIpRestriction"].append(_brief(key))
        if not key.get("roleNames") and not key.get("keyTenants"):
            findings["noRolesNoTenants"].append(_brief(key))
    drift = [
        {
            **_brief({"id": item.key.id, "name": item.name}),
            "action": item.outcome.value,
            "fields": [c.field for c in item.changes],
            **({"keys": _holders(keys, item.name)} if item.outcome is Outcome.AMBIGUOUS else {}),
        }
        for item in plan.keys
        if item.outcome in DRIFTED
    ]
    return {
        "auditedAt": now.isoformat(),
        "expiringWithinDays": expiring_within.days,
        "keys": len(keys),
        "managed": sorted(str(key.get("id")) for key in keys if key.get("id") not in unmanaged),
        "unmanaged": [_brief(key) for key in keys if key.get("id") in unmanaged],
        "missing": [item.key.id for item in plan.keys if item.outcome is Outcome.MISSING],
        "drift": drift,
        "findings": findings,
        **(_who_changed_what(plan, trail) if trail is not None else {}),
    }


def _holders(keys: Iterable[Mapping[str, Any]], name: str) -> list[str]:
    return sorted(str(key.get("id")) for key in keys if (key.get("name") or "") == name)


def _who_changed_what(plan: Plan, trail: TrailFindings) -> dict[str, Any]:
    entries = [
        {"id": item.key.id, "name": item.name, "outcome": item.outcome.value, "attribution": attribution_json(found)}
        for item in plan.keys
        if item.key.id is not None and (found := trail.keys.get(item.key.id)) is not None
    ]
    return {"attribution": step_json(trail.attribution), "whoChangedWhat": entries}


def render_audit(audit: Mapping[str, Any], *, project_id: str) -> str:
    lines = [
        f"## descope-reconcile audit: project {md_code(project_id)}",
        "",
        f"{audit['keys']} keys: {len(audit['managed'])} managed, {len(audit['unmanaged'])} unmanaged; "
        f"{len(audit['drift'])} drifted from the desired files; {len(audit['missing'])} desired but missing.",
        "",
        "| finding | keys |",
        "|---|---|",
        f"| drift | {len(audit['drift'])} |",
    ]
    lines += [f"| {title} | {len(audit['findings'][name])} |" for name, title in FINDINGS.items()]
    missing = [{"id": key_id, "name": ""} for key_id in audit["missing"]]
    sections = [("Drift", audit["drift"]), ("Desired but missing", missing), ("Unmanaged keys", audit["unmanaged"])]
    sections += [(title[0].upper() + title[1:], audit["findings"][name]) for name, title in FINDINGS.items()]
    for title, entries in sections:
        if not entries:
            continue
        lines += ["", f"### {title}", ""]
        for entry in entries:
            extra = f" ({', '.join(entry['fields'])})" if "fields" in entry else ""
            if entry.get("action", "update") != "update":
                extra = f" ({entry['action']})"
            if "keys" in entry:
                extra = f" (ambiguous: {', '.join(md_code(key_id) for key_id in entry['keys'])})"
            if "expireTime" in entry:
                day = datetime.fromtimestamp(entry["expireTime"]).date().isoformat()
                extra = f" ({'expired' if entry['expired'] else 'expires'} {day})"
            shown = md_code(entry["id"]) if entry["id"] else ("(one name)" if "keys" in entry else "(new)")
            lines.append(f"- {shown} {md_text(entry['name'])}{extra}")
    lines += who_changed_what(audit.get("whoChangedWhat", []), audit.get("attribution"))
    return text_block(lines)  # printed too: every line safe for a terminal and a CI log
