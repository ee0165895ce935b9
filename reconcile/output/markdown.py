"""A report (plan or apply) → Markdown for people: counts, a table of changed keys (failures
first), field diffs in collapsible blocks. Long plans are cut, saying how much was left out.
Every id, name, path and error text is escaped for where it stands (`reconcile/output/escape.py`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from reconcile.output.escape import html_text, json_value, md_code, md_text, plain
from reconcile.output.trail import meanwhile_section, overwritten_section, who_changed_what
from reconcile.plan.diff import ERROR_OUTCOMES, Outcome

MAX_ROWS = 200  # GitHub caps a step summary at 1 MiB; a reviewer stops reading long before
SUMMARY_BYTES = 1024 * 1024 - 1024  # under that cap: a huge value can pass the row cap
_ERRORS = {outcome.value for outcome in ERROR_OUTCOMES}
_QUIET = {Outcome.UNCHANGED.value}


def _value(value: Any) -> str:
    return json_value(value, sort_keys=True)  # in a code block, each line starting with `-` or `+`


def _shown_id(key: Mapping[str, Any]) -> str:
    return md_code(key["id"]) if key["id"] else "(new)"


def _details(key: Mapping[str, Any]) -> list[str]:
    if not key["changes"]:
        return []
    shown = f"<code>{html_text(key['id'])}</code>" if key["id"] else "(new)"
    summary = f"{shown} {html_text(key['name'])}"
    lines = [f"<details><summary>{summary}</summary>", "", "```diff"]
    for change in key["changes"]:
        if change["before"] is not None:
            lines.append(f"- {change['field']}: {_value(change['before'])}")
        lines.append(f"+ {change['field']}: {_value(change['after'])}")
    lines += ["```", "", "</details>"]
    return lines


def _recoveries(report: Mapping[str, Any]) -> list[str]:
    """Every secret that may be lost, with the exact command that recovers it."""
    lost = [(key["id"], key["recover"]) for key in report["keys"] if key.get("recover")]
    lost += [(item["id"], item["recover"]) for item in report.get("unsettledSecrets", ())]
    if not lost:
        return []
    lines = [
        "",
        "### Secrets not delivered",
        "",
        "Each key below has a secret not every sink received. Recover it:",
        "",
    ]
    for key_id, command in lost:
        lines += [f"- {md_code(key_id)}:", "", *(f"  {line}" for line in md_block(command)), ""]
    return lines


def md_block(text: str) -> list[str]:
    """A command as a fenced code block (a shell pipe is no table cell here): its fence is longer
    than any run of backticks in it, and every control character shows as an escape."""
    shown = plain(text)
    longest = max((len(run) for run in re.findall("`+", shown)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence, shown, fence]


def _notices(report: Mapping[str, Any]) -> list[str]:
    """What a reader must not miss: the safety threshold's verdict, the saved plan applied, deletions,
    keys in error."""
    lines = []
    safety, mode = report.get("safety"), report["run"]["mode"]
    refusal = report.get("refusal")
    if refusal and refusal["kind"] != "safety":  # (the threshold's own notice follows)
        lines.append(f"> **Refused** before any write (exit {refusal['exitCode']}): {md_text(refusal['reason'])}")
    issuing = report.get("secretsToIssue") or []
    if issuing and mode == "plan":
        names = ", ".join(md_code(item["name"]) for item in issuing[:20]) + (" …" if len(issuing) > 20 else "")
        lines.append(
            f"> **Applying needs a secret sink** (`--secrets-out` and/or `--secrets-command`): "
            f"{len(issuing)} key(s) get a new secret: {names}."
        )
    if safety and safety["exceeded"]:
        numbers = (
            f"it changes {safety['changes']} of {safety['managed']} managed keys, over the limit of "
            f"{safety['allowed']} (`--max-changes {safety['maxChanges']}`)"
        )
        if mode == "plan":
            lines.append(
                f"> **Warning**: `apply` would refuse this plan (exit 3): {numbers}. Review it, then apply "
                "with `--force` or a higher `--max-changes`."
            )
        elif report["run"].get("settings", {}).get("force"):
            lines.append(f"> **Forced** past the safety threshold: {numbers}.")
        else:
            lines.append(f"> **Refused** before any write (exit 3): {numbers}.")
    saved = report.get("savedPlan")
    if saved:
        lines.append(
            f"> Applied the saved plan `{saved['checksum'][:12]}` made at {saved['createdAt']} "
            f"({saved['ageSeconds'] / 3600:.1f} h before this run)."
        )
    deleting = sum(1 for key in report["keys"] if key["outcome"] in ("delete", "deleted"))
    if deleting:
        verb = "will be" if mode == "plan" else "were"
        lines.append(f"> **{deleting} key(s) {verb} deleted** (pruned: in a prune scope, named by no file).")
    failures = report["summary"]["failures"]
    if failures:
        lines.append(f"> **{failures} key(s) not as desired**: listed first below, with why.")
    return [line for notice in lines for line in (notice, "")]


def render_summary(report: Mapping[str, Any], *, max_rows: int = MAX_ROWS) -> str:
    mode = report["run"]["mode"]
    summary = report["summary"]
    title = {"plan": "Plan", "apply": "Apply", "rotate": "Rotate"}.get(mode, mode.title())
    lines = [f"## descope-reconcile {title}: project {md_code(report['target']['projectId'])}", ""]
    if report["run"].get("interrupted"):
        lines += ["> **Interrupted**: keys not reached are listed as `interrupted`.", ""]
    lines += _notices(report)
    lines += ["| outcome | keys |", "|---|---|"]
    lines += [f"| {name} | {count} |" for name, count in summary["byOutcome"].items()]
    lines += [f"| unmanaged (not in any file) | {summary.get('unmanaged', 0)} |", ""]

    shown = [key for key in report["keys"] if key["outcome"] not in _QUIET]
    shown.sort(key=lambda key: (key["outcome"] not in _ERRORS, key["id"] or "", key["name"]))  # failures first
    if not shown:
        lines.append("No changes: every managed key is as the desired files say.")
        return "\n".join(lines + _trail_sections(report, max_rows) + _recoveries(report)) + "\n"
    kept, cut = shown[:max_rows], len(shown) - max_rows
    lines += ["| key | name | outcome | fields | source | why |", "|---|---|---|---|---|---|"]
    for key in kept:
        fields = ", ".join(change["field"] for change in key["changes"]) or "-"
        source = f"{key['source']['path']}:{key['source']['line']}"
        why = key["error"]["message"] if key["error"] else key["reason"]
        name, where = md_text(key["name"]), md_text(source)
        cells = [_shown_id(key), name, f"**{key['outcome']}**", fields, where, md_text(why)]
        lines.append("| " + " | ".join(cells) + " |")
    if cut > 0:
        lines.append(f"\n… and {cut} more key(s) not shown; the JSON report has them all.")
    lines.append("")
    for key in kept:
        lines.extend(_details(key))
    return "\n".join(lines + _trail_sections(report, max_rows) + _recoveries(report)) + "\n"


def _trail_sections(report: Mapping[str, Any], max_rows: int) -> list[str]:
    """The sections from the audit trail: who last changed each drifted or missing key, and the
    changes by someone else this apply overwrote."""
    trail = report.get("trail")
    if trail is None:
        return []
    attributed = [key for key in report["keys"] if "attribution" in key]
    attributed.sort(key=lambda key: (key["outcome"] not in _ERRORS, key["id"] or ""))
    lines = who_changed_what(attributed[:max_rows], trail["attribution"])
    if len(attributed) > max_rows:
        lines.append(f"\n… and {len(attributed) - max_rows} more key(s) not shown; the JSON report has them all.")
    overwritten = [{"keyId": key["id"], **change} for key in report["keys"] for change in key.get("overwritten", ())]
    meanwhile = [{"keyId": key["id"], **c} for key in report["keys"] for c in key.get("changedMeanwhile", ())]
    not_checked = {key["id"]: key["notChecked"] for key in report["keys"] if "notChecked" in key}
    return (
        lines
        + overwritten_section(overwritten, trail.get("overwriteCheck"))
        + meanwhile_section(meanwhile, not_checked)
    )


def fit_summary(markdown: str, limit: int = SUMMARY_BYTES) -> str:
    """A summary GitHub accepts (it refuses a step summary over 1 MiB whole): past `limit` bytes,
    cut at a line, an open code block closed, and the cut said; the report keeps everything."""
    data = markdown.encode("utf-8")
    if len(data) <= limit:
        return markdown
    lines = data[:limit].decode("utf-8", errors="ignore").split("\n")[:-1]  # whole lines only
    closing = ["```"] if sum(line.startswith("```") for line in lines) % 2 else []
    note = f"*Cut at {limit:,} of {len(data):,} bytes (GitHub's step summary limit): the JSON has it all.*"
    return "\n".join([*lines, *closing, "", note, ""])
