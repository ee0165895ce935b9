"""The safety threshold (octoDNS' idea): refuse a plan that changes too many keys, before any write."""

from __future__ import annotations

from dataclasses import dataclass

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


def check_safety(plan: Plan, limit: ChangeLimit | None, *, force: bool) -> None:
    """Refuse a plan that changes too many keys, before any write (octoDNS' safety thresholds)."""
    managed = len(plan.keys)
    if limit is None and managed <= DEFAULT_THRESHOLD_MIN_KEYS:
        return  # a handful of keys: any share of them changing is normal
    effective = limit or DEFAULT_CHANGE_LIMIT
    changes, allowed = len(plan.updates), effective.allowed(managed)
    if force or changes <= allowed:
        return
    raise SafetyThresholdExceeded(
        f"refusing to apply: the plan changes {changes} of {managed} managed keys, over the limit of "
        f"{allowed} (--max-changes {effective}); review the plan, then rerun with --force or a higher --max-changes"
    )
