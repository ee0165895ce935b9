"""Who last changed each key: the latest key event naming it, and whether it was this tool's own.

A change is this tool's own when an apply event of this tool (`EVENT_ACTION` by `EVENT_ACTOR`)
claims it: the event lists the key among the keys it changed (or lists too many to name them all),
the change happened while that run was writing, and it was made by the actor Descope recorded for
that run's writes, when the run could tell which one that was. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeGuard

from reconcile.trail.records import Record

# How far a change may lie outside a run's write window (its clock against Descope's) and still be its own.
MATCH_MARGIN_MS = 2000


class Found(StrEnum):
    CHANGED = "changed"  # the latest change is known
    NONE = "none"  # the whole horizon was searched: no change to this key in it
    NOT_REACHED = "notReached"  # the page cap was reached before this key's latest change


@dataclass(frozen=True)
class ToolRun:
    """An apply of this tool, as its event in the trail describes it."""

    run_id: str
    commit: str | None
    repository: str | None
    url: str | None
    changed: frozenset[str]
    not_listed: int  # changed keys the event does not name (it names at most 100)
    writes_from: int  # ms: the first write sent
    writes_to: int  # ms: the last write answered
    writer: str | None  # the actor Descope recorded for the run's writes, when the run found it


def _text(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    return value if isinstance(value, str) and value else None


def _whole(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def tool_run(record: Record) -> ToolRun | None:
    """The run an apply event describes; None for any other record, or an event without its window."""
    if not record.is_tool_event:
        return None
    data, keys = record.data, record.data.get("changedKeyIds")
    start, end, rest = data.get("writesFrom"), data.get("writesTo"), data.get("changedKeysNotListed", 0)
    if not (_whole(start) and _whole(end) and _whole(rest) and isinstance(keys, list)):
        return None
    return ToolRun(
        run_id=_text(data, "runId") or record.id,
        commit=_text(data, "commit"),
        repository=_text(data, "repository"),
        url=_text(data, "runUrl"),
        changed=frozenset(key for key in keys if isinstance(key, str)),
        not_listed=rest,
        writes_from=start,
        writes_to=end,
        writer=_text(data, "writerActorId"),
    )


def owning_run(change: Record, key_id: str, runs: Sequence[ToolRun]) -> ToolRun | None:
    """The apply of this tool that made this change to this key, if one did."""
    for run in runs:
        if not run.writes_from - MATCH_MARGIN_MS <= change.occurred <= run.writes_to + MATCH_MARGIN_MS:
            continue
        if run.writer is not None and change.actor != run.writer:
            continue
        if key_id in run.changed or (run.not_listed > 0 and run.writer is not None):
            return run
    return None


@dataclass(frozen=True)
class Attribution:
    key_id: str
    found: Found
    change: Record | None = None
    run: ToolRun | None = None  # set when the change was this tool's own


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
    wanted = set(key_ids)
    latest: dict[str, Record] = {}
    for record in _changes(records, frozenset(actions)):
        for key_id in record.names & wanted:
            if key_id not in latest or record.occurred > latest[key_id].occurred:
                latest[key_id] = record  # on a tie, the first listed (newest first)
    result = {}
    for key_id in wanted:
        change = latest.get(key_id)
        if change is None:
            result[key_id] = Attribution(key_id, Found.NONE if complete else Found.NOT_REACHED)
        else:
            result[key_id] = Attribution(key_id, Found.CHANGED, change, owning_run(change, key_id, runs))
    return result
