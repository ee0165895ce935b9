"""Refusals decided before any write: a plan that changes too many keys (octoDNS' safety threshold;
creates, deactivations and deletions count like updates, over the keys the files declare plus the keys
the run prunes), and a plan in which a name identifies several keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconcile.errors import ReconcileError, SafetyThresholdExceeded
from reconcile.plan.diff import Outcome, Plan
from reconcile.plan.limit import DEFAULT_CHANGE_LIMIT, DEFAULT_THRESHOLD_MIN_KEYS, ChangeLimit


@dataclass(frozen=True)
class Safety:
    """What the threshold says of one plan: `apply` and `apply --plan` decide from exactly these numbers."""

    changes: int  # keys with something to send
    managed: int  # the keys the files declare plus the keys this run prunes (`Plan.counted`)
    limit: ChangeLimit | None  # None: no threshold applies (a handful of keys and no --max-changes)

    @property
    def allowed(self) -> int | None:
        return None if self.limit is None else self.limit.allowed(self.managed)

    @property
    def exceeded(self) -> bool:
        return self.allowed is not None and self.changes > self.allowed

    def describe(self) -> str:
        return (
            f"the plan changes {self.changes} of {self.managed} managed keys, over the limit of "
            f"{self.allowed} (--max-changes {self.limit})"
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "changes": self.changes,
            "managed": self.managed,
            "maxChanges": None if self.limit is None else str(self.limit),
            "allowed": self.allowed,
            "exceeded": self.exceeded,
        }


def assess(plan: Plan, limit: ChangeLimit | None) -> Safety:
    """The threshold for this plan: `limit`, else the default share once more than a handful of keys are
    in play. Keys a prune scope already left in their final state are not: they would loosen the limit."""
    managed = plan.counted
    if limit is None and managed > DEFAULT_THRESHOLD_MIN_KEYS:
        limit = DEFAULT_CHANGE_LIMIT
    return Safety(len(plan.writes), managed, limit)


def check_safety(safety: Safety, *, force: bool) -> None:
    """Refuse a plan that changes too many keys, before any write (octoDNS' safety thresholds)."""
    if safety.exceeded and not force:
        raise SafetyThresholdExceeded(
            f"refusing to apply: {safety.describe()}; "
            "review the plan, then rerun with --force or a higher --max-changes"
        )


class AmbiguousNames(ReconcileError):
    """A name that identifies a desired key is held by several project keys: nothing is sent."""


def check_names(plan: Plan) -> None:
    """Refuse the whole plan while a name is ambiguous: which key the files mean is unknown, and a
    key the files may mean must be neither changed, nor created twice, nor pruned."""
    ambiguous = [item for item in plan.keys if item.outcome is Outcome.AMBIGUOUS]
    if ambiguous:
        shown = "; ".join(f"{item.key.source}: {item.reason}" for item in ambiguous[:10])
        raise AmbiguousNames(f"refusing to apply: {len(ambiguous)} name(s) match several keys ({shown})")
