"""`plan`: what apply would change, read-only; exit 2 when there are changes. The plan may be saved
for `apply --plan`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconcile.config.targets import TargetConfig
from reconcile.desired.loader import DEFAULT_MAX_FILE_BYTES
from reconcile.errors import ExitCode, Interrupted, UsageError
from reconcile.files import write_private_atomically
from reconcile.job.clock import RunClock, bulk
from reconcile.job.connect import Target, connect, prepare
from reconcile.job.declared import checking_desired, refuse_undeclared
from reconcile.job.fetch import fetch_keys, interrupted_plan
from reconcile.job.load import LoadedDesired, load_valid
from reconcile.job.options import NO_PATHS, Outputs, PolicyChoice, Remote, json_settings, per_target
from reconcile.job.outputs import check_outputs, desired_inputs, summary_output
from reconcile.job.policing import ChangesVerdict, check_changes, configured
from reconcile.job.report import RunRecord, make_report
from reconcile.job.result import Output, Result, settled_async
from reconcile.job.session import Session
from reconcile.job.trail import TrailSettings, attribute_plan
from reconcile.output.escape import json_chunks
from reconcile.output.markdown import render_summary
from reconcile.output.report import git_state
from reconcile.output.text import render_plan
from reconcile.plan import saved as savedplan
from reconcile.plan.diff import Plan, compute_plan
from reconcile.plan.limit import ChangeLimit
from reconcile.plan.safety import Safety, assess
from reconcile.trail.findings import TrailFindings

if TYPE_CHECKING:
    from reconcile.policy.policy import Policy

log = logging.getLogger("reconcile")
Observed = list[dict[str, Any]]


@dataclass(frozen=True)
class PlanOptions:
    paths: tuple[str, ...]
    remote: Remote
    trail: TrailSettings
    outputs: Outputs
    max_file_size: int = DEFAULT_MAX_FILE_BYTES
    out: Path | None = None  # the saved plan, for `apply --plan`
    max_changes: ChangeLimit | None = None  # warn when apply would refuse
    verbose: bool = False  # every key in the text, not only the changes
    policy: PolicyChoice = field(default_factory=PolicyChoice)

    def for_target(self, target: TargetConfig) -> PlanOptions:
        return replace(
            self,
            paths=target.paths,
            remote=self.remote.for_target(target),
            trail=self.trail.for_target(target),
            outputs=self.outputs.for_target(target.name),
            out=per_target(self.out, target.name),
            max_changes=target.settings.get("maxChanges", self.max_changes),
            policy=self.policy.for_target(target),
        )

    def files(self) -> Mapping[str, Path | None]:
        return {"report": self.outputs.report, "out": self.out}

    def settings(self) -> dict[str, Any]:
        trail = {
            "attribution": self.trail.search,
            "attributionPages": self.trail.pages,
            "auditTenant": self.trail.tenant,
        }
        return json_settings({**self.remote.settings(), "maxChanges": self.max_changes, **trail})


def _save(  # noqa: PLR0913 (each is one field of the saved plan)
    out: Path, result: Plan, target: Target, loaded: LoadedDesired, clock: RunClock, *, policy: bool
) -> None:
    saved = savedplan.save(
        result,
        project_id=target.project_id,
        base_url=target.base_url,
        files=loaded.files,
        created=clock.started,
        policy_checked=policy,
    )
    write_private_atomically(out, json_chunks(saved))
    log.info("plan saved to %s (%d change(s))", out, len(result.changes))
    if result.errors:
        log.error("error: the saved plan has %d key(s) in error: `apply --plan` will refuse it", len(result.errors))


async def _compare(
    options: PlanOptions, output: Output, session: Session, loaded: LoadedDesired, clock: RunClock
) -> tuple[Plan, TrailFindings | None, Observed | None]:
    """Read the project, diff, look up who changed what, show the plan (None: interrupted before the read)."""
    async with checking_desired(session, loaded.state) as declarations:
        try:
            with clock.phase("fetch"):
                observed = await fetch_keys(session)
        except Interrupted:
            return interrupted_plan(loaded.state.keys), None, None
        refuse_undeclared(await declarations.check(observed), output)
    with clock.phase("diff"):
        result = compute_plan(loaded.state, observed)
    with clock.phase("attribution"):
        trail = await attribute_plan(session, result, options.trail)
    output.show(render_plan(result, verbose=options.verbose, trail=trail))
    return result, trail, observed


def _verdicts(  # noqa: PLR0913 (keyword-only: the plan, what was read, and when)
    options: PlanOptions, policy: Policy | None, output: Output, *, result: Plan, observed: Observed, clock: RunClock
) -> tuple[ChangesVerdict, Safety]:
    """What apply would say of this plan: the policy's refusal, the safety threshold's."""
    verdict = check_changes(policy, result, observed, clock.started, output)
    if verdict.refusal is not None:
        output.show(f"Warning: apply would refuse this plan (exit 1): {verdict.refusal}.\n")
    safety = assess(result, options.max_changes)
    if safety.exceeded:
        output.show(f"Warning: apply would refuse this plan (exit 3): {safety.describe()}.\n")
    return verdict, safety


async def _plan(options: PlanOptions, output: Output) -> Result:
    if not options.paths:
        raise UsageError(NO_PATHS)
    clock = RunClock("plan")
    prepare()
    with bulk():
        loaded = load_valid(options.paths, output, max_bytes=options.max_file_size, clock=clock)
        policy = configured(options.policy, output) if options.policy.wanted else None
        # no network call at all after a validation error, nor when a result could not be written
        # (or would overwrite a desired file)
        named = [("--out", options.out), ("--report", options.outputs.report)]
        check_outputs([*named, *summary_output(options.outputs.summary)], desired_inputs(loaded))
        async with connect(options.remote) as (session, target):
            result, trail, observed = await _compare(options, output, session, loaded, clock)
            verdict, safety = ChangesVerdict(), None
            if observed is not None:  # the project was read: the plan is whole
                verdict, safety = _verdicts(options, policy, output, result=result, observed=observed, clock=clock)
                if options.out:
                    _save(options.out, result, target, loaded, clock, policy=policy is not None)
            git = git_state([file.path for file in loaded.files])
            record = RunRecord(
                clock, session.client, target.project_id, result, options.settings(), files=loaded.files, git=git
            )
            report = make_report(replace(record, interrupted=session.interrupted, safety=safety, trail=trail))
        verdict.add_to(report)
    if session.interrupted:
        output.say(logging.ERROR, "interrupted: the request in flight was cancelled; the plan is incomplete")
        code = ExitCode.FAILURE
    else:
        output.error_lines([f"{item.key.label}: {item.outcome.value}: {item.reason}" for item in result.errors])
        code = ExitCode.FAILURE if result.errors else ExitCode.CHANGES_PENDING if result.changes else ExitCode.OK
    return output.result(code, report=report, markdown=render_summary(report), clock=clock)


async def run(options: PlanOptions) -> Result:
    return await settled_async(partial(_plan, options))
