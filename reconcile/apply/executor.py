"""Plan → applied updates: bounded concurrency, the run's write budget, retries, a journal.

Retrying an update is safe even after an ambiguous failure (a timeout, a dropped answer, a 5xx
that came after the write): the body holds absolute final values for every updatable field, so
sending it twice leaves the key exactly as sending it once.
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


# One status change: outcome, requests sent, error.
_Step = tuple[Outcome, int, "ErrorInfo | None"]
STATUS_BATCH_SIZE = 100  # ids per activate/deactivate batch request


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
    ) -> None:
        self._client = client
        self._policy = policy
        self._concurrency = concurrency
        self._journal = journal
        self.stop = policy.stop
        self.fatal: AuthenticationError | None = None
        self.progress = Progress(total=0)

    async def run(self, updates: Sequence[KeyPlan]) -> list[KeyResult]:
        """Apply every planned change; every key gets a result, in plan order.

        Status changes go first, in batches (disabling a compromised key is the urgent part),
        then the update bodies, `concurrency` at a time.
        """
        self.progress.total, self.progress.started = len(updates), time.monotonic()
        status_steps = await self._change_statuses([item for item in updates if item.status is not None])
        results: dict[str, KeyResult] = {}
        queue: asyncio.Queue[KeyPlan] = asyncio.Queue()
        for item in updates:
            step = status_steps.get(item.key.id)
            if item.body is None and step is not None:
                self._finish(KeyResult(item, *step), results)
            else:
                queue.put_nowait(item)
        workers = [
            asyncio.create_task(self._worker(queue, status_steps, results))
            for _ in range(min(self._concurrency, queue.qsize()))
        ]
        await asyncio.gather(*workers)
        return [
            results.get(item.key.id) or KeyResult(item, Outcome.INTERRUPTED, error=self._not_sent_reason())
            for item in updates
        ]

    def _not_sent_reason(self) -> ErrorInfo:
        if self.fatal is not None:
            return ErrorInfo(f"not sent: the run stopped after {self.fatal}")
        return ErrorInfo("not sent: the run was interrupted")

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
            body = item.body
            assert body is not None
            tally = Tally()
            outcome, error = await self._guarded(
                partial(self._client.update_access_key, body), tally, what=f"update {item.key.id}"
            )
            attempts = tally.attempts
            if item.key.id in status_steps:  # a failed status change decides the key's outcome
                status_outcome, status_attempts, status_error = status_steps[item.key.id]
                attempts += status_attempts
                if status_outcome is not Outcome.UPDATED:
                    outcome, error = status_outcome, status_error
            self._finish(KeyResult(item, outcome, attempts, error), results)

    async def _change_statuses(self, items: Sequence[KeyPlan]) -> dict[str, _Step]:
        steps: dict[str, _Step] = {}
        for status in ("inactive", "active"):
            ids = [item.key.id for item in items if item.status == status]
            for start in range(0, len(ids), STATUS_BATCH_SIZE):
                batch = ids[start : start + STATUS_BATCH_SIZE]
                tally = Tally()
                outcome, error = await self._guarded(
                    partial(self._client.set_status, batch, status),
                    tally,
                    what=f"set {len(batch)} key(s) {status}",
                )
                steps.update((key_id, (outcome, tally.attempts, error)) for key_id in batch)
        return steps

    async def _guarded(
        self, operation: Callable[[], Awaitable[Any]], tally: Tally, *, what: str
    ) -> tuple[Outcome, ErrorInfo | None]:
        """Run one call under the retry policy; its failure becomes an outcome, never an exception."""
        try:
            await self._policy.call(operation, tally, budget=Budget.WRITE, what=what)
        except AuthenticationError as error:
            self.fatal = self.fatal or error
            self.stop.set()
            return Outcome.FAILED, ErrorInfo.of(error)
        except InterruptedInFlight as error:  # absolute bodies: sending it again is safe
            return Outcome.INTERRUPTED, ErrorInfo(f"{error}; the change may have been made (a rerun converges)")
        except Interrupted:
            return Outcome.INTERRUPTED, self._not_sent_reason()
        except ReconcileError as error:
            # A retryable failure cut short by the stop is an interruption, not a verdict on the key.
            outcome = Outcome.INTERRUPTED if self.stop.is_set() and is_retryable(error) else Outcome.FAILED
            return outcome, ErrorInfo.of(error)
        finally:
            self.progress.retries += max(0, tally.attempts - 1)
        return Outcome.UPDATED, None
