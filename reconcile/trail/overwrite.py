"""Changes by someone else that an apply silently reverted.

An update body pins every field, so a change another actor made to a key between this run's read
of it and its write is undone by the write. Per key the run records when it read the key and when
it sent and got answers to its writes (`Timeline`); afterwards the trail says who wrote when.

The actor Descope records for this run's own writes is not known beforehand (it derives from the
management key, which the trail never shows): it is the actor of the record that lies closest to
each write's answer, by a vote over the keys written. Every record of another actor naming the key
between the read and this run's last own write to it is an overwritten change. Pure: no I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from reconcile.trail.attribution import MATCH_MARGIN_MS
from reconcile.trail.records import Record


@dataclass
class Timeline:
    """Wall-clock milliseconds per key: read, first write sent, last write answered (or failed)."""

    read: dict[str, int] = field(default_factory=dict)
    first_sent: dict[str, int] = field(default_factory=dict)
    last_done: dict[str, int] = field(default_factory=dict)

    def mark_read(self, key_ids: Iterable[str], at: int) -> None:
        self.read.update(dict.fromkeys(key_ids, at))

    def mark_sent(self, key_id: str, at: int) -> None:
        self.first_sent.setdefault(key_id, at)

    def mark_done(self, key_id: str, at: int) -> None:
        self.last_done[key_id] = at

    @property
    def written(self) -> list[str]:
        """Keys a write was sent for (answered or not: a lost answer may hide a change made)."""
        return sorted(key_id for key_id in self.first_sent if key_id in self.last_done)

    def span(self) -> tuple[int, int] | None:
        """From the first write sent to the last answered; None when nothing was sent."""
        if not self.first_sent or not self.last_done:
            return None
        return min(self.first_sent.values()), max(self.last_done.values())

    def earliest_read(self) -> int | None:
        reads = [self.read[key_id] for key_id in self.written if key_id in self.read]
        return min(reads) if reads else None


@dataclass(frozen=True)
class Overwrite:
    key_id: str
    change: Record


@dataclass(frozen=True)
class OverwriteCheck:
    writer: str | None  # the actor of this run's writes, as the trail shows them
    overwritten: tuple[Overwrite, ...]
    unseen: tuple[str, ...]  # keys written whose write the trail does not show (not checked)


def _by_key(key_ids: Iterable[str], records: Iterable[Record]) -> dict[str, list[Record]]:
    wanted = set(key_ids)
    index: dict[str, list[Record]] = {key_id: [] for key_id in wanted}
    for record in records:
        for key_id in record.names & wanted:
            index[key_id].append(record)
    return index


def _near_write(key_id: str, timeline: Timeline, records: Iterable[Record]) -> list[Record]:
    start = timeline.first_sent[key_id] - MATCH_MARGIN_MS
    end = timeline.last_done[key_id] + MATCH_MARGIN_MS
    return [r for r in records if start <= r.occurred <= end]


def identify_writer(timeline: Timeline, index: dict[str, list[Record]]) -> str | None:
    """The actor of the record nearest each write's answer, most often; None when no write shows."""
    votes: Counter[str] = Counter()
    for key_id in timeline.written:
        done = timeline.last_done[key_id]
        near = _near_write(key_id, timeline, index.get(key_id, ()))
        nearest = min(near, key=lambda r: abs(r.occurred - done), default=None)
        if nearest is not None:
            votes[nearest.actor] += 1
    return votes.most_common(1)[0][0] if votes else None


def find_overwrites(timeline: Timeline, records: Iterable[Record], actions: Iterable[str]) -> OverwriteCheck:
    """Another actor's changes to each written key between its read and this run's last write to it."""
    kept = frozenset(actions)
    index = _by_key(timeline.written, (r for r in records if r.action in kept and not r.is_tool_event))
    writer = identify_writer(timeline, index)
    overwritten: list[Overwrite] = []
    unseen: list[str] = []
    for key_id in timeline.written:
        own = [r.occurred for r in _near_write(key_id, timeline, index[key_id]) if r.actor == writer]
        if writer is None or not own or key_id not in timeline.read:
            unseen.append(key_id)
            continue
        start, end = timeline.read[key_id], max(own)
        found = [r for r in index[key_id] if r.actor != writer and start <= r.occurred <= end]
        overwritten.extend(Overwrite(key_id, r) for r in sorted(found, key=lambda r: r.occurred))
    return OverwriteCheck(writer, tuple(overwritten), tuple(unseen))
