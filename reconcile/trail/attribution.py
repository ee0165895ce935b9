"""Who last changed each key: the latest key event naming it, and whether it was this tool's own.

A change is this tool's own only on evidence: an apply event of this tool (`EVENT_ACTION` by
`EVENT_ACTOR`) lists the key with a write of the change's kind whose window holds the change, and
the change was made by the writer that run proved (`writerActorId`). When the run did not prove its
writer, the change is its own only when it is the one record that matches that write; when several
do, which one is the tool's cannot be told (`Claim.UNKNOWN`), and the change is never credited to it.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeGuard

from reconcile.trail.records import Record
from reconcile.trail.writes import Write, WriteKind, by_key


class Found(StrEnum):
    CHANGED = "changed"  # the latest change is known
    NONE = "none"  # the whole horizon was searched: no change to this key in it
    NOT_REACHED = "notReached"  # the search stopped (page cap, a partial answer) before this key's latest change


class Claim(StrEnum):
    OWN = "own"  # an apply of this tool made it
    OTHER = "other"  # no apply of this tool made it
    UNKNOWN = "unknown"  # an apply of this tool wrote the key then, and the trail cannot tell whose record this is


@dataclass(frozen=True)
class ToolRun:
    """An apply of this tool, as its event in the trail describes it."""

    run_id: str
    commit: str | None
    repository: str | None
    url: str | None
    writes: Mapping[str, tuple[Write, ...]]  # per listed key (events of older versions: the run's span)
    writer: str | None  # the actor Descope recorded for the run's writes, when the run proved it


def _text(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    return value if isinstance(value, str) and value else None


def _whole(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _writes(raw: Any) -> tuple[Write, ...] | None:
    """`[[kind, sent, done], ...]` as the event lists one key's writes; None in another shape."""
    if not isinstance(raw, list):
        return None
    writes = []
    for item in raw:
        if not (isinstance(item, list) and len(item) == 3 and item[0] in WriteKind.__members__.values()):
            return None
        if not (_whole(item[1]) and _whole(item[2])):
            return None
        writes.append(Write(WriteKind(item[0]), item[1], item[2]))
    return tuple(writes)


def _listed_writes(data: Mapping[str, Any], keys: list[Any], start: int, end: int) -> dict[str, tuple[Write, ...]]:
    per_key = data.get("writes")
    if isinstance(per_key, Mapping):
        parsed = {key: _writes(value) for key, value in per_key.items() if isinstance(key, str)}
        return {key: writes for key, writes in parsed.items() if writes}
    # an event of an older version: each listed key written, of any kind, somewhere in the run's span
    return {key: tuple(Write(kind, start, end) for kind in WriteKind) for key in keys if isinstance(key, str)}


def tool_run(record: Record) -> ToolRun | None:
    """The run an apply event describes; None for any other record, or an event without its window."""
    if not record.is_tool_event:
        return None
    data, keys = record.data, record.data.get("changedKeyIds")
    start, end = data.get("writesFrom"), data.get("writesTo")
    if not (_whole(start) and _whole(end) and isinstance(keys, list)):
        return None
    return ToolRun(
        run_id=_text(data, "runId") or record.id,
        commit=_text(data, "commit"),
        repository=_text(data, "repository"),
        url=_text(data, "runUrl"),
        writes=_listed_writes(data, keys, start, end),
        writer=_text(data, "writerActorId"),
    )


def claim(
    change: Record, key_id: str, runs: Sequence[ToolRun], records: Sequence[Record]
) -> tuple[Claim, ToolRun | None]:
    """Whether an apply of this tool made this change to this key (`records`: every change to the key read)."""
    for run in runs:
        for write in run.writes.get(key_id, ()):
            if not write.matches(change):
                continue
            if run.writer is not None:
                if change.actor == run.writer:
                    return Claim.OWN, run
                continue
            rivals = [record for record in records if write.matches(record)]
            return (Claim.OWN if rivals == [change] else Claim.UNKNOWN), run
    return Claim.OTHER, None


@dataclass(frozen=True)
class Attribution:
    key_id: str
    found: Found
    change: Record | None = None
    claim: Claim = Claim.OTHER
    run: ToolRun | None = None  # the apply that made the change (OWN), or that wrote the key then (UNKNOWN)


def _changes(records: Iterable[Record], actions: frozenset[str]) -> list[Record]:
    return [record for record in records if record.action in actions and not record.is_tool_event]


def covered(key_ids: Iterable[str], records: Iterable[Record], actions: Iterable[str]) -> bool:
    """Whether these records hold a change for every key (newest first, a key's first is its latest)."""
    wanted = set(key_ids)
    for record in _changes(records, frozenset(actions)):
        wanted -= record.names
        if not wanted:
            return True
    return not wanted


def attribute(
    key_ids: Iterable[str], records: Sequence[Record], actions: Iterable[str], *, complete: bool
) -> dict[str, Attribution]:
    """Per key, its latest change among the records; `complete` when they are every record of the horizon."""
    runs = [run for run in map(tool_run, records) if run is not None]
    index = by_key(key_ids, _changes(records, frozenset(actions)))
    result = {}
    for key_id, changes in index.items():
        if not changes:
            result[key_id] = Attribution(key_id, Found.NONE if complete else Found.NOT_REACHED)
            continue
        change = max(changes, key=lambda record: record.occurred)  # on a tie, the first listed (newest first)
        verdict, run = claim(change, key_id, runs, changes)
        result[key_id] = Attribution(key_id, Found.CHANGED, change, verdict, run)
    return result
