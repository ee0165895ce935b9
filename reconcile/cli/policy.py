"""The policy on the command line: `--policy FILE`, which policy a run uses (that file, or its target's
from the config), and its findings printed in the format asked for. Imported by a command only when a
policy may apply: `validate desired/` without one imports none of it."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from reconcile.cli.common import print_diagnostics, show
from reconcile.cli.context import current_target
from reconcile.errors import ExitCode, PolicyRefused, UsageError, ValidationFailed

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from reconcile.job.load import LoadedDesired
    from reconcile.model import DesiredState
    from reconcile.plan.diff import Plan
    from reconcile.policy.findings import Finding
    from reconcile.policy.policy import Policy

log = logging.getLogger("reconcile")
SEVERITY_CHOICES = ("error", "warning")


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


@dataclass(frozen=True)
class ChangesVerdict:
    """What the policy says of a plan's changes: apply's refusal, if any, and the report's section."""

    refusal: PolicyRefused | None = None  # what apply refuses
    section: dict[str, Any] | None = None  # the report's `policy`

    def add_to(self, report: dict[str, Any]) -> None:
        if self.section is not None:
            report["policy"] = self.section


def check_changes(
    args: argparse.Namespace, policy: Policy | None, plan: Plan, observed: Iterable[Mapping[str, Any]], now: datetime
) -> ChangesVerdict:
    """plan and apply: show the violations the changes would introduce and those the keys already have;
    the refusal apply makes when a change introduces an error no waiver covers."""
    if policy is None:
        return ChangesVerdict()
    from reconcile.job.policy import check_plan  # noqa: PLC0415
    from reconcile.output.policy import records, summary, text_lines  # noqa: PLC0415
    from reconcile.policy.findings import counts  # noqa: PLC0415

    findings = check_plan(policy, plan, observed, now)
    if findings:
        show(args, "\n".join(["", "Policy:", *(f"  {line}" for line in text_lines(findings)), summary(findings), ""]))
    blocking = sorted({item.key for item in findings if item.status == "introduced" and item.failing})
    section = {"counts": counts(findings), "violations": records(findings), "refused": bool(blocking)}
    if not blocking:
        return ChangesVerdict(None, section)
    refusal = PolicyRefused(
        f"policy: the changes to {len(blocking)} key(s) would introduce error-level violations "
        f"({', '.join(blocking)}): fix the desired files, or waive the rule beside the key (`waivers:`)"
    )
    return ChangesVerdict(refusal, section)


@dataclass(frozen=True)
class AuditViolations:
    """The audit's policy section in Markdown, and how many violations fail the run (--fail-on)."""

    markdown: str = ""
    failing: int = 0


def audit_policy(
    args: argparse.Namespace,
    policy: Policy | None,
    audit: dict[str, Any],
    observed: Iterable[Mapping[str, Any]],
    *,
    desired: DesiredState,
    now: datetime,
) -> AuditViolations:
    """audit: every key of the project against the policy (unmanaged ones too): a `policy` section in
    the JSON (counts per rule, each violation), in the Markdown, and `--sarif FILE`."""
    if policy is None:
        return AuditViolations()
    from reconcile.apply.journal import read_records  # noqa: PLC0415
    from reconcile.files import write_private_atomically  # noqa: PLC0415
    from reconcile.job.policy import check_live  # noqa: PLC0415
    from reconcile.output import policy as rendering  # noqa: PLC0415
    from reconcile.output.escape import json_document, text_block  # noqa: PLC0415
    from reconcile.policy.findings import counts, failing  # noqa: PLC0415
    from reconcile.policy.rotation import last_rotations  # noqa: PLC0415

    rotated = last_rotations(read_records(args.journal)) if args.journal and args.journal.is_file() else {}
    findings = check_live(policy, observed, desired, now, rotated)
    audit["policy"] = {"counts": counts(findings), "violations": rendering.records(findings)}
    if args.sarif:
        write_private_atomically(args.sarif, json_document(sarif_log(findings, policy)))
    return AuditViolations(text_block(rendering.markdown(findings)), len(failing(findings, args.fail_on)))


def rotation_age(args: argparse.Namespace) -> int:
    """`rotate --due`: the policy's `max-key-age` in days."""
    policy = configured(args)
    rule = next((rule for rule in (policy.rules if policy else ()) if rule.id == "max-key-age"), None)
    if rule is None:
        raise UsageError("--due needs a policy with `max-key-age` (--policy FILE, or the config's `policy:`)")
    return int(rule.settings["days"])


def fail_on(text: str) -> tuple[str, ...]:
    """`--fail-on error,warning` → the severities that fail a run; `none` for none."""
    words = tuple(dict.fromkeys(word.strip() for word in text.split(",") if word.strip()))
    if words == ("none",):
        return ()
    unknown = [word for word in words if word not in SEVERITY_CHOICES]
    if unknown or not words:
        raise ValueError(f"expected error, warning (comma-separated) or none, got {text!r}")
    return words
