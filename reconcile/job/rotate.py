"""`rotate`: a new secret for exactly the named keys, delivered to the sinks; the old ones stop working."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from reconcile.config.targets import TargetConfig
from reconcile.errors import ExitCode, UsageError
from reconcile.job import changes as changing
from reconcile.job.clock import RunClock
from reconcile.job.connect import connect
from reconcile.job.execute import ApplyOutcome, Writer, execute
from reconcile.job.fetch import load_keys
from reconcile.job.options import Changes, Outputs, Remote, json_settings
from reconcile.job.report import RunRecord, make_report
from reconcile.job.result import Output, Result, settled_async
from reconcile.output.markdown import render_summary
from reconcile.output.text import render_plan, render_results
from reconcile.plan.diff import plan_rotation


@dataclass(frozen=True)
class RotateOptions:
    remote: Remote
    outputs: Outputs
    changes: Changes
    ids: tuple[str, ...]  # the keys to rotate
    dry_run: bool = False  # say what would rotate; send nothing

    def for_target(self, target: TargetConfig) -> RotateOptions:
        return replace(
            self,
            remote=self.remote.for_target(target),
            outputs=self.outputs.for_target(target.name),
            changes=self.changes.for_target(target),
        )

    def files(self) -> Mapping[str, Path | None]:
        return {"report": self.outputs.report, "journal": self.changes.journal, "secrets_out": self.changes.secrets_out}

    def settings(self) -> dict[str, Any]:
        return json_settings({**self.remote.settings(), **self.changes.settings()})


async def _rotate(options: RotateOptions, output: Output) -> Result:
    if not options.ids:
        raise UsageError("--ids names no key")
    clock = RunClock("rotate")
    target_name = options.remote.target.name if options.remote.target else None
    recover = changing.recovery(options.changes, options.outputs, target_name)
    outcome: ApplyOutcome | None = None
    if not options.dry_run:
        changing.check_change_outputs(options.changes, options.outputs)
    async with connect(options.remote, concurrency=options.changes.concurrency) as (session, target):
        with clock.phase("fetch"):
            found = await load_keys(session, options.ids)
        plan = plan_rotation(list(options.ids), found)
        output.show(render_plan(plan, verbose=True))
        journal = changing.journal_file(options.changes, options.outputs)
        unsettled = changing.unsettled_secrets(journal, [key for key in found.values() if key is not None])
        changing.warn_unsettled(unsettled, recover)
        if options.dry_run:
            return output.result(ExitCode.FAILURE if plan.errors else ExitCode.OK)
        changing.require_sinks(options.changes, options.outputs, plan)  # a usage error (64), before any write
        if plan.changes:
            with clock.phase("rotate"):
                writer = Writer(options.changes, journal, clock.run_id, target.project_id, recover)
                outcome = await execute(writer, session, plan, recheck=False)
        output.show(render_results(outcome.results if outcome else [], plan.errors, recover, title="Rotate"))
        record = RunRecord(clock, session.client, target.project_id, plan, options.settings(), outcome=outcome)
        report = make_report(replace(record, unsettled=unsettled, recovery=recover))
    if session.interrupted:
        output.say(logging.ERROR, changing.INTERRUPTED)
    code = changing.exit_code(plan, outcome, interrupted=session.interrupted)
    return output.result(code, report=report, markdown=render_summary(report), clock=clock)


async def run(options: RotateOptions) -> Result:
    return await settled_async(partial(_rotate, options))
