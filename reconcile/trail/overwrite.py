"""Changes by someone else that an apply made between its read of a key and its write.

An update body pins every field, so another actor's change between this run's read of a key and
its update is reverted by it: `overwritten`. A status change, a rotation or a delete pins no other
field: another actor's change before it is reported as what it is (`changedMeanwhile`), never as
an overwrite.

Which records are this run's own is decided by evidence, never by proximity or a vote: a record is
the run's write when it names the key, is of the write's kind and lies inside the write's window
(`Write.matches`), and is by the run's writer. The writer (the actor Descope records for the
management key, which the trail never shows) is proven when every write that exactly one record
matches was matched by the same actor. Unproven, or a write with no record or several of the writer,
the key is `not checked`: said, never called overwritten, never silently clean. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from reconcile.trail.records import Record
from reconcile.trail.writes import Timeline, WriteKind, by_key


@dataclass(frozen=True)
class Overwrite:
    key_id: str
    change: Record
    write: WriteKind  # this run's write after the change; it reverted it only when it pins fields

    @property
    def reverted(self) -> bool:
        return self.write.pins_fields


@dataclass(frozen=True)
class OverwriteCheck:
    writer: str | None  # the actor of this run's writes, when proven
    changes: tuple[Overwrite, ...]  # others' changes between a key's read and this run's write to it
    not_checked: Mapping[str, str]  # key id → why its changes could not be told from this run's
    # The written keys (created ones too) whose every write has its own record in what was read.
    found: frozenset[str] = frozenset()

    @property
    def overwritten(self) -> tuple[Overwrite, ...]:
        return tuple(change for change in self.changes if change.reverted)

    @property
    def meanwhile(self) -> tuple[Overwrite, ...]:
        return tuple(change for change in self.changes if not change.reverted)


def prove_writer(timeline: Timeline, index: Mapping[str, list[Record]]) -> str | None:
    """The writer, when every write matched by exactly one record was matched by one and the same actor."""
    sole: set[str] = set()
    for key_id, writes in timeline.writes.items():
        for write in writes:
            matching = [record for record in index.get(key_id, ()) if write.matches(record)]
            if len(matching) == 1:
                sole.add(matching[0].actor)
    return next(iter(sole)) if len(sole) == 1 and "" not in sole else None


def _own(key_id: str, timeline: Timeline, records: list[Record], writer: str | None) -> list[Record] | str:
    """This run's record of each write to the key, or why they cannot be told."""
    if writer is None:
        return (
            "the trail does not prove which actor made this run's writes "
            "(not indexed yet, or others' changes beside them)"
        )
    own = []
    for write in timeline.writes[key_id]:
        mine = [record for record in records if write.matches(record) and record.actor == writer]
        if len(mine) != 1:
            found = "no record" if not mine else f"{len(mine)} records"
            return f"{found} of this run's {write.kind.value} in the trail (not indexed yet?)"
        own.append(mine[0])
    return own


def find_overwrites(
    timeline: Timeline, records: Iterable[Record], actions: Iterable[str], *, read_since: int | None = None
) -> OverwriteCheck:
    """Others' changes to each written key between its read and this run's writes to it.
    `read_since`: the records older than this were not read (a capped search), so a key read before
    it is not checked."""
    kept = frozenset(actions)
    index = by_key(timeline.written, (r for r in records if r.action in kept and not r.is_tool_event))
    writer = prove_writer(timeline, index)
    changes: list[Overwrite] = []
    not_checked: dict[str, str] = {}
    recorded: set[str] = set()
    for key_id in timeline.written:
        own = _own(key_id, timeline, index[key_id], writer)
        if not isinstance(own, str):
            recorded.add(key_id)
        read = timeline.read.get(key_id)
        if read is None:
            continue  # created by this run: there was nothing to overwrite
        if read_since is not None and read < read_since:
            not_checked[key_id] = "the trail since this run's read was not read to the end (--attribution-pages)"
            continue
        if isinstance(own, str):
            not_checked[key_id] = own
            continue
        for write, record in zip(timeline.writes[key_id], own, strict=True):
            found = [r for r in index[key_id] if r not in own and read <= r.occurred <= record.occurred]
            changes.extend(Overwrite(key_id, r, write.kind) for r in sorted(found, key=lambda r: r.occurred))
    unique: dict[tuple[object, ...], Overwrite] = {}  # a change once: as reverted when any write reverted it
    for change in sorted(changes, key=lambda c: not c.reverted):
        unique.setdefault((change.key_id, change.change.id, change.change.occurred, change.change.actor), change)
    ordered = sorted(unique.values(), key=lambda c: (c.key_id, c.change.occurred))
    return OverwriteCheck(writer, tuple(ordered), not_checked, frozenset(recorded))
