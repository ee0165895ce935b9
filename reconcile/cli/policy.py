"""The policy on the command line: `--policy FILE` and `--fail-on`, typed, and a run's policy
findings printed in the format asked for. Imported only when a policy was checked (or for SARIF):
`validate desired/` without one imports none of it."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reconcile.output.targets import TargetOutcome
    from reconcile.policy.findings import Finding
    from reconcile.policy.policy import Policy

SEVERITY_CHOICES = ("error", "warning")


def print_findings(
    findings: Sequence[Finding], policy: Policy | None, output_format: str, kept: TargetOutcome | None = None
) -> None:
    """Like the diagnostics: text on stderr, annotations or one JSON document on stdout (within a
    target's run, JSON and SARIF are kept for the combined output)."""
    from reconcile.job.policing import sarif_log  # noqa: PLC0415
    from reconcile.output import policy as rendering  # noqa: PLC0415
    from reconcile.output.escape import json_value  # noqa: PLC0415

    if output_format == "json":
        if kept is not None:
            kept.diagnostics.extend(rendering.records(findings))
        else:
            print(json_value(rendering.records(findings), indent=2))
    elif output_format == "sarif":
        document = sarif_log(findings, policy)
        if kept is not None:
            kept.diagnostics.append({"sarif": document})
        else:
            print(json_value(document, indent=2))
    elif output_format == "github":
        for line in rendering.workflow_commands(findings):
            print(line)
    else:
        for line in rendering.text_lines(findings):
            print(line, file=sys.stderr)


def fail_on(text: str) -> tuple[str, ...]:
    """`--fail-on error,warning` → the severities that fail a run; `none` for none."""
    words = tuple(dict.fromkeys(word.strip() for word in text.split(",") if word.strip()))
    if words == ("none",):
        return ()
    unknown = [word for word in words if word not in SEVERITY_CHOICES]
    if unknown or not words:
        raise ValueError(f"expected error, warning (comma-separated) or none, got {text!r}")
    return words
