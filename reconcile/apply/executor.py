"""Plan → applied updates: bounded concurrency, the run's request budgets, retries, a journal.

Retrying an update is safe even after an ambiguous failure (a timeout, a dropped answer, a 5xx
that came after the write): the body holds absolute final values for every updatable field, so
sending it twice leaves the key exactly as sending it once.

The same absolute bodies would silently revert a change someone else made between our read and
our write. With `recheck`, each key is read again just before its write and not written when it
moved (`stale`); every update's answer is compared with the intended key (`unconfirmed` if not).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from reconcile.apply.journal import Journal
from reconcile.apply.limiter import Budget
from reconcile.apply.retry import GaveUp, InterruptedInFlight, RetryPolicy, Tally, is_retryable
from reconcile.errors import ApiError, AuthenticationError, Interrupted, ReconcileError
from reconcile.plan.confirm import still_as_planned, unconfirmed
from reconcile.plan.diff import KeyPlan, Outcome


@dataclass(frozen=True)
class ErrorInfo:
    message: str
    status: int | None = None
    code: str | None = None

    @classmethod
    def of(cls, error: ReconcileError) -> ErrorInfo:
        cause = error.last if isinstance(error, GaveUp) else error
        if isinstance(cause, ApiError):
            return cls(str(error), cause.status, cause.error_code)
        return cls(str(error))

    def as_json(self) -> dict[str, Any]:
        return {"status": self.status, "code": self.code, "message": self.message}


@dataclass
class KeyResult:
    plan: KeyPlan
    outcome: Outcome
    attempts: int = 0
    error: ErrorInfo | None = None


class UpdateClient(Protocol):
    async def update_access_key(self, request_body: Mapping[str, Any]) -> dict[str, Any]: ...

    async def set_status(self, key_ids: Sequence[str], status: str) -> None: ...

    async def load_access_key(self, key_id: str) -> dict[str, Any]: ...


# One status change: outcome, requests sent, error.
_Step = tuple[Outcome, int, "ErrorInfo | None"]
# One call under the retry policy: the failure's outcome (None: it succeeded), its error, its answer.
_Call = tuple["Outcome | None", "ErrorInfo | None", Any]
STATUS_BATCH_SIZE = 100  # ids per activate/deactivate batch request
HTTP_NOT_FOUND = 404  # a re-read key that is gone
STALE_REASON = "not written: the key changed since it was read for the plan (another writer); plan again"


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
        client: UpdateClient,
        policy: RetryPolicy,
        *,
        concurrency: int,
        journal: Journal | None = None,
        recheck: bool = False,
    ) -> None:
        self._client = client
        self._policy = policy
        self._concurrency = concurrency
        self._journal = journal
        self._recheck = recheck
        self.stop = policy.stop
        self.fatal: AuthenticationError | None = None
        self.progress = Progress(total=0)

    async def run(self, writes: Sequence[KeyPlan]) -> list[KeyResult]:
        """Apply every planned change; every key gets a result, in plan order.

        Status changes go first, in batches (disabling a compromised key is the urgent part),
        then the update bodies, `concurrency` at a time.
        """
        self.progress.total, self.progress.started = len(writes), time.monotonic()
        status_steps = await self._change_statuses([item for item in writes if item.status is not None])
        results: dict[str, KeyResult] = {}
        queue: asyncio.Queue[KeyPlan] = asyncio.Queue()
        for item in writes:
            step = status_steps.get(item.key.id)
            if step is not None and (item.body is None or step[0] is Outcome.STALE):
                self._finish(self._after_status(item, step), results)
            else:
                queue.put_nowait(item)
        workers = [
            asyncio.create_task(self._worker(queue, status_steps, results))
            for _ in range(min(self._concurrency, queue.qsize()))
        ]
        await asyncio.gather(*workers)
        return [results.get(item.key.id) or self._unreached(item, status_steps.get(item.key.id)) for item in writes]

    def _not_sent_reason(self) -> ErrorInfo:
        if self.fatal is not None:
            return ErrorInfo(f"not sent: the run stopped after {self.fatal}")
        return ErrorInfo("not sent: the run was interrupted")

    @staticmethod
    def _after_status(item: KeyPlan, step: _Step) -> KeyResult:
        """A key whose only write was its status change. When its field change was impossible (not
        editable, a conflict), the key stays in that error even though its status was set."""
        outcome, attempts, error = step
        if outcome is Outcome.UPDATED and item.outcome.is_error:
            return KeyResult(item, item.outcome, attempts, ErrorInfo(f"status set {item.status}; {item.reason}"))
        return KeyResult(item, outcome, attempts, error)

    def _unreached(self, item: KeyPlan, step: _Step | None) -> KeyResult:
        """A key the run stopped before updating; its status change may already have been made."""
        reason = self._not_sent_reason()
        if step is None:
            return KeyResult(item, Outcome.INTERRUPTED, error=reason)
        outcome, attempts, error = step
        if outcome is Outcome.UPDATED:
            error = ErrorInfo(f"status set {item.status}, but the update was {reason.message}")
            outcome = Outcome.INTERRUPTED
        return KeyResult(item, outcome, attempts, error)

    def _finish(self, result: KeyResult, results: dict[str, KeyResult]) -> None:
        if self._journal is not None:
            self._journal.record(result)  # on disk before the key is counted as done
        results[result.plan.key.id] = result
        self.progress.done += 1
        self.progress.failed += result.outcome is not Outcome.UPDATED

    async def _worker(
        self, queue: asyncio.Queue[KeyPlan], status_steps: dict[str, _Step], results: dict[str, KeyResult]
    ) -> None:
        while not self.stop.is_set():
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            self._finish(await self._update(item, status_steps.get(item.key.id)), results)

    async def _update(self, item: KeyPlan, step: _Step | None) -> KeyResult:
        """One key's update (after its status change, if any): re-checked, sent, its answer compared."""
        status_done = step is not None and step[0] is Outcome.UPDATED
        tally = Tally()
        verdict = await self._stale(item, status_done=status_done) if self._recheck else None
        if verdict is None:
            verdict = await self._send_update(item, tally, status_done=status_done)
        outcome, error = verdict
        attempts = tally.attempts
        if step is not None:  # a failed status change decides the key's outcome
            status_outcome, status_attempts, status_error = step
            attempts += status_attempts
            if status_outcome is not Outcome.UPDATED:
                outcome, error = status_outcome, status_error
        return KeyResult(item, outcome, attempts, error)

    async def _send_update(self, item: KeyPlan, tally: Tally, *, status_done: bool) -> tuple[Outcome, ErrorInfo | None]:
        assert item.body is not None
        failure, error, answer = await self._guarded(
            partial(self._client.update_access_key, item.body), tally, what=f"update {item.key.id}"
        )
        if failure is not None:
            return failure, error
        why = unconfirmed(item, answer, status_done=status_done)
        return (Outcome.UNCONFIRMED, ErrorInfo(why)) if why else (Outcome.UPDATED, None)

    async def _stale(self, item: KeyPlan, *, status_done: bool) -> tuple[Outcome, ErrorInfo | None] | None:
        """The key read again just before its write: a verdict when it must not be written, else None.
        The read is not an attempt of the key's write (its tally is its own)."""
        failure, error, key = await self._guarded(
            partial(self._client.load_access_key, item.key.id), Tally(), what=f"load {item.key.id}", budget=Budget.READ
        )
        if failure is None:
            moved = not still_as_planned(item, key, status_done=status_done)
            return (Outcome.STALE, ErrorInfo(STALE_REASON)) if moved else None
        if error is not None and error.status == HTTP_NOT_FOUND:
            return Outcome.STALE, ErrorInfo("not written: the key is no longer in the project; plan again")
        return failure, error

    async def _change_statuses(self, items: Sequence[KeyPlan]) -> dict[str, _Step]:
        steps: dict[str, _Step] = {}
        for status in ("inactive", "active"):
            group = [item for item in items if item.status == status]
            for start in range(0, len(group), STATUS_BATCH_SIZE):
                batch = await self._unmoved(group[start : start + STATUS_BATCH_SIZE], steps)
                if not batch:
                    continue
                ids = [item.key.id for item in batch]
                tally = Tally()
                failure, error, _ = await self._guarded(
                    partial(self._client.set_status, ids, status), tally, what=f"set {len(ids)} key(s) {status}"
                )
                steps.update((key_id, (failure or Outcome.UPDATED, tally.attempts, error)) for key_id in ids)
        return steps

    async def _unmoved(self, batch: list[KeyPlan], steps: dict[str, _Step]) -> list[KeyPlan]:
        """With `recheck`, the keys of a status batch still as planned; the others get their verdict."""
        if not self._recheck:
            return batch
        slots = asyncio.Semaphore(self._concurrency)

        async def verdict(item: KeyPlan) -> tuple[Outcome, ErrorInfo | None] | None:
            async with slots:
                return await self._stale(item, status_done=False)

        verdicts = await asyncio.gather(*(verdict(item) for item in batch))
        for item, found in zip(batch, verdicts, strict=True):
            if found is not None:
                steps[item.key.id] = (found[0], 0, found[1])
        return [item for item, found in zip(batch, verdicts, strict=True) if found is None]

    async def _guarded(
        self, operation: Callable[[], Awaitable[Any]], tally: Tally, *, what: str, budget: Budget = Budget.WRITE
    ) -> _Call:
        """Run one call under the retry policy, within its budget; its failure becomes an outcome, never
        an exception."""
        try:
            answer = await self._policy.call(operation, tally, budget=budget, what=what)
        except AuthenticationError as error:
            self.fatal = self.fatal or error
            self.stop.set()
            return Outcome.FAILED, ErrorInfo.of(error), None
        except InterruptedInFlight as error:  # absolute bodies: sending it again is safe
            message = f"{error}; the change may have been made (a rerun converges)"
            return Outcome.INTERRUPTED, ErrorInfo(message), None
        except Interrupted:
            return Outcome.INTERRUPTED, self._interrupted_reason(tally), None
        except ReconcileError as error:
            # A retryable failure cut short by the stop is an interruption, not a verdict on the key.
            outcome = Outcome.INTERRUPTED if self.stop.is_set() and is_retryable(error) else Outcome.FAILED
            return outcome, ErrorInfo.of(error), None
        finally:
            self.progress.retries += max(0, tally.attempts - 1)
        return None, None, answer

    def _interrupted_reason(self, tally: Tally) -> ErrorInfo:
        """Stopped before an attempt: never sent, or sent and failed before the stop came."""
        if tally.attempts == 0:
            return self._not_sent_reason()
        return ErrorInfo(
            f"the run stopped while retrying: the last of {tally.attempts} attempt(s) failed, so the change "
            "may or may not have been made (a rerun converges)"
        )
