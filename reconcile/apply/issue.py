"""Creates and rotations: each issues a secret, which must reach the operator's sinks before the key
counts as done, and no path may lose one silently.

The journal hears of each step before it happens (see journal.py). Neither call is sent twice
blindly: after a failure that may hide a success, a create looks for the key by its name and a
rotation reloads the key, and the result says what is known. A secret that was issued and not
delivered makes the key `undelivered` (an error), with a rotation as the way to recover.

The first delivery failure stops further issuing: a broken sink would lose every secret after it
(and a rotation kills the old, working one), so the keys not yet sent are `held`, never issued.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import Any

from reconcile.apply.calls import ErrorInfo, Failure, Guard, KeyClient, KeyResult, at_most_once
from reconcile.apply.journal import Journal, now_iso
from reconcile.apply.limiter import Budget
from reconcile.apply.retry import Tally
from reconcile.errors import NotFoundError
from reconcile.plan.diff import KeyPlan, Outcome
from reconcile.secrets.secret import Secret
from reconcile.secrets.sinks import DeliveryFailed, Issued, Sinks

ROTATE_AGAIN = "rotate the key again, deliberately, to get a secret that works"


class Issuer:
    def __init__(
        self, client: KeyClient, guard: Guard, *, sinks: Sinks | None, journal: Journal | None, run_id: str
    ) -> None:
        self._client = client
        self._guard = guard
        self._sinks = sinks
        self._journal = journal
        self._run_id = run_id
        # One secret at a time, and none after a sink failed: a rotation ends the key's working secret,
        # so the next is issued only once the sinks took the last one.
        self._one_at_a_time = asyncio.Lock()
        self._sink_failed: str | None = None

    async def create(self, item: KeyPlan) -> KeyResult:
        return await self._issue(self._create, item)

    async def rotate(self, item: KeyPlan) -> KeyResult:
        return await self._issue(self._rotate, item)

    async def _issue(self, issue: Callable[[KeyPlan], Awaitable[KeyResult]], item: KeyPlan) -> KeyResult:
        async with self._one_at_a_time:
            if self._sink_failed is not None:
                message = f"not sent: an earlier secret was not delivered ({self._sink_failed}); fix the sink"
                return KeyResult(item, Outcome.HELD, error=ErrorInfo(message))
            return await issue(item)

    def _note(
        self, event: str, item: KeyPlan, key_id: str | None, error: str | None = None, took: Sequence[str] = ()
    ) -> bool:
        """False when the journal could not take the step (the run then fails, see Journal.failure)."""
        if self._journal is None:
            return True
        op = "create" if item.outcome is Outcome.CREATE else "rotate"
        return self._journal.secret(event, op, key_id, item.name, error, took=took)

    def _unjournaled(self, item: KeyPlan) -> KeyResult:
        """Not sent: a secret issued now could be lost by a crash with nothing on disk to say so."""
        assert self._journal is not None and self._journal.failure is not None
        why = f"not sent: the journal {self._journal.path} cannot be written ({self._journal.failure.error})"
        return KeyResult(item, Outcome.FAILED, 0, ErrorInfo(why))

    async def _create(self, item: KeyPlan) -> KeyResult:
        assert item.body is not None
        tally = Tally()
        if not self._note("requested", item, None):
            return self._unjournaled(item)
        send = at_most_once(partial(self._client.create_access_key, item.body))
        answer = await self._guard.call(send, tally, what=f"create {item.name!r}")
        if isinstance(answer, Failure):
            if answer.maybe_made:
                return await self._after_lost_create(item, tally, ErrorInfo(str(answer.cause)))
            self._note("failed", item, None, answer.error.message)
            return KeyResult(item, answer.outcome, tally.attempts, answer.error)
        key, secret = answer
        result = await self._deliver(item, str(key["id"]), secret, tally)
        if result.outcome is Outcome.CREATED and item.status is not None:
            return await self._set_created_status(result, item.status)
        return result

    async def _after_lost_create(self, item: KeyPlan, tally: Tally, lost: ErrorInfo) -> KeyResult:
        """The create may have been made: look for the name before anything else is decided."""
        search = self._client.search_access_keys
        found = await self._guard.call(search, Tally(), what=f"look for {item.name!r}", budget=Budget.READ)
        if isinstance(found, Failure):
            message = f"{lost.message}; the key may exist, and looking for it failed too ({found.error.message})"
            return KeyResult(item, Outcome.FAILED, tally.attempts, ErrorInfo(message + "; the next run will know"))
        ids = sorted(str(key.get("id")) for key in found if key.get("name") == item.name)
        if not ids:
            # No `failed` in the journal: the server may still make the key (a request it had queued), and
            # the `requested` left open makes the run that finds it flag its secret as never received.
            message = (
                f"{lost.message}; no key is named {item.name!r}: nothing was created yet (the next run creates it,"
                " or flags it for rotation if the create lands late)"
            )
            return KeyResult(item, Outcome.FAILED, tally.attempts, ErrorInfo(message))
        if len(ids) > 1:
            message = f"{lost.message}; keys named {item.name!r} now: {', '.join(ids)}; one may be new, its secret lost"
            return KeyResult(item, Outcome.UNDELIVERED, tally.attempts, ErrorInfo(message))
        self._note("issued", item, ids[0])
        message = f"{lost.message}; yet key {ids[0]} named {item.name!r} exists: it was created, its secret lost"
        self._note("undelivered", item, ids[0], message)
        return KeyResult(item, Outcome.UNDELIVERED, tally.attempts, ErrorInfo(f"{message}; {ROTATE_AGAIN}"), ids[0])

    async def _set_created_status(self, result: KeyResult, status: str) -> KeyResult:
        assert result.key_id is not None
        tally = Tally()
        change = partial(self._client.set_status, [result.key_id], status)
        done = await self._guard.call(change, tally, what=f"set {result.key_id} {status}")
        result.attempts += tally.attempts
        if isinstance(done, Failure):
            result.outcome = Outcome.FAILED
            result.error = ErrorInfo(f"created (secret delivered), but not made {status}: {done.error.message}")
        return result

    async def _rotate(self, item: KeyPlan) -> KeyResult:
        key_id = item.key.id
        assert key_id is not None
        tally = Tally()
        if not self._note("requested", item, key_id):
            return self._unjournaled(item)
        send = at_most_once(partial(self._client.rotate_access_key, key_id))
        answer = await self._guard.call(send, tally, what=f"rotate {key_id}")
        if isinstance(answer, Failure):
            if answer.maybe_made:
                return await self._after_lost_rotation(item, key_id, tally, ErrorInfo(str(answer.cause)))
            self._note("failed", item, key_id, answer.error.message)
            return KeyResult(item, answer.outcome, tally.attempts, answer.error)
        return await self._deliver(item, key_id, answer[1], tally)

    async def _after_lost_rotation(self, item: KeyPlan, key_id: str, tally: Tally, lost: ErrorInfo) -> KeyResult:
        """Never rotated again blindly: reload the key and say what is known."""
        load = partial(self._client.load_access_key, key_id)
        loaded = await self._guard.call(load, Tally(), what=f"load {key_id}", budget=Budget.READ)
        if not isinstance(loaded, Failure):
            state = f"the key is there ({_state(loaded)})"
        elif isinstance(loaded.cause, NotFoundError):
            state = "the key is gone (404)"
        else:
            state = f"reloading it failed too ({loaded.error.message})"
        message = (
            f"{lost.message}; the rotation may have happened: {state}. "
            f"Its old secret may no longer work and no new one was received: {ROTATE_AGAIN}"
        )
        self._note("undelivered", item, key_id, message)
        return KeyResult(item, Outcome.UNDELIVERED, tally.attempts, ErrorInfo(message))

    async def _deliver(self, item: KeyPlan, key_id: str, secret: Secret, tally: Tally) -> KeyResult:
        """To every sink; the key is done only when the journal says the secret was delivered. A journal
        that cannot take `issued` does not stop the delivery: the secret exists only here."""
        self._note("issued", item, key_id)
        try:
            if self._sinks is None:
                raise DeliveryFailed("no secret sink was given")
            await asyncio.to_thread(self._sinks.deliver, Issued(key_id, item.name, secret, self._run_id, now_iso()))
        except Exception as error:  # whatever failed, the secret must not be lost silently
            # An unexpected error is named by its type only: its text could quote what the sink was given.
            problem = str(error) if isinstance(error, DeliveryFailed) else f"unexpected {type(error).__name__}"
            took = error.took if isinstance(error, DeliveryFailed) else ()
            self._note("undelivered", item, key_id, problem, took)
            self._sink_failed = problem
            what = "created" if item.outcome is Outcome.CREATE else "rotated"
            message = f"{what}, but its secret was not delivered: {problem}; " + (
                f"a partial delivery: pass the copy in {', '.join(took)} on (see recover); rotating would kill it"
                if took
                else f"{ROTATE_AGAIN} once the sink works"
            )
            return KeyResult(item, Outcome.UNDELIVERED, tally.attempts, ErrorInfo(message), key_id, took)
        self._note("delivered", item, key_id)
        return KeyResult(item, item.outcome.done, tally.attempts, key_id=key_id)


def _state(key: Mapping[str, Any]) -> str:
    return f"{key.get('status') or 'active'}, named {str(key.get('name') or '')!r}"
