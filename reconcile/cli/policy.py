"""The policy on the command line: `--policy FILE`, which policy a run uses (that file, or its target's
from the config), and its findings printed in the format asked for. Imported by a command only when a
policy may apply: `validate desired/` without one imports none of it."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconcile.cli.common import print_diagnostics, show
from reconcile.cli.context import current_target
from reconcile.errors import ExitCode, UsageError, ValidationFailed

if TYPE_CHECKING:
    from reconcile.job.load import LoadedDesired
    from reconcile.policy.findings import Finding
    from reconcile.policy.policy import Policy

log = logging.getLogger("reconcile")
SEVERITY_CHOICES = ("error", "warning")


def add_policy_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--policy",
        type=Path,
        metavar="FILE",
        help="the rules keys must follow (docs/policy.md), for runs without a config; with one, its `policy:`",
    )


def configured(args: argparse.Namespace) -> Policy | None:
    """`--policy FILE`, else the target's policy from the config; None when neither says one."""
    target = getattr(args, "target_config", None)
    if args.policy is None:
        return target.policy if target is not None else None
    if target is not None:
        raise UsageError("--policy is for runs without a config: the config's `policy:` sections say the policy")
    from reconcile.config.policy import load_policy_file  # noqa: PLC0415 (light commands stay light)

    policy, problems = load_policy_file(args.policy)
    if problems:
        print_diagnostics(problems, getattr(args, "format", "text"))
        raise ValidationFailed(len(problems))
    return policy


def wanted(args: argparse.Namespace) -> bool:
    """Whether this run may have a policy, without reading it (so that nothing is imported for none)."""
    target = getattr(args, "target_config", None)
    return args.policy is not None or (target is not None and target.policy is not None)


def sarif_log(findings: Sequence[Finding], policy: Policy | None) -> dict[str, Any]:
    from reconcile.output.sarif import render_sarif  # noqa: PLC0415

    rules = policy.catalog() if policy else []
    levels = {rule.id: rule.severity for rule in (policy.rules if policy else ())}
    levels.update({rule.id: rule.severity for rule in (policy.custom if policy else ())})
    levels["waiver-unused"] = "warning"
    return render_sarif(findings, rules, levels)


def print_findings(findings: Sequence[Finding], policy: Policy | None, output_format: str) -> None:
    """Like the diagnostics: text on stderr, annotations or one JSON document on stdout."""
    from reconcile.output import policy as rendering  # noqa: PLC0415
    from reconcile.output.escape import json_value  # noqa: PLC0415

    target = current_target()
    if output_format == "json":
        if target is not None:
            target.diagnostics.extend(rendering.records(findings))
        else:
            print(json_value(rendering.records(findings), indent=2))
    elif output_format == "sarif":
        document = sarif_log(findings, policy)
        if target is not None:
            target.diagnostics.append({"sarif": document})
        else:
            print(json_value(document, indent=2))
    elif output_format == "github":
        for line in rendering.workflow_commands(findings):
            print(line)
    else:
        for line in rendering.text_lines(findings):
            print(line, file=sys.stderr)


def check_files(args: argparse.Namespace, policy: Policy, loaded: LoadedDesired) -> int:
    """`validate`: every desired key against the policy; exit 1 on an error no waiver covers."""
    from reconcile.job.policy import check_desired  # noqa: PLC0415
    from reconcile.output.policy import summary  # noqa: PLC0415

    findings = check_desired(policy, loaded, datetime.now(UTC))
    print_findings(findings, policy, args.format)
    failing = [item for item in findings if item.failing]
    log.info("%d file(s), %d key(s): %s", len(loaded.files), len(loaded.state.keys), summary(findings))
    return ExitCode.FAILURE if failing else ExitCode.OK


def show_plan_findings(args: argparse.Namespace, findings: Sequence[Finding]) -> None:
    """plan and apply: the violations the changes would introduce, and those already there."""
    if not findings:
        return
    from reconcile.output.policy import summary, text_lines  # noqa: PLC0415

    show(args, "\n".join(["", "Policy:", *(f"  {line}" for line in text_lines(findings)), summary(findings), ""]))


def fail_on(text: str) -> tuple[str, ...]:
    """`--fail-on error,warning` → the severities that fail a run; `none` for none."""
    words = tuple(dict.fromkeys(word.strip() for word in text.split(",") if word.strip()))
    if words == ("none",):
        return ()
    unknown = [word for word in words if word not in SEVERITY_CHOICES]
    if unknown or not words:
        raise ValueError(f"expected error, warning (comma-separated) or none, got {text!r}")
    return words
