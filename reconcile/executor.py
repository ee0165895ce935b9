"""Plan → applied updates: bounded concurrency, one shared adaptive limiter, retries, a journal.

Retrying an update is safe even after an ambiguous failure (a timeout, a dropped answer, a 5xx
that came after the write): the body holds absolute final values for every updatable field, so
sending it twice leaves the key exactly as sending it once.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol

from reconcile.errors import ApiError, AuthenticationError, Interrupted, ReconcileError
from reconcile.plan import KeyPlan, Outcome
from reconcile.retry import RetryPolicy, Tally, is_retryable


@dataclass(frozen=True)
class ErrorInfo:
    message: str
    status: int | None = None
    code: str | None = None

    @classmethod
    def of(cls, error: ReconcileError) -> ErrorInfo:
        if isinstance(error, ApiError):
            return cls(str(error), error.status, error.error_code)
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


class Journal:
    """JSON Lines, one line per finished key, flushed before the key counts as done."""

    def __init__(self, path: Path, run_id: str) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._file: IO[str] = os.fdopen(fd, "a", encoding="utf-8")
        self._write({"type": "start", "runId": run_id, "at": _now()})

    def _write(self, record: Mapping[str, Any]) -> None:
        self._file.write(json.dumps(record, sort_keys=True) + "\n")
        self._file.flush()

    def record(self, result: KeyResult) -> None:
        self._write(
            {
                "type": "key",
                "id": result.plan.key.id,
                "outcome": result.outcome.value,
                "attempts": result.attempts,
                "error": result.error.as_json() if result.error else None,
                "at": _now(),
            }
        )

    def close(self) -> None:
        self._file.close()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


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
        """Apply every planned update; every key gets a result, in plan order."""
        self.progress.total, self.progress.started = len(updates), time.monotonic()
        queue: asyncio.Queue[KeyPlan] = asyncio.Queue()
        for item in updates:
            queue.put_nowait(item)
        results: dict[str, KeyResult] = {}
        workers = [
            asyncio.create_task(self._worker(queue, results)) for _ in range(min(self._concurrency, len(updates)))
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

    async def _worker(self, queue: asyncio.Queue[KeyPlan], results: dict[str, KeyResult]) -> None:
        while not self.stop.is_set():
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            result = await self._apply_one(item)
            if self._journal is not None:
                self._journal.record(result)  # on disk before the key is counted as done
            results[item.key.id] = result
            self.progress.done += 1
            self.progress.failed += result.outcome is not Outcome.UPDATED

    async def _apply_one(self, item: KeyPlan) -> KeyResult:
        body = item.body
        assert body is not None
        tally = Tally()
        try:
            await self._policy.call(lambda: self._client.update_access_key(body), tally, what=f"update {item.key.id}")
        except AuthenticationError as error:
            self.fatal = self.fatal or error
            self.stop.set()
            return KeyResult(item, Outcome.FAILED, tally.attempts, ErrorInfo.of(error))
        except Interrupted:
            return KeyResult(item, Outcome.INTERRUPTED, tally.attempts, self._not_sent_reason())
        except ReconcileError as error:
            # A retryable failure cut short by the stop is an interruption, not a verdict on the key.
            outcome = Outcome.INTERRUPTED if self.stop.is_set() and is_retryable(error) else Outcome.FAILED
            return KeyResult(item, outcome, tally.attempts, ErrorInfo.of(error))
        finally:
            self.progress.retries += max(0, tally.attempts - 1)
        return KeyResult(item, Outcome.UPDATED, tally.attempts)
