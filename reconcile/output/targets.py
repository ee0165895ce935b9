"""Several targets' runs → one text summary and one Markdown summary, a section per target.

Each target's run fills its `TargetOutcome` as it goes (its exit code, the error that ended it,
its report's counts, its Markdown); the summaries are rendered once every target has finished.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconcile.errors import ExitCode
from reconcile.output.escape import md_code, md_text, text_block

_RESULTS: dict[int, str] = {
    ExitCode.OK: "ok",
    ExitCode.FAILURE: "failed",
    ExitCode.CHANGES_PENDING: "changes pending",
    ExitCode.SAFETY_THRESHOLD: "refused (--max-changes)",
    ExitCode.OVERWRITTEN: "overwrote a change by someone else",
    ExitCode.USAGE: "usage error",
}
_HEADING = re.compile(r"^(#{1,4}) ")


@dataclass
class TargetOutcome:
    """What one target's run leaves for the combined summaries."""

    name: str
    code: int = ExitCode.OK
    error: str = ""  # what ended the run early, if anything did
    counts: Mapping[str, int] = field(default_factory=dict)  # keys by outcome, from its report
    markdown: list[str] = field(default_factory=list)  # its Markdown summary (plan, apply, audit)
    diagnostics: list[dict[str, Any]] = field(default_factory=list)  # `validate --format json`

    @property
    def result(self) -> str:
        return _RESULTS.get(self.code, "failed")

    @property
    def details(self) -> str:
        return self.error or ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in self.counts.items())


def render_targets_text(command: str, outcomes: Sequence[TargetOutcome], code: int) -> str:
    width = max(len(outcome.name) for outcome in outcomes)
    lines = [f"{command}: {len(outcomes)} target(s), exit {code}"]
    for outcome in outcomes:
        details = f"  {outcome.details}" if outcome.details else ""
        lines.append(f"  {outcome.name:<{width}}  exit {outcome.code}  {outcome.result}{details}")
    return text_block(lines)  # names from the config file, error texts from the server


def _demoted(markdown: str, levels: int) -> str:
    """A target's own summary as a subsection: headings down `levels` (code blocks untouched)."""
    lines, fenced = [], False
    for line in markdown.splitlines():
        fenced ^= line.startswith("```")
        lines.append("#" * levels + line if not fenced and _HEADING.match(line) else line)
    return "\n".join(lines) + "\n"


def render_targets_markdown(command: str, outcomes: Sequence[TargetOutcome], code: int) -> str:
    lines = [
        f"## descope-reconcile {command}: {len(outcomes)} target(s), exit {code}",
        "",
        "| target | exit | result | details |",
        "|---|---|---|---|",
    ]
    for outcome in outcomes:
        result = outcome.result if outcome.code in (ExitCode.OK, ExitCode.CHANGES_PENDING) else f"**{outcome.result}**"
        lines.append(f"| {md_code(outcome.name)} | {outcome.code} | {result} | {md_text(outcome.details) or '-'} |")
    for outcome in outcomes:
        if outcome.markdown:
            lines += ["", f"### Target {md_code(outcome.name)}", ""]
            lines += [_demoted(markdown, 2) for markdown in outcome.markdown]
    return "\n".join(lines) + "\n"
