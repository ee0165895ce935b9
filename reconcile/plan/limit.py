"""`--max-changes`: how many changes a plan may make, as a count or a share of the managed keys.
Apart from the safety check (which needs the plan) so that the command line parses it without
importing the diff: `validate` shares the option code and runs on every commit."""

from __future__ import annotations

from dataclasses import dataclass

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
