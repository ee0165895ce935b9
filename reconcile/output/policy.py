"""A policy's findings for people and machines: `path:line:col: error[rule]: ...` lines, workflow
annotations, JSON records and a Markdown section with the counts per rule. Pure; every text from
the files or the server escaped for where it goes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reconcile.output.escape import gh_data, gh_property, md_code, md_text, text_line
from reconcile.policy.findings import Finding, counts


def _label(item: Finding) -> str:
    return f"waived[{item.rule}]" if item.waived else f"{item.severity}[{item.rule}]"


def _said(item: Finding) -> str:
    status = f" ({item.status})" if item.status else ""
    waiver = f" (waived: {item.waived})" if item.waived else ""
    field = f" [{item.field}]" if item.field else ""
    return f"key {item.key}: {item.message}{field}{status}{waiver}"


def text_lines(findings: Sequence[Finding]) -> list[str]:
    """One line each: `path:line:col: error[rule-id]: ...` (or `key ID: ...` for a key no file names)."""
    lines = []
    for item in findings:
        where = f"{item.file}:{item.line}:{item.column}: " if item.file else ""
        lines.append(text_line(f"{where}{_label(item)}: {_said(item)}"))
    return lines


def workflow_commands(findings: Sequence[Finding]) -> list[str]:
    """GitHub workflow commands: an error or warning annotation on the line (a waived one: a notice)."""
    lines = []
    for item in findings:
        kind = "notice" if item.waived else item.severity
        where = f" file={gh_property(item.file)},line={item.line},col={item.column}," if item.file else " "
        lines.append(f"::{kind}{where}title={gh_property(item.rule)}::{gh_data(_said(item))}")
    return lines


def records(findings: Sequence[Finding]) -> list[dict[str, Any]]:
    return [item.record() for item in findings]


def summary(findings: Sequence[Finding]) -> str:
    failing = sum(1 for item in findings if item.failing)
    warnings = sum(1 for item in findings if item.severity == "warning" and not item.waived)
    waived = sum(1 for item in findings if item.waived)
    return f"policy: {failing} error(s), {warnings} warning(s), {waived} waived"


def markdown(findings: Sequence[Finding]) -> list[str]:
    """The audit's policy section: the counts per rule, then each violation."""
    lines = ["", "### Policy", "", summary(findings) + ".", ""]
    if not findings:
        return lines
    lines += ["| rule | error | warning | waived |", "|---|---|---|---|"]
    for rule, row in counts(findings).items():
        lines.append(f"| {md_code(rule)} | {row.get('error', 0)} | {row.get('warning', 0)} | {row.get('waived', 0)} |")
    lines.append("")
    for item in findings:
        waiver = f" (waived: {md_text(item.waived)})" if item.waived else ""
        lines.append(f"- {item.severity} {md_code(item.rule)} {md_code(item.key)}: {md_text(item.message)}{waiver}")
    return lines
