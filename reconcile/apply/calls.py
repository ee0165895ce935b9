"""One API call for a key under the run's retry policy, and what a key's result records.

`Guard.call` turns every failure into a `Failure` (an outcome and an error people can read),
never an exception; a 401/403 stops the whole run. `at_most_once` marks a call that must not be
sent twice (create, rotate): a failure that may hide its success becomes `AmbiguousWrite`, which
is never retried, so the caller looks before it acts again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from reconcile.apply.limiter import Budget
from reconcile.apply.retry import GaveUp, InterruptedInFlight, RetryPolicy, Tally, is_retryable
from reconcile.errors import (
    ApiError,
    AuthenticationError,
    Interrupted,
    ProtocolError,
    ReconcileError,
    ServerError,
    TransportError,
)
from reconcile.plan.diff import KeyPlan, Outcome
from reconcile.secrets.secret import Secret

T = TypeVar("T")


class KeyClient(Protocol):
    """What applying a plan needs of the client."""

    async def search_access_keys(self) -> list[dict[str, Any]]: ...

    async def load_access_key(self, key_id: str) -> dict[str, Any]: ...

    async def update_access_key(self, request_body: Mapping[str, Any]) -> dict[str, Any]: ...

    async def set_status(self, key_ids: Sequence[str], status: str) -> None: ...

    async def create_access_key(self, request_body: Mapping[str, Any]) -> tuple[dict[str, Any], Secret]: ...

    async def rotate_access_key(self, key_id: str) -> tuple[dict[str, Any], Secret]: ...

    async def delete_access_keys(self, key_ids: Sequence[str]) -> None: ...


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
    key_id: str | None = None  # the id the server chose, for a created key
    delivered_to: tuple[str, ...] = ()  # undelivered: the sinks that took the secret all the same

    @property
    def id(self) -> str | None:
        return self.key_id or self.plan.key.id


@dataclass(frozen=True)
class Failure:
    outcome: Outcome
    error: ErrorInfo
    cause: ReconcileError | None = None  # what failed, when a request was sent

    @property
    def maybe_made(self) -> bool:
        """Whether the call may have been made all the same: its answer was lost (an ambiguous failure
        of a call sent at most once, or a request cancelled in flight when the run was stopped)."""
        return isinstance(self.cause, AmbiguousWrite | InterruptedInFlight)


class AmbiguousWrite(ReconcileError):
    """A call that must not be sent twice failed in a way that may hide its success (a timeout, a
    dropped answer, a 5xx after the request was sent, a success answer not in its documented shape).
    Never retried."""


def at_most_once(operation: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T]]:
    """Retried only when the request surely did nothing (a 429, a refused connection)."""

    async def once() -> T:
        try:
            return await operation()
        except (ServerError, TransportError, ProtocolError) as error:  # a 200 not as documented: it was made
            if isinstance(error, TransportError) and not error.ambiguous:
                raise
            raise AmbiguousWrite(str(error)) from None

    return once


class Guard:
    """Every call of an apply goes through here: retried by the policy, failures made outcomes."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.stop: asyncio.Event = policy.stop
        self.fatal: AuthenticationError | None = None
        self.retries = 0

    def not_sent(self) -> ErrorInfo:
        if self.fatal is not None:
            return ErrorInfo(f"not sent: the run stopped after {self.fatal}")
        return ErrorInfo("not sent: the run was interrupted")

    def _interrupted(self, tally: Tally) -> ErrorInfo:
        """Stopped before an attempt: never sent, or sent and failed before the stop came."""
        if tally.attempts == 0:
            return self.not_sent()
        return ErrorInfo(
            f"the run stopped while retrying: the last of {tally.attempts} attempt(s) failed, so the change "
            "may or may not have been made (a rerun converges)"
        )

    async def call(
        self, operation: Callable[[], Awaitable[T]], tally: Tally, *, what: str, budget: Budget = Budget.WRITE
    ) -> T | Failure:
        """The call's result within its budget, or how it failed."""
        try:
            return await self.policy.call(operation, tally, budget=budget, what=what)
        except AuthenticationError as error:
            self.fatal = self.fatal or error
            self.stop.set()
            return Failure(Outcome.FAILED, ErrorInfo.of(error), error)
        except InterruptedInFlight as error:  # cancelled with the answer outstanding: it may have been made
            message = f"{error}; the change may have been made (a rerun converges)"
            return Failure(Outcome.INTERRUPTED, ErrorInfo(message), error)
        except Interrupted:
            return Failure(Outcome.INTERRUPTED, self._interrupted(tally))
        except ReconcileError as error:
            # A retryable failure cut short by the stop is an interruption, not a verdict on the key.
            outcome = Outcome.INTERRUPTED if self.stop.is_set() and is_retryable(error) else Outcome.FAILED
            return Failure(outcome, ErrorInfo.of(error), error)
        finally:
            self.retries += max(0, tally.attempts - 1)
