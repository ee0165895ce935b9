"""The run's audit-trail work: who changed the drifted keys, which changes an apply overwrote, and
the event that records the apply. Prints nothing.

It degrades, never fails: a refusal (403), no answer, a 429 or a record in an unexpected shape
makes a step `unavailable` with the reason, and the run goes on with the exit code it would have
had. Searches go through their own budget (`Budget.AUDIT`: Descope allows 10 audit searches a
minute), never the one the updates wait on, and stop at `pages` per step.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconcile import __version__
from reconcile.apply.calls import KeyResult
from reconcile.apply.limiter import Budget
from reconcile.apply.retry import Tally
from reconcile.errors import AuthenticationError, Interrupted, RateLimitedError, ReconcileError
from reconcile.job.session import Session
from reconcile.job.timed import now_ms
from reconcile.model import DesiredFile
from reconcile.output.report import git_state
from reconcile.plan.diff import DONE, Outcome, Plan
from reconcile.trail.attribution import MATCH_MARGIN_MS, Attribution, Found, attribute, covered
from reconcile.trail.event import RunSource, apply_event
from reconcile.trail.findings import Step, StepStatus, TrailFindings
from reconcile.trail.overwrite import OverwriteCheck, Timeline, find_overwrites
from reconcile.trail.records import (
    DAY_MS,
    EVENT_ACTION,
    HORIZON_DAYS,
    PAGE_SIZE,
    Record,
    TrailShapeError,
    parse_page,
    search_body,
)


@dataclass(frozen=True)
class TrailSettings:
    search: bool  # attribution and the overwritten check (--no-attribution: neither)
    pages: int  # audit search requests per step at most (--attribution-pages)
    actions: tuple[str, ...]  # the key events (--attribution-actions; KEY_ACTIONS by default)
    event: bool  # record each apply that changed keys (--no-audit-event)
    tenant: str | None  # tenantId of the event (--audit-tenant)


class TrailUnavailable(ReconcileError):
    """The trail could not be read; the message says why (never retried)."""


@dataclass(frozen=True)
class _Read:
    records: list[Record]
    pages: int
    complete: bool  # every record of the window was read


async def _search_page(session: Session, body: Mapping[str, Any]) -> Any:
    async def once() -> Any:
        try:
            return await session.client.search_audit(body)
        except RateLimitedError as error:  # past Descope's budget: waiting a minute is not worth it
            raise TrailUnavailable(f"audit search throttled: {error}") from None

    if session.audit_refused is not None:
        raise TrailUnavailable(session.audit_refused)
    try:
        return await session.audit_policy.call(once, Tally(), budget=Budget.AUDIT, what="audit search")
    except TrailUnavailable:
        raise
    except AuthenticationError as error:
        session.audit_refused = f"the management key may not search the audit trail: {error}"
        raise TrailUnavailable(session.audit_refused) from None
    except Interrupted:
        raise TrailUnavailable("the run was interrupted") from None
    except ReconcileError as error:
        raise TrailUnavailable(f"audit search failed: {error}") from None


async def _read(
    session: Session,
    actions: Iterable[str],
    window: tuple[int, int],
    pages: int,
    enough: Callable[[list[Record]], bool],
) -> _Read:
    """Newest first, page after page, until the window is read, `enough` holds or `pages` were read.
    A record a page repeats is kept once; a page of nothing new (a server that ignores `page`) ends
    the reading, incomplete."""
    records: list[Record] = []
    seen: set[tuple[object, ...]] = set()
    for page in range(pages):
        try:
            found, total = parse_page(await _search_page(session, search_body(list(actions), *window, page)))
        except TrailShapeError as error:
            raise TrailUnavailable(f"unexpected record shape: {error}") from None
        new = [record for record in found if _identity(record) not in seen]
        seen.update(map(_identity, new))
        records.extend(new)
        if found and not new:
            return _Read(records, page + 1, False)
        last = not found or (len(records) >= total if total is not None else len(found) < PAGE_SIZE)
        if last or enough(records):
            return _Read(records, page + 1, last)
    return _Read(records, pages, False)


def _identity(record: Record) -> tuple[object, ...]:
    return (record.id, record.action, record.actor, record.occurred, record.remote, record.names)


async def attribute_keys(
    session: Session, key_ids: list[str], settings: TrailSettings
) -> tuple[Step, dict[str, Attribution]]:
    """Who last changed each of these keys in the last 30 days, and whether it was this tool."""
    if not settings.search:
        return Step(StepStatus.OFF), {}
    if not key_ids:
        return Step(StepStatus.NOT_NEEDED), {}
    end = now_ms()
    window = (end - HORIZON_DAYS * DAY_MS, end)
    actions = [*settings.actions, EVENT_ACTION]
    try:
        read = await _read(
            session, actions, window, settings.pages, lambda got: covered(key_ids, got, settings.actions)
        )
    except TrailUnavailable as error:
        return Step(StepStatus.UNAVAILABLE, str(error)), {}
    found = attribute(key_ids, read.records, settings.actions, complete=read.complete)
    missed = sum(1 for item in found.values() if item.found is Found.NOT_REACHED)
    status, reason = StepStatus.DONE, None
    if missed:
        status = StepStatus.PARTIAL
        reason = (
            f"{missed} key(s) not found in the {len(read.records)} most recent key events read (--attribution-pages)"
        )
    return Step(status, reason, read.pages, len(read.records)), found


async def check_overwrites(
    session: Session, timeline: Timeline, settings: TrailSettings
) -> tuple[Step, OverwriteCheck | None]:
    """After an apply: another actor's changes to a written key between its read and its write."""
    if not settings.search:
        return Step(StepStatus.OFF), None
    start = timeline.earliest_read()
    if not timeline.written or start is None:
        return Step(StepStatus.NOT_NEEDED), None
    window = (start - MATCH_MARGIN_MS, now_ms() + MATCH_MARGIN_MS)
    try:
        read = await _read(session, settings.actions, window, settings.pages, lambda _: False)
    except TrailUnavailable as error:
        return Step(StepStatus.UNAVAILABLE, str(error)), None
    check = find_overwrites(timeline, read.records, settings.actions)
    problems = []
    if not read.complete:
        problems.append(f"more key events since the read than {read.pages} page(s) hold (--attribution-pages)")
    if check.unseen:
        shown = ", ".join(check.unseen[:10]) + (f" and {len(check.unseen) - 10} more" if len(check.unseen) > 10 else "")
        problems.append(f"the trail shows no write of this run to {shown} (not indexed yet?): not checked")
    status = StepStatus.PARTIAL if problems else StepStatus.DONE
    return Step(status, "; ".join(problems) or None, read.pages, len(read.records)), check


async def record_apply(session: Session, body: Mapping[str, Any]) -> Step:
    """Write the apply event; a failure is a warning, never a failed run."""
    try:
        await session.call(lambda: session.client.create_audit_event(body), budget=Budget.WRITE, what="audit event")
    except ReconcileError as error:
        return Step(StepStatus.FAILED, f"could not write the {EVENT_ACTION} event: {error}")
    return Step(StepStatus.DONE)


def attributed_ids(plan: Plan) -> list[str]:
    """The keys whose last change a run looks up: every key the plan finds not as the files say (to
    update, missing, not editable, in conflict; any outcome but unchanged), unless it was not compared
    (or does not exist yet: a key to create)."""
    quiet = (Outcome.UNCHANGED, Outcome.INTERRUPTED)
    return [item.key.id for item in plan.keys if item.outcome not in quiet and item.key.id is not None]


async def attribute_plan(session: Session, plan: Plan, settings: TrailSettings) -> TrailFindings:
    step, keys = await attribute_keys(session, attributed_ids(plan), settings)
    return TrailFindings(step, keys)


async def after_apply(  # noqa: PLR0913 (two keyword-only facts of the run)
    session: Session,
    settings: TrailSettings,
    attribution: TrailFindings,
    results: list[KeyResult],
    *,
    run_id: str,
    files: Sequence[DesiredFile],
) -> TrailFindings:
    """The overwritten check, then the event (which names the actor the check found for this run's writes)."""
    check_step, check = await check_overwrites(session, session.timeline, settings)
    overwritten = check.overwritten if check else ()
    # every change accepted (unconfirmed: accepted, answered with another key); a created key by its new id
    accepted = {*DONE.values(), Outcome.UNCONFIRMED}
    changed = [result.id for result in results if result.outcome in accepted and result.id is not None]
    event = Step(StepStatus.NOT_NEEDED if settings.event else StepStatus.OFF)
    if changed and settings.event:
        git = git_state([file.path for file in files])
        body = apply_event(
            RunSource.of(run_id, __version__, git, os.environ),
            outcomes=Counter(result.outcome.value for result in results),
            changed=changed,
            timeline=session.timeline,
            writer=check.writer if check else None,
            overwritten=len(overwritten),
            warn=bool(overwritten) or any(result.outcome.is_error for result in results),
            tenant=settings.tenant,
        )
        event = await record_apply(session, body)
    return dataclasses.replace(attribution, overwrite_check=check_step, overwritten=overwritten, event=event)
