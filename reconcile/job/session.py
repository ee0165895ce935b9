"""One run against a project: its session (client, request budgets, retry policy, stop signal),
fetching, executing the plan, and the report. Prints nothing: the CLI decides what people see."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any, ClassVar, TypeVar

from reconcile.apply.calls import KeyResult
from reconcile.apply.executor import Executor
from reconcile.apply.journal import Journal, Project, Unsettled, lost_creates, read_records, unsettled
from reconcile.apply.limiter import Budget, Limits
from reconcile.apply.progress import report_progress
from reconcile.apply.retry import RetryPolicy, Tally
from reconcile.client.descope import DescopeClient
from reconcile.errors import NotFoundError
from reconcile.job.clock import RunClock
from reconcile.model import DesiredFile, DesiredKey
from reconcile.output.recovery import Recovery
from reconcile.output.report import RunInfo, build_report, git_state
from reconcile.plan.diff import KeyPlan, Outcome, Plan
from reconcile.plan.safety import Safety
from reconcile.secrets.secret import Secret
from reconcile.secrets.sinks import Sinks
from reconcile.trail.findings import TrailFindings
from reconcile.trail.writes import Timeline, WriteKind

T = TypeVar("T")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Audit search has its own budget (Budget.AUDIT: Descope allows 10 a minute), so attribution never
# holds an update back; and its own policy: a search that fails is not worth many attempts or a long wait.
AUDIT_MAX_ATTEMPTS = 2
AUDIT_DEADLINE_SECONDS = 60.0


@dataclass(frozen=True)
class RetrySettings:
    rate: float
    max_attempts: int
    deadline: float  # seconds from a unit of work's first attempt to its last
    timeout: float | None = None  # per request, for the messages of requests that time out


class Session:
    """What one run shares: the client, the request budgets (`limits[Budget.AUDIT]` for audit
    search), the retry policy, and the stop signal (SIGINT/SIGTERM). Several sessions may run at
    once (one per target): a signal stops every one of them."""

    _listening: ClassVar[set[Session]] = set()  # the sessions a SIGINT/SIGTERM stops now
    _previous: ClassVar[dict[int, Any]] = {}  # the handlers the first session replaced

    def __init__(self, client: DescopeClient, settings: RetrySettings) -> None:
        self.client = client
        self.limits = Limits(settings.rate)
        self.stop = asyncio.Event()  # send nothing more (a signal, or a fatal answer such as a 401)
        self.cancel = asyncio.Event()  # and cancel what is in flight (a signal)
        self.interrupted = False
        self.policy = RetryPolicy(
            self.limits,
            max_attempts=settings.max_attempts,
            deadline=settings.deadline,
            stop=self.stop,
            cancel=self.cancel,
            request_timeout=settings.timeout,
        )
        self.audit_policy = RetryPolicy(
            self.limits,
            max_attempts=min(settings.max_attempts, AUDIT_MAX_ATTEMPTS),
            deadline=min(settings.deadline, AUDIT_DEADLINE_SECONDS),
            stop=self.stop,
            cancel=self.cancel,
            request_timeout=settings.timeout,
        )
        self.timeline = Timeline()  # per key: when it was read, when written (the overwritten check)
        self.audit_refused: str | None = None  # why audit search was refused (403): not asked again

    async def call(self, operation: Callable[[], Awaitable[T]], *, budget: Budget, what: str) -> T:
        """One API call within its budget, retried under the run's policy."""
        return await self.policy.call(operation, Tally(), budget=budget, what=what)

    @classmethod
    def _on_signal(cls, signum: int, _frame: FrameType | None) -> None:
        sessions = list(cls._listening)
        if any(session.interrupted for session in sessions):  # the second signal: leave now
            os.write(2, b"interrupted again: exiting at once\n")
            os._exit(128 + signum)
        for session in sessions:
            session.interrupted = True
            session._loop.call_soon_threadsafe(session._interrupt)

    def _interrupt(self) -> None:
        self.cancel.set()
        self.stop.set()

    @contextlib.contextmanager
    def signals_stop_the_run(self) -> Iterator[None]:
        """The first SIGINT/SIGTERM stops every session: requests in flight are cancelled, nothing
        more is sent, and the command still writes what it owes (report, journal). The second exits
        at once with 128 + the signal's number. Python-level handlers: they run even while the event
        loop is blocked (a hung file write), where asyncio's own handlers would wait for it. The
        first session installs them, the last puts the previous ones back."""
        self._loop = asyncio.get_running_loop()
        if not Session._listening:
            Session._previous = {signum: signal.signal(signum, Session._on_signal) for signum in STOP_SIGNALS}
        Session._listening.add(self)
        try:
            yield
        finally:
            Session._listening.discard(self)
            if not Session._listening:
                for signum, handler in Session._previous.items():
                    signal.signal(signum, handler)
                Session._previous = {}  # nothing of this run stays behind (the CLI also runs in-process in tests)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def fetch_keys(session: Session) -> list[dict[str, Any]]:
    """Every key of the project: one search, retried like any call. Each key counts as read when the
    search was sent (a change made while it was in flight may or may not be in what came back)."""
    sent = now_ms()
    keys = await session.call(session.client.search_access_keys, budget=Budget.READ, what="search")
    session.timeline.mark_read((str(key.get("id")) for key in keys), sent)
    return keys


def interrupted_plan(keys: Iterable[DesiredKey]) -> Plan:
    """The plan of a run stopped before the project was read: every key interrupted, none compared."""
    reason = "not compared: the run was interrupted before the project was read"
    return Plan(tuple(KeyPlan(key, Outcome.INTERRUPTED, reason, str(key.fields.get("name", ""))) for key in keys), ())


class _TimedWrites:
    """The client as the executor sees it, noting per key each write's kind, when it went out and
    when it came back: the evidence that tells this run's records in the trail from others'."""

    def __init__(self, client: DescopeClient, timeline: Timeline) -> None:
        self._client = client
        self._timeline = timeline

    async def _timed(self, key_ids: Sequence[str], kind: WriteKind, write: Awaitable[T]) -> T:
        sent = now_ms()
        try:
            return await write
        finally:  # answered or not: a lost answer may hide a change made
            for key_id in key_ids:
                self._timeline.mark_write(key_id, kind, sent, now_ms())

    async def update_access_key(self, request_body: Mapping[str, Any]) -> dict[str, Any]:
        key_id = str(request_body.get("id"))
        return await self._timed([key_id], WriteKind.UPDATE, self._client.update_access_key(request_body))

    async def load_access_key(self, key_id: str) -> dict[str, Any]:
        """The re-check before a write (`--recheck`, `apply --plan`): the key's read, as late as it gets."""
        sent = now_ms()
        key = await self._client.load_access_key(key_id)
        self._timeline.mark_read([key_id], sent)
        return key

    async def set_status(self, key_ids: Sequence[str], status: str) -> None:
        await self._timed(key_ids, WriteKind.STATUS, self._client.set_status(key_ids, status))

    async def delete_access_keys(self, key_ids: Sequence[str]) -> None:
        await self._timed(key_ids, WriteKind.DELETE, self._client.delete_access_keys(key_ids))

    async def create_access_key(self, request_body: Mapping[str, Any]) -> tuple[dict[str, Any], Secret]:
        """Timed under the new key's id, known from the answer only (a lost answer: nothing to credit)."""
        sent = now_ms()
        key, secret = await self._client.create_access_key(request_body)
        self._timeline.mark_write(str(key.get("id")), WriteKind.CREATE, sent, now_ms())
        return key, secret

    async def rotate_access_key(self, key_id: str) -> tuple[dict[str, Any], Secret]:
        return await self._timed([key_id], WriteKind.ROTATE, self._client.rotate_access_key(key_id))

    async def search_access_keys(self) -> list[dict[str, Any]]:
        return await self._client.search_access_keys()


async def load_keys(session: Session, key_ids: Sequence[str]) -> dict[str, dict[str, Any] | None]:
    """Each named key, one GET each (cheaper than reading the whole project); None for an id it lacks."""
    found: dict[str, dict[str, Any] | None] = {}
    for key_id in key_ids:
        try:
            load = partial(session.client.load_access_key, key_id)
            found[key_id] = await session.call(load, budget=Budget.READ, what=f"load {key_id}")
        except NotFoundError:
            found[key_id] = None
    return found


@dataclass
class ApplyOutcome:
    results: list[KeyResult]
    retries: int
    interrupted: bool
    fatal: Exception | None = None


async def execute(
    session: Session,
    plan: Plan,
    *,
    concurrency: int,
    journal: Journal | None,
    progress_every: float | None,
    recheck: bool,
    sinks: Sinks | None = None,
) -> ApplyOutcome:
    """Make the plan's writes; `progress_every` None means no progress output; `recheck` reads each
    key again just before its write; `sinks` take the secrets of created and rotated keys."""
    run_id = journal.run_id if journal is not None else ""
    writes = _TimedWrites(session.client, session.timeline)
    executor = Executor(
        writes,
        session.policy,
        concurrency=concurrency,
        journal=journal,
        recheck=recheck,
        sinks=sinks,
        run_id=run_id,
    )
    reporter = None
    if progress_every is not None:
        reporter = asyncio.create_task(report_progress(executor.progress, interval=progress_every))
    try:
        results = await executor.run(plan.writes, hold=plan.prune_hold)
    finally:
        if reporter is not None:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
    return ApplyOutcome(results, executor.progress.retries, session.interrupted, executor.fatal)


def run_info(clock: RunClock, settings: dict[str, Any], *, interrupted: bool = False) -> RunInfo:
    timings = {name: round(seconds, 4) for name, seconds in clock.timings.items()}
    return RunInfo(clock.run_id, clock.mode, clock.started, datetime.now(UTC), settings, interrupted, timings)


def make_report(
    clock: RunClock,
    files: Sequence[DesiredFile],
    client: DescopeClient,
    project_id: str,
    plan: Plan,
    *,
    settings: dict[str, Any],
    outcome: ApplyOutcome | None = None,
    interrupted: bool = False,
    trail: TrailFindings | None = None,
    safety: Safety | None = None,
    saved_plan: Mapping[str, Any] | None = None,
    unsettled: Sequence[Unsettled] = (),
    recovery: Recovery | None = None,
) -> dict[str, Any]:
    return build_report(
        run=run_info(clock, settings, interrupted=interrupted),
        files=files,
        git=git_state([f.path for f in files]),
        project_id=project_id,
        base_url=client.base_url,
        plan=plan,
        results=outcome.results if outcome else (),
        requests_by_status=client.requests_by_status,
        retries=outcome.retries if outcome else 0,
        trail=trail,
        safety=safety.as_json() if safety else None,
        saved_plan=saved_plan,
        unsettled=unsettled,
        recovery=recovery or Recovery((), None),
    )


def journal_path_for(report: Path) -> Path:
    return report.with_name(report.name + ".journal.jsonl")


def unsettled_secrets(
    journal: Path | None, observed: Sequence[dict[str, Any]], project: Project | None = None
) -> list[Unsettled]:
    """Keys of the project whose secret an earlier run (that wrote this journal) issued and never
    recorded as delivered: a crash between create (or rotate) and delivery shows up here. Only the
    runs against `project` count."""
    if journal is None or not journal.exists():
        return []
    return unsettled(read_records(journal), observed, project)


def lost_create_names(
    journal: Path | None, observed: Sequence[dict[str, Any]], project: Project | None = None
) -> dict[str, str]:
    """Names an earlier run sent a create for and never read the answer of, with no key found that it
    made: name -> which run and when. Such a name must not be created again (see `lost_creates`)."""
    if journal is None or not journal.exists():
        return {}
    return lost_creates(read_records(journal), observed, project)
