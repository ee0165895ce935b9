"""The policy in a run: which one it uses (`--policy FILE`, or its config target's), what it says of
a plan's changes (plan shows it, apply refuses an introduced error), of the live project (audit) and
which keys `rotate --due` rotates. Imported by a use case only when a policy may apply: `validate
desired/` without one imports none of it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconcile.errors import PolicyRefused, UsageError, ValidationFailed
from reconcile.job.options import PolicyChoice
from reconcile.job.result import Output

if TYPE_CHECKING:
    from reconcile.model import DesiredState
    from reconcile.plan.diff import Plan
    from reconcile.policy.findings import Finding
    from reconcile.policy.policy import Policy


def configured(choice: PolicyChoice, output: Output) -> Policy | None:
    """`--policy FILE`, else the target's policy from the config; None when neither says one."""
    if choice.file is None:
        return choice.target
    if choice.in_target:
        raise UsageError("--policy is for runs without a config: the config's `policy:` sections say the policy")
    from reconcile.config.policy import load_policy_file  # noqa: PLC0415 (light commands stay light)

    policy, problems = load_policy_file(choice.file)
    if problems:
        output.diagnostics.extend(problems)
        raise ValidationFailed(len(problems))
    return policy


def sarif_log(findings: Sequence[Finding], policy: Policy | None) -> dict[str, Any]:
    from reconcile.output.sarif import render_sarif  # noqa: PLC0415

    rules = policy.catalog() if policy else []
    levels = {rule.id: rule.severity for rule in (policy.rules if policy else ())}
    levels.update({rule.id: rule.severity for rule in (policy.custom if policy else ())})
    levels["waiver-unused"] = "warning"
    return render_sarif(findings, rules, levels)


@dataclass(frozen=True)
class ChangesVerdict:
    """What the policy says of a plan's changes: apply's refusal, if any, and the report's section."""

    refusal: PolicyRefused | None = None  # what apply refuses
    section: dict[str, Any] | None = None  # the report's `policy`

    def add_to(self, report: dict[str, Any]) -> None:
        if self.section is not None:
            report["policy"] = self.section


def check_changes(
    policy: Policy | None, plan: Plan, observed: Iterable[Mapping[str, Any]], now: datetime, output: Output
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
        output.show("\n".join(["", "Policy:", *(f"  {line}" for line in text_lines(findings)), summary(findings), ""]))
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
class AuditPolicy:
    """What audit asks of the policy: where its SARIF goes, which severities fail the run, and the
    journal of earlier rotations (a key's secret is as old as its last rotation)."""

    sarif: Path | None = None
    fail_on: tuple[str, ...] = ()
    journal: Path | None = None


@dataclass(frozen=True)
class AuditViolations:
    """The audit's policy section in Markdown, and how many violations fail the run (--fail-on)."""

    markdown: str = ""
    failing: int = 0


def audit_policy(  # noqa: PLR0913 (two keyword-only facts of the run)
    policy: Policy | None,
    wanted: AuditPolicy,
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
    from reconcile.output.escape import json_chunks, text_block  # noqa: PLC0415
    from reconcile.policy.findings import counts, failing  # noqa: PLC0415
    from reconcile.policy.rotation import last_rotations  # noqa: PLC0415

    journal = wanted.journal
    rotated = last_rotations(read_records(journal)) if journal and journal.is_file() else {}
    findings = check_live(policy, observed, desired, now, rotated)
    audit["policy"] = {"counts": counts(findings), "violations": rendering.records(findings)}
    if wanted.sarif:
        write_private_atomically(wanted.sarif, json_chunks(sarif_log(findings, policy)))
    return AuditViolations(text_block(rendering.markdown(findings)), len(failing(findings, wanted.fail_on)))


def rotation_age(choice: PolicyChoice, output: Output) -> int:
    """`rotate --due`: the policy's `max-key-age` in days."""
    policy = configured(choice, output)
    rule = next((rule for rule in (policy.rules if policy else ()) if rule.id == "max-key-age"), None)
    if rule is None:
        raise UsageError("--due needs a policy with `max-key-age` (--policy FILE, or the config's `policy:`)")
    return int(rule.settings["days"])
