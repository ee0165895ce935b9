"""One handler per command. Each runs the steps of reconcile.job and decides what people see."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

from reconcile.apply.executor import Journal
from reconcile.apply.retry import Tally
from reconcile.client.descope import DescopeClient, base_url_for, credentials_from_env
from reconcile.client.redact import redactor
from reconcile.desired.loader import Diagnostic, ParsedFile, parse_text
from reconcile.desired.validation import build_desired_state
from reconcile.errors import (
    ConfigError,
    ExitCode,
    NotFoundError,
    SafetyThresholdExceeded,
    UsageError,
    ValidationFailed,
)
from reconcile.job import (
    ApplyOutcome,
    LoadedDesired,
    RetrySettings,
    RunClock,
    Session,
    bulk,
    check_safety,
    execute,
    fetch_keys,
    journal_path_for,
    load_desired,
    make_report,
)
from reconcile.model import DesiredState
from reconcile.output.audit import build_audit, render_audit
from reconcile.output.export import render_export
from reconcile.output.markdown import render_summary
from reconcile.output.report import DesiredFile, write_private_atomically, write_report
from reconcile.output.text import render_plan, render_results
from reconcile.plan import saved as savedplan
from reconcile.plan.diff import Outcome, Plan, compute_plan

log = logging.getLogger("reconcile")


def _show(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        sys.stdout.write(text)
        sys.stdout.flush()


def _print_diagnostics(diagnostics: Sequence[Diagnostic], output_format: str) -> None:
    if output_format == "json":
        print(json.dumps([d.__dict__ for d in diagnostics], indent=2))
        return
    for diagnostic in diagnostics:
        if output_format == "github":
            message = diagnostic.message + (f" [{diagnostic.field}]" if diagnostic.field else "")
            escaped = message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
            print(f"::error file={diagnostic.path},line={diagnostic.line},col={diagnostic.column}::{escaped}")
        else:
            print(diagnostic.render(), file=sys.stderr)


def _load(args: argparse.Namespace, output_format: str = "text", clock: RunClock | None = None) -> LoadedDesired:
    """The desired state, or ValidationFailed after printing every problem: then nothing is sent."""
    loaded = load_desired(args.paths, max_bytes=args.max_file_size, clock=clock)
    if loaded.diagnostics:
        _print_diagnostics(loaded.diagnostics, output_format)
        raise ValidationFailed(len(loaded.diagnostics))
    return loaded


def validate(args: argparse.Namespace) -> int:
    loaded = _load(args, args.format)
    if args.format == "json":
        print("[]")
    log.info("%d file(s), %d key(s): valid", len(loaded.files), len(loaded.state.keys))
    return ExitCode.OK


@dataclass(frozen=True)
class Target:
    project_id: str
    base_url: str


@asynccontextmanager
async def _connect(args: argparse.Namespace) -> AsyncIterator[tuple[Session, Target]]:
    credentials = credentials_from_env(os.environ)
    redactor.add(credentials.management_key)
    target = Target(credentials.project_id, base_url_for(credentials.project_id, os.environ))
    connections = getattr(args, "concurrency", 1)
    settings = RetrySettings(args.rate, args.max_attempts, args.key_deadline)
    async with DescopeClient(credentials, target.base_url, timeout=args.timeout, max_connections=connections) as client:
        session = Session(client, settings)
        with session.signals_stop_the_run():
            log.debug("reading access keys from %s", target.base_url)
            yield session, target


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """The run's knobs, for the report (JSON-ready)."""
    names = ("timeout", "rate", "concurrency", "max_attempts", "key_deadline", "max_changes", "force", "plan")
    values = {name: getattr(args, name) for name in names if hasattr(args, name)}
    return {
        name: value if value is None or isinstance(value, int | float | bool) else str(value)
        for name, value in values.items()
    }


def _write_markdown(explicit: Path | None, markdown: str) -> None:
    """`--summary FILE`, else GitHub's step summary when running in Actions (appended, as GitHub expects)."""
    if explicit is not None:
        write_private_atomically(explicit, markdown, mode=0o644)
    elif step_summary := os.environ.get("GITHUB_STEP_SUMMARY"):
        with Path(step_summary).open("a", encoding="utf-8") as handle:
            handle.write(markdown)


def _write_outputs(args: argparse.Namespace, report: Mapping[str, Any], clock: RunClock) -> None:
    with clock.phase("report"):
        if args.report:
            write_report(args.report, report)
            log.info("report written to %s", args.report)
        _write_markdown(args.summary, render_summary(report))
    log.info("timings: %s", clock.describe_timings())


async def plan(args: argparse.Namespace) -> int:
    clock = RunClock("plan")
    with bulk():
        loaded = _load(args, clock=clock)  # any validation error: no network call at all
        async with _connect(args) as (session, target):
            with clock.phase("fetch"):
                observed = await fetch_keys(session)
            with clock.phase("diff"):
                result = compute_plan(loaded.state, observed)
            _show(args, render_plan(result, verbose=args.verbose > 0))
            if args.out:
                saved = savedplan.save(
                    result,
                    observed,
                    project_id=target.project_id,
                    base_url=target.base_url,
                    files=loaded.files,
                    created=clock.started,
                )
                write_private_atomically(args.out, json.dumps(saved, indent=2, ensure_ascii=False) + "\n")
                log.info("plan saved to %s (%d change(s))", args.out, len(result.updates))
            report = make_report(
                clock, loaded.files, session.client, target.project_id, result, settings=_settings(args)
            )
        _write_outputs(args, report, clock)
    if result.errors:
        return ExitCode.FAILURE
    return ExitCode.CHANGES_PENDING if result.updates else ExitCode.OK


def _load_saved_plan(args: argparse.Namespace, project_id: str, clock: RunClock) -> dict[str, Any]:
    try:
        document: dict[str, Any] = json.loads(args.plan.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise savedplan.PlanRejected(f"{args.plan} is not a saved plan (not JSON)") from None
    try:
        savedplan.verify(document, now=clock.started, max_age=args.max_plan_age, project_id=project_id)
    except (KeyError, TypeError, ValueError):
        raise savedplan.PlanRejected(f"{args.plan} is not a complete saved plan") from None
    return document


async def _plan_to_apply(
    args: argparse.Namespace, session: Session, target: Target, clock: RunClock, loaded: LoadedDesired | None
) -> tuple[Plan, tuple[DesiredFile, ...]]:
    """The fresh plan from the desired files, or the saved plan once proven current."""
    saved = _load_saved_plan(args, target.project_id, clock) if args.plan else None
    if saved is not None and loaded is not None:
        savedplan.check_desired(saved, loaded.files)
    with clock.phase("fetch"):
        observed = await fetch_keys(session)
    if saved is None:
        assert loaded is not None
        with clock.phase("diff"):
            return compute_plan(loaded.state, observed), loaded.files
    stale = savedplan.stale_keys(saved, observed)
    if stale:
        shown = ", ".join(stale[:20]) + (f" and {len(stale) - 20} more" if len(stale) > 20 else "")
        raise savedplan.PlanRejected(
            f"{len(stale)} planned key(s) changed since the plan was made: {shown}; plan again"
        )
    return savedplan.to_plan(saved), savedplan.files_of(saved)


async def _execute(args: argparse.Namespace, session: Session, result: Plan, run_id: str) -> ApplyOutcome:
    journal_file = args.journal or (journal_path_for(args.report) if args.report else None)
    journal = Journal(journal_file, run_id) if journal_file else None
    try:
        outcome = await execute(
            session,
            result,
            concurrency=args.concurrency,
            journal=journal,
            progress_every=None if args.quiet else args.progress_every,
        )
    finally:
        if journal is not None:
            journal.close()
    _show(args, render_results(outcome.results))
    if outcome.fatal is not None:
        log.error("error: %s; the run stopped, nothing more was sent", outcome.fatal)
    if outcome.interrupted:
        log.error("interrupted: in-flight calls finished, the rest were not sent")
    return outcome


async def apply(args: argparse.Namespace) -> int:
    if args.plan is None and not args.paths:
        raise UsageError("give the desired PATHs, or --plan FILE")
    clock = RunClock("apply")
    with bulk():
        loaded = _load(args, clock=clock) if args.paths else None  # before any credentials or network
    outcome, refusal = None, None
    async with _connect(args) as (session, target):
        with bulk():
            result, files = await _plan_to_apply(args, session, target, clock, loaded)
        _show(args, render_plan(result, verbose=args.verbose > 0))
        if result.updates:
            try:
                check_safety(result, args.max_changes, force=args.force)  # before any write
            except SafetyThresholdExceeded as error:
                refusal = error  # the report is still written: a refused plan is worth auditing
            else:
                with clock.phase("apply"):
                    outcome = await _execute(args, session, result, clock.run_id)
        report = make_report(
            clock, files, session.client, target.project_id, result, settings=_settings(args), outcome=outcome
        )
    _write_outputs(args, report, clock)
    if refusal is not None:
        raise refusal
    if result.errors or (outcome and any(r.outcome is not Outcome.UPDATED for r in outcome.results)):
        return ExitCode.FAILURE
    return ExitCode.OK


def _check_export(text: str, path: Path) -> list[Diagnostic]:
    """What the server holds that our own validation would refuse (rare: say so, don't hide it)."""
    parsed = parse_text(str(path), text.encode())
    if not isinstance(parsed, ParsedFile):
        return parsed
    return build_desired_state([parsed])[1]


async def _keys_to_export(session: Session, wanted_ids: list[str], tenants: list[str]) -> list[dict[str, Any]]:
    """Named keys one GET each (cheaper than reading the whole project); otherwise one search."""
    unknown: list[str] = []
    if wanted_ids and not tenants:
        keys = []
        for key_id in wanted_ids:
            try:
                load = partial(session.client.load_access_key, key_id)
                keys.append(await session.policy.call(load, Tally(), what=f"load {key_id}"))
            except NotFoundError:
                unknown.append(key_id)
    else:
        search = partial(session.client.search_access_keys, tenant_ids=tenants)
        keys = await session.policy.call(search, Tally(), what="search")
        if wanted_ids:
            found = {key["id"] for key in keys}
            unknown = [key_id for key_id in wanted_ids if key_id not in found]
            keys = [key for key in keys if key["id"] in wanted_ids]
    if unknown:
        where = f"in tenant(s) {', '.join(tenants)}" if tenants else "in the project"
        raise ConfigError(f"not {where}: {', '.join(unknown)}")
    return keys


async def export(args: argparse.Namespace) -> int:
    if args.out.exists() and not args.overwrite:
        raise ConfigError(f"{args.out} exists: pass --overwrite to replace it")
    wanted_ids = list(dict.fromkeys(part.strip() for part in (args.ids or "").split(",") if part.strip()))
    async with _connect(args) as (session, target):
        keys = await _keys_to_export(session, wanted_ids, args.tenant or [])
    text = render_export(keys, source=f"project {target.project_id}")
    write_private_atomically(args.out, text, mode=0o644)
    log.info("wrote %d key(s) to %s", len(keys), args.out)
    problems = _check_export(text, args.out)
    if problems:
        _print_diagnostics(problems, "text")
        log.error("error: the project holds values the desired format refuses; fix them in %s", args.out)
        return ExitCode.FAILURE
    return ExitCode.OK


async def audit(args: argparse.Namespace) -> int:
    clock = RunClock("audit")
    with bulk():
        desired = _load(args).state if args.paths else DesiredState(keys=())
        async with _connect(args) as (session, target):
            observed = await fetch_keys(session)
        result = compute_plan(desired, observed)
    findings = build_audit(result, observed, now=clock.started, expiring_within=timedelta(days=args.expiring_within))
    markdown = render_audit(findings, project_id=target.project_id)
    _show(args, markdown)
    if args.out:
        write_private_atomically(args.out, json.dumps(findings, indent=2, ensure_ascii=False) + "\n")
    _write_markdown(args.summary, markdown)
    return ExitCode.CHANGES_PENDING if args.fail_on_drift and findings["drift"] else ExitCode.OK


REMOTE: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "plan": plan,
    "apply": apply,
    "export": export,
    "audit": audit,
}
