"""The run's audit-trail work: who changed the drifted keys, which changes an apply overwrote, and
the event that records the apply. Prints nothing.

It degrades, never fails: a refusal (403), no answer, a 429 or a record in an unexpected shape
makes a step `unavailable` with the reason, and the run goes on with the exit code it would have
had. Searches go through their own budget (`Budget.AUDIT`: Descope allows 10 audit searches a
minute), never the one the updates wait on, and stop at `pages` per step.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from reconcile import __version__
from reconcile.apply.calls import KeyResult
from reconcile.apply.limiter import Budget
from reconcile.apply.retry import RetryPolicy, Tally
from reconcile.config.targets import TargetConfig
from reconcile.errors import AuthenticationError, Interrupted, RateLimitedError, ReconcileError
from reconcile.job.session import Session
from reconcile.job.tenant import event_tenant, unclaimed_caveat
from reconcile.job.timed import now_ms
from reconcile.plan.diff import DONE, Outcome, Plan
from reconcile.trail.attribution import Attribution, Found, attribute, covered
from reconcile.trail.event import RunSource, apply_event
from reconcile.trail.findings import Step, StepStatus, TrailFindings
from reconcile.trail.overwrite import OverwriteCheck, find_overwrites
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
from reconcile.trail.writes import CLOCK_SKEW_MS, Timeline


@dataclass(frozen=True)
class TrailSettings:
    search: bool  # attribution and the overwritten check (--no-attribution: neither)
    pages: int  # audit search requests per step at most (--attribution-pages)
    actions: tuple[str, ...]  # the key events (--attribution-actions; KEY_ACTIONS by default)
    event: bool  # record each apply that changed keys (--no-audit-event)
    tenant: str | None  # tenantId of the event (--audit-tenant)

    def for_target(self, target: TargetConfig) -> TrailSettings:
        """A config target's `auditTenant` wins."""
        return dataclasses.replace(self, tenant=target.settings.get("auditTenant", self.tenant))


# The window every SDK would send (the Java SDK refuses any other before sending): `from` no older
# than 30 days and `to` never in the future. `from` keeps a margin inside the 30 days, so that it is
# still inside when the request arrives and against a server clock a little ahead of ours.
WINDOW_MARGIN_MS = 3600 * 1000


def search_window(start: int | None, now: int) -> tuple[int, int]:
    """`(from, to)` in ms: from `start` (None: as far back as the trail goes), clamped, up to `now`."""
    oldest = now - HORIZON_DAYS * DAY_MS + WINDOW_MARGIN_MS
    return (oldest if start is None else max(start, oldest), now)


async def _settle(session: Session, until_ms: int) -> None:
    """Wait (or stop on the run's stop signal) until `until_ms`: a search whose `to` may not lie in the
    future reaches the last writes' records only once their time, on a server clock a little ahead
    of ours, has passed."""
    delay = (until_ms - now_ms()) / 1000
    if delay > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(session.stop.wait(), delay)


log = logging.getLogger("reconcile")


# The apply event's own policy: a finished run waits this long for it at most, its lock with it.
EVENT_ATTEMPTS = 2
EVENT_SECONDS = 10.0


class TrailUnavailable(ReconcileError):
    """The trail could not be read; the message says why (never retried)."""


@dataclass(frozen=True)
class _Read:
    records: list[Record]
    pages: int
    complete: bool  # every record of the window was read
    total: int | None  # how many records the server said the window holds

    def shortfall(self) -> str:
        """Why the reading is not complete, with the counts."""
        if self.total is not None and len(self.records) < self.total:
            return f"read {len(self.records)} of the {self.total} records the trail holds in {self.pages} page(s)"
        return f"read {len(self.records)} records in {self.pages} page(s), and the trail holds more"


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
    the reading, incomplete. Fewer records than the answer's `total` is never complete, however the
    pages ran out. A `total` below the distinct records read so far is a lie, taken for none."""
    records: list[Record] = []
    seen: set[tuple[object, ...]] = set()
    total: int | None = None
    for page in range(pages):
        try:
            found, total = parse_page(await _search_page(session, search_body(list(actions), *window, page)))
        except TrailShapeError as error:
            raise TrailUnavailable(f"unexpected record shape: {error}") from None
        _within(found, window)
        new = [record for record in found if _identity(record) not in seen]
        seen.update(map(_identity, new))
        records.extend(new)
        if total is not None and total < len(records):  # fewer than the answers held: no end to trust
            total = None
        if found and not new:
            return _Read(records, page + 1, False, total)
        last = not found or (len(records) >= total if total is not None else len(found) < PAGE_SIZE)
        if last or enough(records):
            whole = last and (total is None or len(records) >= total)
            return _Read(records, page + 1, whole, total)
    return _Read(records, pages, False, total)


# How far outside the window asked for a record may be dated (the server's clock against ours).
WINDOW_SLACK_MS = 60_000


def _within(records: Iterable[Record], window: tuple[int, int]) -> None:
    """A record dated outside the window the search asked for is not the trail's answer to it: a far
    future date would stand as every key's latest change."""
    for record in records:
        if not window[0] - WINDOW_SLACK_MS <= record.occurred <= window[1] + WINDOW_SLACK_MS:
            at = datetime.fromtimestamp(record.occurred / 1000, UTC).isoformat(timespec="seconds")
            raise TrailUnavailable(f"unexpected record: dated {at}, outside the window searched")


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
    window = search_window(None, now_ms())
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
        reason = f"{missed} key(s) not found: {read.shortfall()} (--attribution-pages)"
    return Step(status, reason, read.pages, len(read.records)), found


async def check_overwrites(
    session: Session, timeline: Timeline, settings: TrailSettings
) -> tuple[Step, OverwriteCheck | None]:
    """After an apply: another actor's changes to a written key between its read and its write, and
    the writer of this run's writes when the trail proves it.

    A search whose `to` may not lie in the future reaches the last writes' records only once their
    time, on a server clock up to `CLOCK_SKEW_MS` ahead of ours, has passed; the wait also lets a
    change made just before a write reach the trail's index, which may show records out of order.
    A run that read none of the keys it wrote (creates, rotations) has no change to miss: its first
    page is read at once, and when it holds this run's own record of every write, that is the check
    (the writer proven, no wait). Else the run waits out the allowance and reads the trail, as many
    pages as the check may."""
    if not settings.search:
        return Step(StepStatus.OFF), None
    span = timeline.span()
    start = timeline.earliest_read() or (span[0] if span else None)  # rotate reads no key: its writes only
    if not timeline.written or start is None:
        return Step(StepStatus.NOT_NEEDED), None
    until = (span[1] if span else now_ms()) + CLOCK_SKEW_MS
    early = None
    nothing_to_overwrite = not any(key_id in timeline.read for key_id in timeline.written)
    if nothing_to_overwrite and now_ms() < until:
        early = await _overwrite_check(session, timeline, settings, start, pages=1)
        step, check = early
        if check is None or (step.status is StepStatus.DONE and _every_write_found(timeline, check)):
            return early  # the check, or the trail unavailable (a 403, a 429: not asked again)
    await _settle(session, until)
    late = await _overwrite_check(session, timeline, settings, start, pages=settings.pages)
    # A second read refused (the budget spent by the first) never makes the check say less.
    return early if late[1] is None and early is not None else late


def _every_write_found(timeline: Timeline, check: OverwriteCheck) -> bool:
    """The trail holds this run's own record of each of its writes (created keys' too)."""
    return check.found >= set(timeline.written)


async def _overwrite_check(
    session: Session, timeline: Timeline, settings: TrailSettings, start: int, *, pages: int
) -> tuple[Step, OverwriteCheck | None]:
    window = search_window(start - CLOCK_SKEW_MS, now_ms())
    try:
        read = await _read(session, settings.actions, window, pages, lambda _: False)
    except TrailUnavailable as error:
        return Step(StepStatus.UNAVAILABLE, str(error)), None
    oldest = min((record.occurred for record in read.records), default=window[1])
    check = find_overwrites(timeline, read.records, settings.actions, read_since=None if read.complete else oldest)
    problems = []
    if not read.complete:
        problems.append(read.shortfall())
    if check.not_checked:
        keys = list(check.not_checked)
        shown = ", ".join(keys[:10]) + (f" and {len(keys) - 10} more" if len(keys) > 10 else "")
        problems.append(f"{len(keys)} key(s) not checked ({shown}): {check.not_checked[keys[0]]}")
    status = StepStatus.PARTIAL if problems else StepStatus.DONE
    return Step(status, "; ".join(problems) or None, read.pages, len(read.records)), check


async def record_apply(session: Session, body: Mapping[str, Any]) -> Step:
    """Write the apply event under its own short policy (`EVENT_ATTEMPTS` within `EVENT_SECONDS`, a
    longer Retry-After is not waited for): a finished run, and its lock, are never held for it. A
    failure is a warning, never a failed run."""
    policy = RetryPolicy(
        session.limits, max_attempts=EVENT_ATTEMPTS, deadline=EVENT_SECONDS, stop=session.stop, cancel=session.cancel
    )
    send = policy.call(
        lambda: session.client.create_audit_event(body), Tally(), budget=Budget.WRITE, what="audit event"
    )
    try:
        await asyncio.wait_for(send, timeout=EVENT_SECONDS)
    except TimeoutError:
        return Step(
            StepStatus.FAILED, f"could not write the {EVENT_ACTION} event: no answer within {EVENT_SECONDS:g} s"
        )
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
    caveat = unclaimed_caveat(settings.tenant, plan.keys)
    if caveat and step.status is StepStatus.DONE and any(item.change and not item.run for item in keys.values()):
        step = dataclasses.replace(step, status=StepStatus.PARTIAL, reason=caveat)
    return TrailFindings(step, keys)


async def after_apply(  # noqa: PLR0913 (two keyword-only facts of the run)
    session: Session,
    settings: TrailSettings,
    attribution: TrailFindings,
    results: list[KeyResult],
    *,
    run_id: str,
    git: Awaitable[Mapping[str, Any] | None] | None,
) -> TrailFindings:
    """The overwritten check, then the event (which names the actor the check found for this run's writes
    and the desired files' git state, `git`: asked for beside the writes; None: no desired files)."""
    check_step, check = await check_overwrites(session, session.timeline, settings)
    overwritten = check.overwritten if check else ()
    # every change accepted (unconfirmed: accepted, answered with another key); a created key by its new id
    accepted = {*DONE.values(), Outcome.UNCONFIRMED}
    changed = [result.id for result in results if result.outcome in accepted and result.id is not None]
    event = Step(StepStatus.NOT_NEEDED if settings.event else StepStatus.OFF)
    choice = event_tenant(
        settings.tenant, [r.plan for r in results if r.outcome in accepted], [r.plan for r in results]
    )
    if changed and settings.event and choice.tenant is None:
        event = Step(StepStatus.FAILED, choice.notice)  # never an event the API may refuse
    elif changed and settings.event:
        if choice.notice:
            log.info("%s", choice.notice)
        state = await git if git is not None else None
        body = apply_event(
            RunSource.of(run_id, __version__, state, os.environ),
            outcomes=Counter(result.outcome.value for result in results),
            changed=changed,
            timeline=session.timeline,
            writer=check.writer if check else None,
            overwritten=len(overwritten),
            warn=bool(overwritten) or any(result.outcome.is_error for result in results),
            tenant=choice.tenant,
        )
        event = await record_apply(session, body)
    return dataclasses.replace(
        attribution,
        overwrite_check=check_step,
        overwritten=overwritten,
        meanwhile=check.meanwhile if check else (),
        not_checked=check.not_checked if check else {},
        event=event,
    )
