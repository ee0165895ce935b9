"""Findings → a SARIF 2.1.0 log (OASIS, errata 01) for GitHub code scanning: one run of the tool, its
rules with their help text, and each finding as a result at its file, line and column. Severity maps
to `level` (error → error, warning → warning); a waived finding is a result with an in-source
suppression whose justification is the waiver's reason. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from reconcile import __version__
from reconcile.policy.findings import Finding
from reconcile.policy.rules import RuleInfo

SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
# Problems that stop a desired file from being read at all: a result too, so code scanning shows them.
INVALID_FILE = RuleInfo(
    "invalid-desired-file",
    "Desired files are valid",
    "Fix the file: `descope-reconcile validate` says what is wrong, line by line.",
)


def _uri(path: str) -> str:
    """A file as SARIF names it: relative to the checkout (GitHub resolves it), or a file: URI."""
    path = path.replace("\\", "/")
    if path.startswith("/"):
        return "file://" + quote(path)
    return quote(path.removeprefix("./"))


def _rule(info: RuleInfo, level: str) -> dict[str, Any]:
    return {
        "id": info.id,
        "name": "".join(word.capitalize() for word in info.id.split("-")),
        "shortDescription": {"text": info.title},
        "fullDescription": {"text": f"{info.title}. {info.help}"},
        "help": {"text": info.help, "markdown": f"**{info.title}.** {info.help} See docs/policy.md#{info.id}."},
        "defaultConfiguration": {"level": level},
        "properties": {"tags": ["security", "access-keys"], **({"liveOnly": True} if info.live_only else {})},
    }


def _result(item: Finding, index: int) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": item.rule,
        "ruleIndex": index,
        "level": item.severity,
        # A problem of a whole file (invalid-desired-file) names no key.
        "message": {"text": f"key {item.key}: {item.message}" if item.key else item.message},
        "partialFingerprints": {"descopeReconcile/v1": f"{item.rule}:{item.key}:{item.field}"},
    }
    location: dict[str, Any] = {}
    if item.key:
        location["logicalLocations"] = [
            {"name": item.key, "fullyQualifiedName": f"accessKey/{item.key}", "kind": "object"}
        ]
    if item.file:
        location["physicalLocation"] = {
            "artifactLocation": {"uri": _uri(item.file)},
            "region": {"startLine": max(item.line, 1), "startColumn": max(item.column, 1)},
        }
    result["locations"] = [location]
    if item.waived:
        result["suppressions"] = [{"kind": "inSource", "status": "accepted", "justification": item.waived}]
    return result


def render_sarif(findings: Sequence[Finding], rules: Sequence[RuleInfo], levels: dict[str, str]) -> dict[str, Any]:
    """The log: `rules` in order (each with its configured level in `levels`; `invalid-desired-file` last),
    then every finding."""
    catalog = list({info.id: info for info in [*rules, INVALID_FILE]}.values())
    index = {info.id: position for position, info in enumerate(catalog)}
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "descope-reconcile",
                        "version": __version__,
                        "rules": [_rule(info, levels.get(info.id, "error")) for info in catalog],
                    }
                },
                "columnKind": "unicodeCodePoints",
                "results": [_result(item, index[item.rule]) for item in findings],
            }
        ],
    }


def combine(logs: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Several targets' logs → one, a run per target, each its own category for code scanning (which
    would otherwise take one run for another)."""
    runs = [{**log["runs"][0], "automationDetails": {"id": f"descope-reconcile/{name}/"}} for name, log in logs]
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": runs}
