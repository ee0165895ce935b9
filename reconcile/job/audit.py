"""`audit`: a read-only audit of the whole project (managed and unmanaged keys, drift, risks, who
changed what), in Markdown and JSON."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import partial
from pathlib import Path

from reconcile.config.targets import TargetConfig
from reconcile.desired.loader import DEFAULT_MAX_FILE_BYTES
from reconcile.errors import ExitCode, UsageError
from reconcile.files import write_private_atomically
from reconcile.job.clock import RunClock, bulk
from reconcile.job.connect import connect
from reconcile.job.fetch import fetch_keys
from reconcile.job.load import load_valid
from reconcile.job.options import Outputs, PolicyChoice, Remote, per_target
from reconcile.job.outputs import check_outputs, desired_inputs, summary_output
from reconcile.job.policing import AuditPolicy, audit_policy, configured
from reconcile.job.result import Output, Result, settled_async
from reconcile.job.trail import TrailSettings, attribute_plan
from reconcile.model import DesiredState
from reconcile.output.audit import build_audit, render_audit
from reconcile.output.escape import json_chunks
from reconcile.plan.diff import compute_plan


@dataclass(frozen=True)
class AuditOptions:
    paths: tuple[str, ...]  # none: every key is unmanaged
    remote: Remote
    trail: TrailSettings
    outputs: Outputs  # its Markdown summary
    max_file_size: int = DEFAULT_MAX_FILE_BYTES
    out: Path | None = None  # the audit as JSON
    expiring_within: int = 30  # days
    fail_on_drift: bool = False
    policy: PolicyChoice = field(default_factory=PolicyChoice)
    checks: AuditPolicy = field(default_factory=AuditPolicy)  # --sarif, --fail-on, --journal

    def for_target(self, target: TargetConfig) -> AuditOptions:
        name = target.name
        checks = replace(
            self.checks, sarif=per_target(self.checks.sarif, name), journal=per_target(self.checks.journal, name)
        )
        return replace(
            self,
            paths=target.paths,
            remote=self.remote.for_target(target),
            trail=self.trail.for_target(target),
            out=per_target(self.out, name),
            policy=self.policy.for_target(target),
            checks=checks,
        )

    def files(self) -> Mapping[str, Path | None]:
        return {"out": self.out, "journal": self.checks.journal, "sarif": self.checks.sarif}


async def _audit(options: AuditOptions, output: Output) -> Result:
    clock = RunClock("audit")
    with bulk():
        loaded = load_valid(options.paths, output, max_bytes=options.max_file_size) if options.paths else None
        desired = loaded.state if loaded else DesiredState(keys=())
        policy = configured(options.policy, output) if options.policy.wanted else None
        if policy is None and (options.checks.fail_on or options.checks.sarif):
            # Fail closed: a scheduled `audit --fail-on error` whose policy went missing must not pass.
            raise UsageError(
                "--fail-on and --sarif need a policy (--policy FILE, or the config's `policy:` for this target): "
                "without one nothing is checked"
            )
        named = [("--out", options.out), *summary_output(options.outputs.summary), ("--sarif", options.checks.sarif)]
        check_outputs(named, desired_inputs(loaded))
        async with connect(options.remote) as (session, target):
            observed = await fetch_keys(session)
            result = compute_plan(desired, observed)
            trail = await attribute_plan(session, result, options.trail)
    within = timedelta(days=options.expiring_within)
    findings = build_audit(result, observed, now=clock.started, expiring_within=within, trail=trail)
    markdown = render_audit(findings, project_id=target.project_id)
    violations = audit_policy(policy, options.checks, findings, observed, desired=desired, now=clock.started)
    markdown += violations.markdown
    output.show(markdown)
    if options.out:
        write_private_atomically(options.out, json_chunks(findings))
    drifted = findings["drift"] or findings["missing"]  # a desired key the project lacks is drift too
    code = ExitCode.CHANGES_PENDING if options.fail_on_drift and drifted else ExitCode.OK
    if violations.failing:
        code = ExitCode.FAILURE
    return output.result(code, markdown=markdown)


async def run(options: AuditOptions) -> Result:
    return await settled_async(partial(_audit, options))
