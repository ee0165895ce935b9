"""What a run learned from the trail, for the report, the text and the summaries to show. Pure data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from reconcile.trail.attribution import Attribution
from reconcile.trail.overwrite import Overwrite

NO_CHANGE = "no change found in the last 30 days"


class StepStatus(StrEnum):
    DONE = "done"
    PARTIAL = "partial"  # done, but not everything could be looked at (the reason says what)
    UNAVAILABLE = "unavailable"  # the trail could not be read: the reason says why; the run went on
    FAILED = "failed"  # the apply event could not be written
    OFF = "off"  # switched off on the command line
    NOT_NEEDED = "notNeeded"  # nothing to look for (no drift), or nothing to record (no change)


@dataclass(frozen=True)
class Step:
    status: StepStatus
    reason: str | None = None
    pages: int = 0  # audit search requests made
    records: int = 0  # records read

    @property
    def warning(self) -> bool:
        return self.status in (StepStatus.PARTIAL, StepStatus.UNAVAILABLE, StepStatus.FAILED)


@dataclass(frozen=True)
class TrailFindings:
    """Attribution per drifted key; after an apply, the overwritten changes and the event."""

    attribution: Step
    keys: Mapping[str, Attribution] = field(default_factory=dict)
    overwrite_check: Step | None = None  # apply only
    overwritten: tuple[Overwrite, ...] = ()  # others' changes an update reverted (exit 4)
    meanwhile: tuple[Overwrite, ...] = ()  # others' changes before a status change, rotation or delete
    not_checked: Mapping[str, str] = field(default_factory=dict)  # key id → why its changes could not be told
    event: Step | None = None  # apply only

    def warnings(self) -> list[str]:
        """One line per step that did not do all it should, for the report and stderr."""
        named = (
            ("attribution", self.attribution),
            ("overwritten check", self.overwrite_check),
            ("audit event", self.event),
        )
        return [
            f"{what} {step.status.value}: {step.reason}"
            for what, step in named
            if step is not None and step.warning and step.reason
        ]
