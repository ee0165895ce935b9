"""The journal of an apply or a rotation: one JSON line per finished key, flushed before the key
counts as done, so a run killed mid-way still says what it changed.

Issued secrets leave a trail too (never the secret itself): `requested` before a create or a
rotation is sent, `issued` as soon as the answer holds the new secret, then `delivered` once every
sink took it, or `undelivered` (a sink failed, or the answer was lost), or `failed` (nothing was
issued). Those lines are fsynced. A run killed between `issued` and `delivered` leaves a secret
that only the killed process held: `unsettled` finds such keys when the next run reads the journal.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from reconcile.files import open_private_append

if TYPE_CHECKING:
    from reconcile.apply.calls import KeyResult

SECRET_EVENTS = ("requested", "issued", "delivered", "undelivered", "failed")


class Journal:
    """JSON Lines, one line per finished key, flushed before the key counts as done."""

    def __init__(self, path: Path, run_id: str, sinks: Sequence[str] = ()) -> None:
        """`sinks`: the options naming the run's secret sinks, so a later run can say how to recover."""
        self.path = path
        self.run_id = run_id
        self._file: IO[str] = open_private_append(path)  # never through a link, 0600 even if it existed
        self._write({"type": "start", "runId": run_id, "at": now_iso(), "sinks": list(sinks)})

    def _write(self, record: Mapping[str, Any], *, sync: bool = False) -> None:
        self._file.write(json.dumps(record, sort_keys=True) + "\n")
        self._file.flush()
        if sync:
            os.fsync(self._file.fileno())

    def record(self, result: KeyResult) -> None:
        self._write(
            {
                "type": "key",
                "id": result.id,
                "name": result.plan.name,
                "outcome": result.outcome.value,
                "attempts": result.attempts,
                "error": result.error.as_json() if result.error else None,
                "at": now_iso(),
            }
        )

    def secret(self, event: str, op: str, key_id: str | None, name: str, error: str | None = None) -> None:
        """One step of an issued secret's way to the sinks (the secret itself is never written)."""
        assert event in SECRET_EVENTS
        record = {"type": "secret", "event": event, "op": op, "id": key_id, "name": name, "runId": self.run_id}
        self._write({**record, "error": error, "at": now_iso()}, sync=True)

    def close(self) -> None:
        self._file.close()


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Unsettled:
    """A key whose latest issued secret was not recorded as delivered: it may be lost."""

    id: str
    name: str
    run_id: str
    at: str
    why: str
    sinks: tuple[str, ...] = ()  # the options that named the sinks of the run that issued it


def read_records(path: Path) -> list[dict[str, Any]]:
    """The journal's records; a line cut short by a crash is skipped."""
    records = []
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
    return records


_WHY = {
    "requested": "the run stopped before the answer came: the key may have a new secret nobody received",
    "issued": "the run stopped before the secret was delivered",
    "undelivered": "its secret was not delivered",
}


def unsettled(records: Iterable[Mapping[str, Any]], observed: Iterable[Mapping[str, Any]]) -> list[Unsettled]:
    """Project keys whose latest secret was issued (or may have been) but never recorded as delivered.
    A later delivery (a deliberate rotation) settles a key; a key that no longer exists needs nothing."""
    return settle(records, observed)[0]


def lost_creates(records: Iterable[Mapping[str, Any]], observed: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Names whose create was sent and never answered, and no key of the project is the one it made
    (yet): name -> which run, when. Such a name is not created again: the server may still make it."""
    return settle(records, observed)[1]


def settle(
    records: Iterable[Mapping[str, Any]], observed: Iterable[Mapping[str, Any]]
) -> tuple[list[Unsettled], dict[str, str]]:
    """The unsettled keys, and the names a lost create still holds. An open `requested` create is settled
    only by finding the key it made (a key with its name that no answer of a create ever named); another
    run's create of the same name (`delivered`) settles nothing: it may be a second key."""
    open_by_id: dict[str, list[Mapping[str, Any]]] = {}
    creating: dict[tuple[str, str], tuple[int, Mapping[str, Any]]] = {}  # (run, name): a create sent, never answered
    sinks: dict[str, tuple[str, ...]] = {}  # run id -> its sink options
    answered: dict[str, str] = {}  # id -> the event of the last create answer that named it
    delivered_at: dict[str, int] = {}  # id -> the position of its last delivery
    for position, record in enumerate(records):
        if record.get("type") == "start":
            sinks[str(record.get("runId"))] = tuple(str(option) for option in record.get("sinks") or ())
        if record.get("type") != "secret":
            continue
        event, key_id, name = record.get("event"), record.get("id"), str(record.get("name"))
        if key_id is None:  # a create before its id is known: requested, or failed
            if event == "requested":
                creating[str(record.get("runId")), name] = (position, record)
            else:
                creating.pop((str(record.get("runId")), name), None)
            continue
        if record.get("op") == "create":
            creating.pop((str(record.get("runId")), name), None)
            answered[str(key_id)] = str(event)
        steps = open_by_id.setdefault(str(key_id), [])
        if event == "delivered":
            steps.clear()
            delivered_at[str(key_id)] = position
        elif event == "failed":  # nothing was issued: back to where the key was
            if steps and steps[-1].get("event") == "requested" and steps[-1].get("runId") == record.get("runId"):
                steps.pop()
        else:
            steps.append(record)
    keys = list(observed)
    found = [(str(key.get("id")), left[-1], "") for key in keys if (left := open_by_id.get(str(key.get("id"))))]
    blocked: dict[str, str] = {}
    for (run, name), (position, record) in creating.items():
        namesakes = [str(key.get("id")) for key in keys if key.get("name") == name]
        made = [key_id for key_id in namesakes if key_id not in answered]  # no answer named it: the lost create's
        if not made:
            blocked[name] = f"run {run} sent its create at {record.get('at')} and never read the answer"
            continue
        holders = [key_id for key_id in namesakes if answered.get(key_id) == "delivered"]
        note = f"; {', '.join(holders)}, also named {name!r}, holds the delivered secret" if holders else ""
        found += [(key_id, record, note) for key_id in made if delivered_at.get(key_id, -1) < position]
    names = {str(key.get("id")): str(key.get("name") or "") for key in keys}
    seen: dict[str, Unsettled] = {}
    for key_id, record, note in found:
        why, run = _WHY.get(str(record.get("event")), "its secret was not delivered"), str(record.get("runId"))
        seen[key_id] = Unsettled(key_id, names[key_id], run, str(record.get("at")), why + note, sinks.get(run, ()))
    return sorted(seen.values(), key=lambda item: item.id), blocked
