"""What the audit trail said, for machines and people: the JSON of each key's last change and of
each overwritten change, the line under a key in the text plan, and the "Who changed what" and
"Overwritten changes" Markdown sections. Actor ids, addresses, run ids and commits come from the
trail, which anyone with a management key writes to: every one is escaped where it is shown."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from reconcile.output.escape import md_code, md_text
from reconcile.trail.attribution import Attribution, Claim, Found, ToolRun
from reconcile.trail.findings import NO_CHANGE, Step, StepStatus, TrailFindings
from reconcile.trail.overwrite import Overwrite
from reconcile.trail.records import EVENT_ACTION, EVENT_ACTOR, Record

Escape = Callable[[object], str]
_VERBS = {
    "AccessKeyCreated": "created",
    "AccessKeyModified": "changed",
    "AccessKeyDeleted": "deleted",
    "AccessKeysDeleted": "deleted",
}
# The most of one string from the trail a report or a line shows: anyone with a management key
# writes records, and a megabyte actor id is no one's name.
SHOWN_CHARS = 200
NOT_REACHED = "partial: no change found in the records read; older ones were not read (see the attribution notice)"


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def _shown(text: str | None) -> str | None:
    """A string from the trail, cut to `SHOWN_CHARS` with its length said."""
    if text is None or len(text) <= SHOWN_CHARS:
        return text
    return f"{text[:SHOWN_CHARS]}… ({len(text)} characters)"


def change_json(record: Record) -> dict[str, Any]:
    return {
        "action": _shown(record.action),
        "actorId": _shown(record.actor),
        "at": _iso(record.occurred),
        "remoteAddress": _shown(record.remote) or None,
    }


def meanwhile_json(item: Overwrite) -> dict[str, Any]:
    """Another actor's change before a write of this run that pins no other field (not reverted)."""
    return {**change_json(item.change), "beforeThisRun": item.write.value}


def _run_json(run: ToolRun) -> dict[str, Any]:
    return {
        key: _shown(value)
        for key, value in (("id", run.run_id), ("commit", run.commit), ("repository", run.repository), ("url", run.url))
    }


def attribution_json(attribution: Attribution) -> dict[str, Any]:
    change = None
    if attribution.change is not None:
        run = _run_json(attribution.run) if attribution.run else None
        by_tool = {Claim.OWN: True, Claim.OTHER: False, Claim.UNKNOWN: None}[attribution.claim]
        change = {**change_json(attribution.change), "byThisTool": by_tool, "run": run}
    return {"found": attribution.found.value, "change": change}


def step_json(step: Step) -> dict[str, Any]:
    return {"status": step.status.value, "reason": step.reason, "pages": step.pages, "records": step.records}


def trail_json(findings: TrailFindings) -> dict[str, Any]:
    """The report's `trail`: what each step did (the per-key findings go with the keys)."""
    result: dict[str, Any] = {"attribution": step_json(findings.attribution)}
    if findings.overwrite_check is not None:
        result["overwriteCheck"] = step_json(findings.overwrite_check)
    if findings.event is not None:
        result["event"] = {**step_json(findings.event), "action": EVENT_ACTION, "actorId": EVENT_ACTOR}
    return result


def _when(at: str) -> str:
    return at.replace("T", " ").replace("+00:00", " UTC")


def describe_change(change: Mapping[str, Any], esc: Escape, *, by: str | None = None) -> str:
    """A change in words: what, when, by whom (`by`, else its actor), from where."""
    verb = _VERBS.get(change["action"], esc(change["action"]))
    where = f" from {esc(change['remoteAddress'])}" if change.get("remoteAddress") else ""
    who = by if by is not None else esc(change["actorId"] or "an unnamed actor")
    return f"{verb} {_when(change['at'])} by {who}{where}"


def describe(attribution: Mapping[str, Any], esc: Escape) -> str:
    """A key's last change in words (from its JSON), every part from the trail through `esc`: always
    its actor, then whether this tool made it (and which run), did not, or cannot tell."""
    change = attribution["change"]
    if change is None:
        return NO_CHANGE if attribution["found"] == Found.NONE.value else NOT_REACHED
    run = change["run"]
    if change["byThisTool"] is False or run is None:
        return f"{describe_change(change, esc)} (not this tool)"
    commit = f", commit {esc(run['commit'][:12])}" if run.get("commit") else ""
    repository = f" ({esc(run['repository'])})" if run.get("repository") else ""
    named = f"descope-reconcile run {esc(run['id'])}{commit}{repository}"
    if change["byThisTool"] is None:
        cannot = "the trail cannot tell its record from this one"
        return f"{describe_change(change, esc)} (not checked: this tool wrote this key then, in {named}; {cannot})"
    return f"{describe_change(change, esc)} ({named})"


def step_notice(step: Mapping[str, Any] | None, what: str = "attribution") -> str | None:
    """`attribution unavailable: <reason>` (or partial), when the step did not do everything."""
    if step is None or step["status"] not in (StepStatus.UNAVAILABLE.value, StepStatus.PARTIAL.value):
        return None
    return f"{what} {step['status']}: {step['reason']}"


def who_changed_what(entries: Sequence[Mapping[str, Any]], step: Mapping[str, Any] | None) -> list[str]:
    """The Markdown section: per key (`id`, `name`, `outcome`, `attribution`) its last change."""
    notice = step_notice(step)
    if not entries and notice is None:
        return []
    lines = ["", "### Who changed what", ""]
    if notice is not None:
        lines += [f"> {md_text(notice)}", ""]
    if entries:
        lines += ["| key | name | outcome | last change |", "|---|---|---|---|"]
        for entry in entries:
            cells = [md_code(entry["id"]), md_text(entry["name"]), entry["outcome"]]
            lines.append("| " + " | ".join([*cells, describe(entry["attribution"], md_text)]) + " |")
    return lines


def overwritten_section(entries: Sequence[Mapping[str, Any]], step: Mapping[str, Any] | None) -> list[str]:
    """The Markdown section of changes by someone else that the apply overwrote."""
    notice = step_notice(step, "overwritten check")
    if not entries and notice is None:
        return []
    lines = ["", "### Overwritten changes", ""]
    if entries:
        lines += [
            f"> **{len(entries)} change(s) made by someone else between this run's read of a key and its "
            "write were overwritten**: the update pins every field.",
            "",
            "| key | their change |",
            "|---|---|",
        ]
        lines += [f"| {md_code(entry['keyId'])} | {describe_change(entry, md_text)} |" for entry in entries]
    if notice is not None:
        lines += ["", f"> {md_text(notice)}"]
    return lines


def meanwhile_section(entries: Sequence[Mapping[str, Any]], not_checked: Mapping[str, str]) -> list[str]:
    """The Markdown section of others' changes this run did not revert, and of the keys it could not check."""
    lines = []
    if entries:
        lines += ["", "### Changed by someone else meanwhile", ""]
        lines += ["| key | their change | this run's write after it (pins no other field) |", "|---|---|---|"]
        lines += [
            f"| {md_code(entry['keyId'])} | {describe_change(entry, md_text)} | {entry['beforeThisRun']} |"
            for entry in entries
        ]
    if not_checked:
        lines += ["", "### Not checked for overwrites", "", "| key | why |", "|---|---|"]
        lines += [f"| {md_code(key_id)} | {md_text(why)} |" for key_id, why in not_checked.items()]
    return lines
