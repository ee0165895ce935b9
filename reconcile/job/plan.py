"""`plan`: what apply would change, read-only; exit 2 when there are changes. The plan may be saved
for `apply --plan`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from reconcile.config.targets import TargetConfig
from reconcile.desired.loader import DEFAULT_MAX_FILE_BYTES
from reconcile.errors import ExitCode, Interrupted, UsageError
from reconcile.files import write_private_atomically
from reconcile.job.clock import RunClock, bulk
from reconcile.job.connect import Target, connect
from reconcile.job.fetch import fetch_keys, interrupted_plan
from reconcile.job.load import LoadedDesired, load_valid
from reconcile.job.options import NO_PATHS, Outputs, Remote, json_settings, per_target
from reconcile.job.outputs import check_outputs, desired_inputs, summary_output
from reconcile.job.report import RunRecord, make_report
from reconcile.job.result import Output, Result, settled_async
from reconcile.job.session import Session
from reconcile.job.trail import TrailSettings, attribute_plan
from reconcile.output.escape import json_document
from reconcile.output.markdown import render_summary
from reconcile.output.text import render_plan
from reconcile.plan import saved as savedplan
from reconcile.plan.diff import Plan, compute_plan
from reconcile.plan.limit import ChangeLimit
from reconcile.plan.safety import Safety, assess
from reconcile.trail.findings import TrailFindings

log = logging.getLogger("reconcile")


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

    def for_target(self, target: TargetConfig) -> PlanOptions:
        return replace(
            self,
            paths=target.paths,
            remote=self.remote.for_target(target),
            outputs=self.outputs.for_target(target.name),
            out=per_target(self.out, target.name),
            max_changes=target.settings.get("maxChanges", self.max_changes),
        )

    def files(self) -> Mapping[str, Path | None]:
        return {"report": self.outputs.report, "out": self.out}

    def settings(self) -> dict[str, Any]:
        trail = {"attribution": self.trail.search, "attributionPages": self.trail.pages}
        return json_settings({**self.remote.settings(), "maxChanges": self.max_changes, **trail})


def _save(out: Path, result: Plan, target: Target, loaded: LoadedDesired, clock: RunClock) -> None:
    saved = savedplan.save(
        result, project_id=target.project_id, base_url=target.base_url, files=loaded.files, created=clock.started
    )
    write_private_atomically(out, json_document(saved))
    log.info("plan saved to %s (%d change(s))", out, len(result.changes))
    if result.errors:
        log.error("error: the saved plan has %d key(s) in error: `apply --plan` will refuse it", len(result.errors))


async def _compare(
    options: PlanOptions, output: Output, session: Session, loaded: LoadedDesired, clock: RunClock
) -> tuple[Plan, TrailFindings | None, Safety | None]:
    """Read the project, diff, look up who changed what; show the plan and whether apply would refuse it."""
    try:
        with clock.phase("fetch"):
            observed = await fetch_keys(session)
    except Interrupted:
        return interrupted_plan(loaded.state.keys), None, None
    with clock.phase("diff"):
        result = compute_plan(loaded.state, observed)
    with clock.phase("attribution"):
        trail = await attribute_plan(session, result, options.trail)
    output.show(render_plan(result, verbose=options.verbose, trail=trail))
    safety = assess(result, options.max_changes)
    if safety.exceeded:
        output.show(f"Warning: apply would refuse this plan (exit 3): {safety.describe()}.\n")
    return result, trail, safety


async def _plan(options: PlanOptions, output: Output) -> Result:
    if not options.paths:
        raise UsageError(NO_PATHS)
    clock = RunClock("plan")
    with bulk():
        loaded = load_valid(options.paths, output, max_bytes=options.max_file_size, clock=clock)
        # no network call at all after a validation error, nor when a result could not be written
        # (or would overwrite a desired file)
        named = [("--out", options.out), ("--report", options.outputs.report)]
        check_outputs([*named, *summary_output(options.outputs.summary)], desired_inputs(loaded))
        async with connect(options.remote) as (session, target):
            result, trail, safety = await _compare(options, output, session, loaded, clock)
            if options.out and trail is not None:  # the project was read: the plan is whole
                _save(options.out, result, target, loaded, clock)
            record = RunRecord(clock, session.client, target.project_id, result, options.settings(), files=loaded.files)
            report = make_report(replace(record, interrupted=session.interrupted, safety=safety, trail=trail))
    if session.interrupted:
        output.say(logging.ERROR, "interrupted: the request in flight was cancelled; the plan is incomplete")
        code = ExitCode.FAILURE
    else:
        output.error_lines([f"{item.key.id}: {item.outcome.value}: {item.reason}" for item in result.errors])
        code = ExitCode.FAILURE if result.errors else ExitCode.CHANGES_PENDING if result.changes else ExitCode.OK
    return output.result(code, report=report, markdown=render_summary(report), clock=clock)


async def run(options: PlanOptions) -> Result:
    return await settled_async(partial(_plan, options))
