"""The safety threshold (octoDNS' idea): refuse a plan that changes too many keys, before any write."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconcile.errors import SafetyThresholdExceeded
from reconcile.plan.diff import Plan

# Default safety threshold: refuse to change more than this share of the managed keys...
DEFAULT_MAX_CHANGES_SHARE = 0.25
# ...when more than this many keys are managed (below it, any share of a handful is normal).
DEFAULT_THRESHOLD_MIN_KEYS = 10


@dataclass(frozen=True)
class ChangeLimit:
    """`--max-changes`: a count (40) or a share of the managed keys (25%)."""

    count: int | None = None
    percent: float | None = None

    @classmethod
    def parse(cls, text: str) -> ChangeLimit:
        spec = text.strip()
        try:
            if spec.endswith("%"):
                percent = float(spec[:-1])
                if 0 <= percent <= 100:
                    return cls(percent=percent)
            elif int(spec) >= 0:
                return cls(count=int(spec))
        except ValueError:
            pass
        raise ValueError(f"{text!r}: give a count (40) or a percentage (25%)")

    def allowed(self, managed: int) -> int:
        return self.count if self.count is not None else int(managed * (self.percent or 0) / 100)

    def __str__(self) -> str:
        return str(self.count) if self.count is not None else f"{self.percent:g}%"


DEFAULT_CHANGE_LIMIT = ChangeLimit(percent=DEFAULT_MAX_CHANGES_SHARE * 100)


@dataclass(frozen=True)
class Safety:
    """What the threshold says of one plan: `apply` and `apply --plan` decide from exactly these numbers."""

    changes: int  # keys with something to send
    managed: int  # keys the plan was made over
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
    """The threshold for this plan: `limit`, else the default share once more than a handful of keys are managed."""
    managed = plan.managed
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
