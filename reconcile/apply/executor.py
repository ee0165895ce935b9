"""Plan → changes on the server: bounded concurrency, one shared adaptive limiter, retries, a journal.

Order: status changes first, in batches (disabling a compromised key, deactivating pruned keys:
the urgent part); then updates, creates and rotations, `concurrency` at a time; deletions last,
in batches (what cannot be undone waits until everything else went through).

Retrying an update is safe even after an ambiguous failure (a timeout, a dropped answer, a 5xx
that came after the write): the body holds absolute final values for every updatable field, so
sending it twice leaves the key exactly as sending it once. Creates and rotations are never
retried after such a failure (see issue.py); a deletion batch that failed is checked by reading
which of its keys are gone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

from reconcile.apply.calls import ErrorInfo, Failure, Guard, KeyClient, KeyResult
from reconcile.apply.issue import Issuer
from reconcile.apply.journal import Journal
from reconcile.apply.retry import RetryPolicy, Tally
from reconcile.errors import AuthenticationError
from reconcile.plan.diff import KeyPlan, Outcome
from reconcile.secrets.sinks import Sinks

# One batch call's result for each of its keys: outcome, requests sent, error.
_Step = tuple[Outcome | None, int, ErrorInfo | None]  # outcome None: it worked
BATCH_SIZE = 100  # ids per activate/deactivate/delete batch request


@dataclass
class Progress:
    total: int
    started: float = field(default_factory=time.monotonic)
    done: int = 0
    failed: int = 0
    retries: int = 0


class Executor:
    def __init__(
        self,
        client: KeyClient,
        policy: RetryPolicy,
        *,
        concurrency: int,
        journal: Journal | None = None,
        sinks: Sinks | None = None,
        run_id: str = "",
    ) -> None:
        self._client = client
        self._guard = Guard(policy)
        self._issuer = Issuer(client, self._guard, sinks=sinks, journal=journal, run_id=run_id)
        self._concurrency = concurrency
        self._journal = journal
        self.stop = policy.stop
        self.progress = Progress(total=0)

    @property
    def fatal(self) -> AuthenticationError | None:
        return self._guard.fatal

    async def run(self, changes: Sequence[KeyPlan]) -> list[KeyResult]:
        """Make every planned change; every key gets a result, in plan order."""
        self.progress.total, self.progress.started = len(changes), time.monotonic()
        statuses = await self._change_statuses([item for item in changes if _status_first(item)])
        results: dict[int, KeyResult] = {}
        queue: asyncio.Queue[tuple[int, KeyPlan]] = asyncio.Queue()
        deletions = []
        for index, item in enumerate(changes):
            step = statuses.get(item.key.id or "") if _status_first(item) else None
            if item.outcome is Outcome.DELETE:
                deletions.append((index, item))
            elif item.body is None and step is not None:
                self._finish(index, _result(item, step), results)
            else:
                queue.put_nowait((index, item))
        workers = [
            asyncio.create_task(self._worker(queue, statuses, results))
            for _ in range(min(self._concurrency, queue.qsize()))
        ]
        await asyncio.gather(*workers)
        await self._delete(deletions, results)
        not_sent = self._guard.not_sent()
        return [
            results.get(index) or KeyResult(item, Outcome.INTERRUPTED, error=not_sent)
            for index, item in enumerate(changes)
        ]

    def _finish(self, index: int, result: KeyResult, results: dict[int, KeyResult]) -> None:
        if self._journal is not None:
            self._journal.record(result)  # on disk before the key is counted as done
        results[index] = result
        self.progress.done += 1
        self.progress.failed += result.outcome is not result.plan.outcome.done
        self.progress.retries = self._guard.retries

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
                result = await self._update(item, statuses.get(item.key.id or ""))
            self._finish(index, result, results)

    async def _update(self, item: KeyPlan, status_step: _Step | None) -> KeyResult:
        assert item.body is not None
        tally = Tally()
        update = partial(self._client.update_access_key, item.body)
        outcome, attempts, error = _step(await self._guard.call(update, tally, what=f"update {item.key.id}"), tally)
        if status_step is not None:  # a failed status change decides the key's outcome
            status_outcome, status_attempts, status_error = status_step
            attempts += status_attempts
            if status_outcome is not None:
                outcome, error = status_outcome, status_error
        return _result(item, (outcome, attempts, error))

    async def _change_statuses(self, items: Sequence[KeyPlan]) -> dict[str, _Step]:
        steps: dict[str, _Step] = {}
        for status in ("inactive", "active"):
            ids = [str(item.key.id) for item in items if item.status == status]
            for start in range(0, len(ids), BATCH_SIZE):
                batch = ids[start : start + BATCH_SIZE]
                tally = Tally()
                change = partial(self._client.set_status, batch, status)
                answer = await self._guard.call(change, tally, what=f"set {len(batch)} key(s) {status}")
                step = _step(answer, tally)
                steps.update((key_id, step) for key_id in batch)
        return steps

    async def _delete(self, items: Sequence[tuple[int, KeyPlan]], results: dict[int, KeyResult]) -> None:
        """In batches; after a failure, the keys that are gone anyway (a lost answer) count as deleted."""
        for start in range(0, len(items), BATCH_SIZE):
            if self.stop.is_set():
                return
            batch = items[start : start + BATCH_SIZE]
            ids = [str(item.key.id) for _, item in batch]
            tally = Tally()
            delete = partial(self._client.delete_access_keys, ids)
            answer = await self._guard.call(delete, tally, what=f"delete {len(ids)} key(s)")
            gone = await self._gone(ids) if isinstance(answer, Failure) and answer.cause is not None else set()
            step, deleted = _step(answer, tally), (None, tally.attempts, None)
            for index, item in batch:
                self._finish(index, _result(item, deleted if item.key.id in gone else step), results)

    async def _gone(self, ids: Sequence[str]) -> set[str]:
        """Which of these keys the project no longer has (none, when that cannot be read)."""
        if self.fatal is not None:
            return set()
        keys = await self._guard.call(self._client.search_access_keys, Tally(), what="check deletions")
        if isinstance(keys, Failure):
            return set()
        present = {str(key.get("id")) for key in keys}
        return {key_id for key_id in ids if key_id not in present}


def _status_first(item: KeyPlan) -> bool:
    """A status change made in the batches before everything else (a new key gets its status once it exists)."""
    return item.status is not None and item.outcome is not Outcome.CREATE


def _step(answer: object, tally: Tally) -> _Step:
    if isinstance(answer, Failure):
        return answer.outcome, tally.attempts, answer.error
    return None, tally.attempts, None


def _result(item: KeyPlan, step: _Step) -> KeyResult:
    outcome, attempts, error = step
    return KeyResult(item, outcome or item.outcome.done, attempts, error)
