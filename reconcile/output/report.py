"""Run → the JSON report (schemas/report.schema.json), written atomically with mode 0600."""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from reconcile import __version__
from reconcile.apply.calls import ErrorInfo, KeyResult
from reconcile.apply.journal import Unsettled
from reconcile.files import write_private_atomically
from reconcile.model import DesiredFile
from reconcile.output.escape import json_chunks
from reconcile.output.recovery import Recovery
from reconcile.output.trail import attribution_json, change_json, meanwhile_json, trail_json
from reconcile.plan.diff import DONE, KeyPlan, Outcome, Plan
from reconcile.trail.findings import TrailFindings

REPORT_VERSION = 2  # 2: run.settings in camelCase, like the rest of the report
DONE_OUTCOMES = frozenset(DONE.values())


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    mode: str
    started: datetime
    finished: datetime
    settings: Mapping[str, Any] = field(default_factory=dict)
    interrupted: bool = False
    timings: Mapping[str, float] = field(default_factory=dict)


def git_state(paths: Sequence[str]) -> dict[str, Any] | None:
    """The commit holding the desired files and whether they differ from it; None outside git."""
    if not paths:
        return None
    folder = Path(paths[0]).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        status = subprocess.run(
            [
                "git",
                "-C",
                str(folder),
                "status",
                "--porcelain",
                "--",
                *(str(Path(p).resolve()) for p in paths),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    state: dict[str, Any] = {"commit": commit, "dirty": bool(status.strip())}
    remote = _remote(folder)
    if remote:
        state["remote"] = remote
    return state


def _remote(folder: Path) -> str | None:
    """The `origin` remote's URL without credentials (an https URL may carry a token), if any."""
    try:
        url = subprocess.run(
            ["git", "-C", str(folder), "remote", "get-url", "origin"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme and parts.hostname:
        host = parts.hostname + (f":{port}" if port else "")
        return urlunsplit((parts.scheme, host, parts.path, "", ""))
    return url.rpartition("@")[2] if "://" not in url else None  # scp-like user@host:path


def _key_record(item: KeyPlan, result: KeyResult | None, recovery: Recovery) -> dict[str, Any]:
    outcome = result.outcome if result else item.outcome
    planned_error = ErrorInfo(item.reason) if item.outcome.is_error else None
    error = result.error if result is not None else planned_error
    # The plan says why a key differs; a failed or interrupted apply says why it did not change.
    reason = error.message if result is not None and error is not None else item.reason
    key_id = result.id if result is not None else item.key.id
    record: dict[str, Any] = {
        "id": key_id,
        "name": item.name,
        "source": {"path": item.key.source.path, "line": item.key.source.line},
        "outcome": outcome.value,
        "reason": reason,
        # (no comprehension for a key in sync: most keys of a big plan)
        "changes": [{"field": c.field, "before": c.before, "after": c.after} for c in item.changes]
        if item.changes
        else [],
        "attempts": result.attempts if result else 0,
        "error": error.as_json() if error else None,
    }
    if item.warnings:
        record["warnings"] = list(item.warnings)
    if item.last_state is not None:
        record["lastState"] = dict(item.last_state)  # every field: enough to recreate a deleted key
    if outcome is Outcome.UNDELIVERED and key_id is not None:
        record["recover"] = recovery.command(key_id, name=item.name, delivered_to=result.delivered_to if result else ())
    return record


def unsettled_records(unsettled: Sequence[Unsettled], recovery: Recovery) -> list[dict[str, Any]]:
    return [
        {
            "id": u.id,
            "name": u.name,
            "runId": u.run_id,
            "at": u.at,
            "why": u.why,
            "recover": recovery.command(u.id, u.sinks, name=u.name, delivered_to=u.delivered_to),
        }
        for u in unsettled
    ]


def build_report(  # noqa: PLR0913 (keyword-only: one per section of the report)
    *,
    run: RunInfo,
    files: Sequence[DesiredFile],
    git: Mapping[str, Any] | None,
    project_id: str,
    base_url: str,
    plan: Plan,
    results: Sequence[KeyResult] = (),
    requests_by_status: Mapping[str, int],
    retries: int = 0,
    safety: Mapping[str, Any] | None = None,
    saved_plan: Mapping[str, Any] | None = None,
    trail: TrailFindings | None = None,
    unsettled: Sequence[Unsettled] = (),
    recovery: Recovery,
) -> dict[str, Any]:
    by_plan = {id(result.plan): result for result in results}
    keys = [_key_record(item, by_plan.get(id(item)), recovery) for item in plan.keys]
    if trail is not None:
        _add_trail(keys, trail)
    outcomes = Counter(record["outcome"] for record in keys)
    changed = {o.value for o in Outcome if (o.is_change if run.mode == "plan" else o in DONE_OUTCOMES)}
    run_record: dict[str, Any] = {
        "id": run.run_id,
        "mode": run.mode,
        "startedAt": run.started.isoformat(),
        "finishedAt": run.finished.isoformat(),
        "durationSeconds": round((run.finished - run.started).total_seconds(), 3),
        "interrupted": run.interrupted,
        "settings": dict(run.settings),
        "timings": dict(run.timings),
    }
    report: dict[str, Any] = {
        "reportVersion": REPORT_VERSION,
        "tool": {"name": "descope-reconcile", "version": __version__},
        "run": run_record,
        "desired": {
            "files": [{"path": f.path, "sha256": f.sha256} for f in files],
            "git": dict(git) if git else None,
        },
        "target": {"projectId": project_id, "baseUrl": base_url},
        "summary": {
            "keys": plan.managed,
            "byOutcome": dict(sorted(outcomes.items())),
            "changes": sum(n for name, n in outcomes.items() if name in changed),
            "failures": sum(n for name, n in outcomes.items() if Outcome(name).is_error),
            "unmanaged": len(plan.unmanaged),
        },
        "keys": keys,
        "unmanaged": [{"id": key.id, "name": key.name} for key in plan.unmanaged],
        "unsettledSecrets": unsettled_records(unsettled, recovery),
        "requests": {
            "total": sum(requests_by_status.values()),
            "byStatus": dict(sorted(requests_by_status.items())),
            "retries": retries,
        },
        "safety": dict(safety) if safety is not None else None,
    }
    if plan.issuing:  # applying needs a sink for these keys (a plan reviewed in CI must say so)
        report["secretsToIssue"] = [{"id": item.key.id, "name": item.name} for item in plan.issuing]
    if saved_plan is not None:
        report["savedPlan"] = dict(saved_plan)
    if trail is not None:
        report["trail"] = trail_json(trail)
        report["summary"]["overwritten"] = len(trail.overwritten)
        report["warnings"] = trail.warnings()
    return report


def _add_trail(keys: list[dict[str, Any]], trail: TrailFindings) -> None:
    """Per key: its last change (drifted keys), the changes by others an apply overwrote."""
    overwritten: dict[str, list[dict[str, Any]]] = {}
    for item in trail.overwritten:  # by key once: not every finding scanned again for each key
        overwritten.setdefault(item.key_id, []).append(change_json(item.change))
    meanwhile: dict[str, list[dict[str, Any]]] = {}
    for found in trail.meanwhile:
        meanwhile.setdefault(found.key_id, []).append(meanwhile_json(found))
    for record in keys:
        if record["id"] in trail.keys:
            record["attribution"] = attribution_json(trail.keys[record["id"]])
        if record["id"] in overwritten:
            record["overwritten"] = overwritten[record["id"]]
        if record["id"] in meanwhile:
            record["changedMeanwhile"] = meanwhile[record["id"]]
        if record["id"] in trail.not_checked:
            record["notChecked"] = trail.not_checked[record["id"]]


def write_report(path: Path, report: Mapping[str, Any]) -> None:
    write_private_atomically(path, json_chunks(report))
