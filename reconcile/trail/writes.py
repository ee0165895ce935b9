"""The writes a run made, as evidence: per key, what kind of change, and when the request went out
and its answer came back. A record of the trail is a run's own only when it matches one of these
writes: the key, the kind of change, and a time inside that write's window. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from reconcile.trail.records import Record

# How far Descope's clock may be from this machine's: a record of a write lies between the request
# going out and its answer coming back, give or take this. Both clocks are NTP-synced in practice;
# every millisecond more is room for another actor's change to look like this run's.
CLOCK_SKEW_MS = 500


class WriteKind(StrEnum):
    UPDATE = "update"  # the body pins every field: a change made since the read is reverted
    STATUS = "status"  # activate / deactivate: pins the status only
    DELETE = "delete"
    CREATE = "create"
    ROTATE = "rotate"  # a new secret: no field pinned

    @property
    def pins_fields(self) -> bool:
        return self is WriteKind.UPDATE

    @property
    def actions(self) -> frozenset[str]:
        """The audit actions Descope records for this kind of write."""
        return _ACTIONS[self]


_MODIFIED = frozenset({"AccessKeyModified"})
_ACTIONS = {
    WriteKind.UPDATE: _MODIFIED,
    WriteKind.STATUS: _MODIFIED,
    WriteKind.ROTATE: _MODIFIED,
    WriteKind.CREATE: frozenset({"AccessKeyCreated"}),
    WriteKind.DELETE: frozenset({"AccessKeyDeleted", "AccessKeysDeleted"}),
}


@dataclass(frozen=True)
class Write:
    kind: WriteKind
    sent: int  # ms, this machine's clock: the request went out
    done: int  # ms: its answer (or its failure) came back

    def matches(self, record: Record) -> bool:
        """Whether this record could be this write's: its kind, inside its window (the key is the caller's)."""
        return (
            record.action in self.kind.actions
            and self.sent - CLOCK_SKEW_MS <= record.occurred <= self.done + CLOCK_SKEW_MS
        )


@dataclass
class Timeline:
    """Per key: when a run read it (the latest read before its write) and every write it made."""

    read: dict[str, int] = field(default_factory=dict)
    writes: dict[str, list[Write]] = field(default_factory=dict)

    def mark_read(self, key_ids: Iterable[str], at: int) -> None:
        self.read.update(dict.fromkeys(key_ids, at))

    def mark_write(self, key_id: str, kind: WriteKind, sent: int, done: int) -> None:
        """A write sent (answered or not: a lost answer may hide a change made)."""
        self.writes.setdefault(key_id, []).append(Write(kind, sent, done))

    @property
    def written(self) -> list[str]:
        return sorted(self.writes)

    def span(self) -> tuple[int, int] | None:
        """From the first write sent to the last answered; None when nothing was sent."""
        every = [write for writes in self.writes.values() for write in writes]
        if not every:
            return None
        return min(write.sent for write in every), max(write.done for write in every)

    def earliest_read(self) -> int | None:
        reads = [self.read[key_id] for key_id in self.writes if key_id in self.read]
        return min(reads) if reads else None


def by_key(key_ids: Iterable[str], records: Iterable[Record]) -> Mapping[str, list[Record]]:
    """The records naming each of these keys."""
    wanted = set(key_ids)
    index: dict[str, list[Record]] = {key_id: [] for key_id in wanted}
    for record in records:
        for key_id in record.names & wanted:
            index[key_id].append(record)
    return index
