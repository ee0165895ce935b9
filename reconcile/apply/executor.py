"""Plan → changes on the server: bounded concurrency, the run's request budgets, retries, a journal.

Order: the declared keys' status changes first, in batches (disabling a compromised key: the urgent
part); then updates, creates and rotations, `concurrency` at a time; prunes last, deactivations then
deletions, in batches, and only when everything before them succeeded (no key in error in the plan,
every update confirmed, every create's secret delivered to every sink): otherwise they are `held`.
A key renamed (a create plus a prune) thus keeps working until its successor's secret is delivered.

Retrying an update is safe even after an ambiguous failure (a timeout, a dropped answer, a 5xx
that came after the write): the body holds absolute final values for every updatable field, so
sending it twice leaves the key exactly as sending it once. Creates and rotations are never
retried after such a failure (see issue.py); a deletion batch that failed is checked by reading
which of its keys are gone.

The same absolute bodies would silently revert a change someone else made between our read and
our write. With `recheck`, each key is read again just before its write (a status change, an
update, a deletion) and not written when it moved (`stale`); every update's answer is compared
with the intended key (`unconfirmed` if not).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial

from reconcile.apply.calls import ErrorInfo, Failure, Guard, KeyClient, KeyResult
from reconcile.apply.issue import Issuer
from reconcile.apply.journal import Journal
from reconcile.apply.limiter import Budget
from reconcile.apply.retry import RetryPolicy, Tally
from reconcile.errors import AuthenticationError, NotFoundError
from reconcile.plan.confirm import still_as_planned, unconfirmed
from reconcile.plan.diff import KeyPlan, Outcome
from reconcile.secrets.sinks import Sinks

# One key's share of a call: outcome (None: it worked), requests sent, error.
_Step = tuple[Outcome | None, int, ErrorInfo | None]
_Verdict = tuple[Outcome, ErrorInfo | None]  # why a key was not written
BATCH_SIZE = 100  # ids per activate/deactivate/delete batch request
STALE_REASON = "not written: the key changed since it was read for the plan (another writer); plan again"
GONE_REASON = "not written: the key is no longer in the project; plan again"


@dataclass
class Progress:
    total: int
    started: float = field(default_factory=time.monotonic)
    done: int = 0
    failed: int = 0
    retries: int = 0


class Executor:
    def __init__(  # noqa: PLR0913 (keyword-only settings beside the client and policy)
        self,
        client: KeyClient,
        policy: RetryPolicy,
        *,
        concurrency: int,
        journal: Journal | None = None,
        recheck: bool = False,
        sinks: Sinks | None = None,
        run_id: str = "",
    ) -> None:
        self._client = client
        self._guard = Guard(policy)
        self._issuer = Issuer(client, self._guard, sinks=sinks, journal=journal, run_id=run_id)
        self._concurrency = concurrency
        self._journal = journal
        self._recheck = recheck
        self.stop = policy.stop
        self.progress = Progress(total=0)

    @property
    def fatal(self) -> AuthenticationError | None:
        return self._guard.fatal

    async def run(self, writes: Sequence[KeyPlan], *, hold: str | None = None) -> list[KeyResult]:
        """Make every planned write; every key gets a result, in plan order. `hold`: why the prunes
        must not run whatever happens (the plan has keys in error)."""
        self.progress.total, self.progress.started = len(writes), time.monotonic()
        statuses = await self._change_statuses([item for item in writes if _status_first(item)])
        results: dict[int, KeyResult] = {}
        queue: asyncio.Queue[tuple[int, KeyPlan]] = asyncio.Queue()
        for index, item in enumerate(writes):
            step = statuses.get(str(item.key.id)) if _status_first(item) else None
            if item.is_prune:
                continue
            if step is not None and (item.body is None or step[0] is Outcome.STALE):
                self._finish(index, _after_status(item, step), results)
            else:
                queue.put_nowait((index, item))
        workers = [
            asyncio.create_task(self._worker(queue, statuses, results))
            for _ in range(min(self._concurrency, queue.qsize()))
        ]
        await asyncio.gather(*workers)
        prunes = [(index, item) for index, item in enumerate(writes) if item.is_prune]
        await self._prune(prunes, statuses, results, hold)
        return [
            results.get(index) or self._unreached(item, statuses.get(str(item.key.id)))
            for index, item in enumerate(writes)
        ]

    def _unreached(self, item: KeyPlan, step: _Step | None) -> KeyResult:
        """A key the run stopped before writing; its status change may already have been made."""
        reason = self._guard.not_sent()
        if step is None or not _status_first(item):
            return KeyResult(item, Outcome.INTERRUPTED, error=reason)
        outcome, attempts, error = step
        if outcome is None:
            error = ErrorInfo(f"status set {item.status}, but the update was {reason.message}")
        return KeyResult(item, outcome or Outcome.INTERRUPTED, attempts, error)

    def _finish(self, index: int, result: KeyResult, results: dict[int, KeyResult]) -> None:
        if self._journal is not None:
            self._journal.record(result)  # on disk before the key is counted as done
        results[index] = result
        self.progress.done += 1
        self.progress.failed += result.outcome is not result.plan.outcome.done
        self.progress.retries = self._guard.retries

    async def _prune(
        self,
        prunes: Sequence[tuple[int, KeyPlan]],
        statuses: dict[str, _Step],
        results: dict[int, KeyResult],
        hold: str | None,
    ) -> None:
        """Deactivations, then deletions: only when nothing before them failed."""
        deactivations = [(index, item) for index, item in prunes if item.outcome is Outcome.DEACTIVATE]
        deletions = [(index, item) for index, item in prunes if item.outcome is Outcome.DELETE]
        if self.stop.is_set():
            return  # unreached: interrupted
        why = hold or _failed_before(results.values())
        if why is None and deactivations:
            statuses.update(await self._change_statuses([item for _, item in deactivations]))
            for index, item in deactivations:
                if (step := statuses.get(str(item.key.id))) is not None:
                    self._finish(index, _result(item, step), results)
            why = _failed_before(results[index] for index, _ in deactivations if index in results)
        if why is None:
            await self._delete(deletions, results)
            return
        held = ErrorInfo(f"not sent: prunes run last, and only when everything before them succeeded; {why}")
        for index, item in (*deactivations, *deletions):
            if index not in results:
                self._finish(index, KeyResult(item, Outcome.HELD, error=held), results)

    async def _worker(
        self, queue: asyncio.Queue[tuple[int, KeyPlan]], statuses: dict[str, _Step], results: dict[int, KeyResult]
    ) -> None:
        while not self.stop.is_set():
            try:
                index, item = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            if item.outcome is Outcome.CREATE:
                result = await self._issuer.create(item)
            elif item.outcome is Outcome.ROTATE:
                result = await self._issuer.rotate(item)
            else:
                result = await self._update(item, statuses.get(str(item.key.id)))
            self._finish(index, result, results)

    async def _update(self, item: KeyPlan, step: _Step | None) -> KeyResult:
        """One key's update (after its status change, if any): re-checked, sent, its answer compared."""
        status_done = step is not None and step[0] is None
        tally = Tally()
        verdict = await self._stale(item, status_done=status_done) if self._recheck else None
        outcome, error = verdict or await self._send_update(item, tally, status_done=status_done)
        attempts = tally.attempts
        if step is not None:  # a failed status change decides the key's outcome
            status_outcome, status_attempts, status_error = step
            attempts += status_attempts
            if status_outcome is not None:
                outcome, error = status_outcome, status_error
        return _result(item, (outcome, attempts, error))

    async def _send_update(
        self, item: KeyPlan, tally: Tally, *, status_done: bool
    ) -> tuple[Outcome | None, ErrorInfo | None]:
        assert item.body is not None
        update = partial(self._client.update_access_key, item.body)
        answer = await self._guard.call(update, tally, what=f"update {item.key.id}")
        if isinstance(answer, Failure):
            return answer.outcome, answer.error
        why = unconfirmed(item, answer, status_done=status_done)
        return (Outcome.UNCONFIRMED, ErrorInfo(why)) if why else (None, None)

    async def _stale(self, item: KeyPlan, *, status_done: bool) -> _Verdict | None:
        """The key read again just before its write: a verdict when it must not be written, else None.
        The read is not an attempt of the key's write (its tally is its own)."""
        load = partial(self._client.load_access_key, str(item.key.id))
        key = await self._guard.call(load, Tally(), what=f"load {item.key.id}", budget=Budget.READ)
        if not isinstance(key, Failure):
            moved = not still_as_planned(item, key, status_done=status_done)
            return (Outcome.STALE, ErrorInfo(STALE_REASON)) if moved else None
        if isinstance(key.cause, NotFoundError):
            return Outcome.STALE, ErrorInfo(GONE_REASON)
        return key.outcome, key.error

    async def _unmoved(self, batch: Sequence[KeyPlan], verdicts: dict[str, _Step]) -> list[KeyPlan]:
        """With `recheck`, the keys of a batch still as planned; the others get their verdict."""
        if not self._recheck:
            return list(batch)
        slots = asyncio.Semaphore(self._concurrency)

        async def verdict(item: KeyPlan) -> _Verdict | None:
            async with slots:
                return await self._stale(item, status_done=False)

        found = await asyncio.gather(*(verdict(item) for item in batch))
        for item, moved in zip(batch, found, strict=True):
            if moved is not None:
                verdicts[str(item.key.id)] = (moved[0], 0, moved[1])
        return [item for item, moved in zip(batch, found, strict=True) if moved is None]

    async def _change_statuses(self, items: Sequence[KeyPlan]) -> dict[str, _Step]:
        steps: dict[str, _Step] = {}
        for status in ("inactive", "active"):
            group = [item for item in items if item.status == status]
            for start in range(0, len(group), BATCH_SIZE):
                batch = await self._unmoved(group[start : start + BATCH_SIZE], steps)
                if not batch:
                    continue
                ids = [str(item.key.id) for item in batch]
                tally = Tally()
                change = partial(self._client.set_status, ids, status)
                answer = await self._guard.call(change, tally, what=f"set {len(ids)} key(s) {status}")
                steps.update((key_id, _step(answer, tally)) for key_id in ids)
        return steps

    async def _delete(self, items: Sequence[tuple[int, KeyPlan]], results: dict[int, KeyResult]) -> None:
        """In batches; after a failure, the keys that are gone anyway (a lost answer) count as deleted."""
        for start in range(0, len(items), BATCH_SIZE):
            if self.stop.is_set():
                return
            chunk = items[start : start + BATCH_SIZE]
            verdicts: dict[str, _Step] = {}
            batch = await self._unmoved([item for _, item in chunk], verdicts)
            ids = [str(item.key.id) for item in batch]
            step: _Step = (None, 0, None)
            gone: set[str] = set()
            if ids:
                tally = Tally()
                delete = partial(self._client.delete_access_keys, ids)
                answer = await self._guard.call(delete, tally, what=f"delete {len(ids)} key(s)")
                failed = isinstance(answer, Failure) and answer.cause is not None
                step, gone = _step(answer, tally), await self._gone(ids) if failed else set()
            for index, item in chunk:
                key_id = str(item.key.id)
                mine = verdicts.get(key_id) or ((None, step[1], None) if key_id in gone else step)
                self._finish(index, _result(item, mine), results)

    async def _gone(self, ids: Sequence[str]) -> set[str]:
        """Which of these keys the project no longer has (none, when that cannot be read)."""
        if self.fatal is not None:
            return set()
        search = self._client.search_access_keys
        keys = await self._guard.call(search, Tally(), what="check deletions", budget=Budget.READ)
        if isinstance(keys, Failure):
            return set()
        present = {str(key.get("id")) for key in keys}
        return {key_id for key_id in ids if key_id not in present}


def _status_first(item: KeyPlan) -> bool:
    """A declared key's status change, made in the batches before everything else (a new key gets its
    status once it exists; a pruned key, after everything else)."""
    return item.status is not None and item.outcome is not Outcome.CREATE and not item.is_prune


def _failed_before(results: Iterable[KeyResult]) -> str | None:
    """Why what comes next must wait: the keys that did not end as planned, if any."""
    failed = [result for result in results if result.outcome is not result.plan.outcome.done]
    if not failed:
        return None
    shown = ", ".join(f"{result.id or result.plan.key.label} {result.outcome.value}" for result in failed[:5])
    return f"{len(failed)} key(s) before it did not end as planned ({shown}{', ...' if len(failed) > 5 else ''})"


def _step(answer: object, tally: Tally) -> _Step:
    if isinstance(answer, Failure):
        return answer.outcome, tally.attempts, answer.error
    return None, tally.attempts, None


def _result(item: KeyPlan, step: _Step) -> KeyResult:
    outcome, attempts, error = step
    return KeyResult(item, outcome or item.outcome.done, attempts, error)


def _after_status(item: KeyPlan, step: _Step) -> KeyResult:
    """A key whose only write was its status change. When its field change was impossible (not
    editable, a conflict), the key stays in that error even though its status was set."""
    outcome, attempts, _ = step
    if outcome is None and item.outcome.is_error:
        return KeyResult(item, item.outcome, attempts, ErrorInfo(f"status set {item.status}; {item.reason}"))
    return _result(item, step)
