"""A plan → the violations its changes would introduce, and those its keys already have. Pure.

A key after its change is the key as read with the request body laid over it (a create: the body
alone). A violation is introduced when the key after the change has it and the key before did not
(same rule, same message); one the key already had is reported, never blocked. Live-only rules (the
key's age) are left to `audit` and `rotate --due`: a change does not make a secret older.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from reconcile.model import STATUS_FIELD, DesiredKey
from reconcile.plan.diff import KeyPlan, Outcome, Plan
from reconcile.policy.policy import Policy
from reconcile.policy.rules import ERROR, Context, Violation


@dataclass(frozen=True)
class KeyVerdict:
    key: DesiredKey
    label: str
    introduced: tuple[Violation, ...]
    existing: tuple[Violation, ...]


@dataclass(frozen=True)
class PlanVerdict:
    keys: tuple[KeyVerdict, ...]

    @property
    def blocking(self) -> list[tuple[KeyVerdict, Violation]]:
        """Introduced error-level violations no waiver covers: apply refuses to make these changes."""
        return [
            (key, violation)
            for key in self.keys
            for violation in key.introduced
            if violation.severity == ERROR and not violation.waived
        ]


def _live(observed: Iterable[Mapping[str, Any]]) -> tuple[dict[str, Mapping[str, Any]], dict[str, list[Any]]]:
    by_id: dict[str, Mapping[str, Any]] = {}
    by_name: dict[str, list[Any]] = {}
    for key in observed:
        by_id[str(key.get("id"))] = key
        by_name.setdefault(str(key.get("name")), []).append(key)
    return by_id, by_name


def _before(item: KeyPlan, by_id: Mapping[str, Mapping[str, Any]], by_name: Mapping[str, list[Any]]) -> Any:
    if item.key.id is not None:
        return by_id.get(item.key.id)
    named = by_name.get(str(item.key.fields.get("name", item.name)), [])
    return named[0] if len(named) == 1 else None


def _key(violation: Violation) -> tuple[str, str]:
    return violation.rule, violation.message


def plan_verdict(policy: Policy, plan: Plan, observed: Iterable[Mapping[str, Any]], context: Context) -> PlanVerdict:
    by_id, by_name = _live(observed)
    context = Context(context.now, live=False)  # see the module's docstring
    verdicts = []
    for item in plan.keys:
        if item.outcome.is_error or item.outcome in (Outcome.DEACTIVATE, Outcome.DELETE):
            continue
        before = _before(item, by_id, by_name)
        if item.outcome is Outcome.CREATE:
            after: Mapping[str, Any] = dict(item.body or {})
        elif before is None:
            continue
        else:
            after = {**before, **(item.body or {})}
            if item.status is not None:
                after[STATUS_FIELD] = item.status
        had = {_key(v) for v in policy.violations(before, context)} if before is not None else set()
        found = policy.check(after, item.key.waivers, context)
        introduced = tuple(v for v in found if _key(v) not in had and item.outcome.is_change)
        existing = tuple(v for v in found if v not in introduced)
        if introduced or existing:
            verdicts.append(KeyVerdict(item.key, item.key.id or item.name, introduced, existing))
    return PlanVerdict(tuple(verdicts))
