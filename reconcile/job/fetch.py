"""Reading the project: every key (marking each as read, for the overwritten check), or the named
ones; and the plan of a run stopped before it could read."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any

from reconcile.apply.limiter import Budget
from reconcile.errors import NotFoundError
from reconcile.job.clock import keep
from reconcile.job.session import Session
from reconcile.job.timed import now_ms
from reconcile.model import DesiredKey
from reconcile.plan.diff import KeyPlan, Outcome, Plan


async def fetch_keys(session: Session) -> list[dict[str, Any]]:
    """Every key of the project: one search, retried like any call. Each key counts as read when the
    search was sent (a change made while it was in flight may or may not be in what came back)."""
    sent = now_ms()
    keys = await session.call(session.client.search_access_keys, budget=Budget.READ, what="search")
    session.timeline.mark_read((str(key.get("id")) for key in keys), sent)
    keep(keys)
    return keys


def interrupted_plan(keys: Iterable[DesiredKey]) -> Plan:
    """The plan of a run stopped before the project was read: every key interrupted, none compared."""
    reason = "not compared: the run was interrupted before the project was read"
    return Plan(tuple(KeyPlan(key, Outcome.INTERRUPTED, reason, str(key.fields.get("name", ""))) for key in keys), ())


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
