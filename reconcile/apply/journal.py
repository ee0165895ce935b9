"""The journal of an apply or a rotation: one JSON line per finished key, written before the key
counts as done, so a run killed mid-way still says what it changed.

Issued secrets leave a trail too (never the secret itself): `requested` before a create or a
rotation is sent, `issued` as soon as the answer holds the new secret, then `delivered` once every
sink took it, or `undelivered` (a sink failed, or the answer was lost), or `failed` (nothing was
issued). Those lines are fsynced. A run killed between `issued` and `delivered` leaves a secret
that only the killed process held: `unsettled` finds such keys when the next run reads the journal.

Each run's first line names its project and the canonical base URL: a journal shared by runs
against several projects flags only the current project's keys. A write that fails (a full disk)
does not stop a secret already issued from reaching the sinks: the journal remembers the failure,
no further secret is issued, and the run fails naming the journal and the key (`failure`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from reconcile.errors import ConfigError
from reconcile.files import JsonLines

if TYPE_CHECKING:
    from reconcile.apply.calls import KeyResult

SECRET_EVENTS = ("requested", "issued", "delivered", "undelivered", "failed")


@dataclass(frozen=True)
class Project:
    """Whose keys a journal's records are about (equal when they name one project on one server)."""

    id: str
    base_url: str

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Project) and (self.id, self.canonical_url) == (other.id, other.canonical_url)

    def __hash__(self) -> int:
        return hash((self.id, self.canonical_url))

    @property
    def canonical_url(self) -> str:
        """The base URL as one server is named once: scheme and host in lower case, no default port,
        no trailing slash."""
        parts = urlsplit(self.base_url.strip())
        host = (parts.hostname or "").lower()
        port = parts.port
        default = {"https": 443, "http": 80}.get(parts.scheme.lower())
        netloc = host if port is None or port == default else f"{host}:{port}"
        return f"{parts.scheme.lower()}://{netloc}{parts.path.rstrip('/')}"


@dataclass(frozen=True)
class JournalFailure:
    """The first journal write that failed: why, and the key whose step it was (None: a key's result line)."""

    error: str
    event: str
    key_id: str | None
    name: str


class Journal:
    """JSON Lines (reconcile.files.JsonLines), one line per finished key, written before the key
    counts as done; a secret's steps are fsynced."""

    def __init__(self, path: Path, run_id: str, sinks: Sequence[str] = (), project: Project | None = None) -> None:
        """`sinks`: the options naming the run's secret sinks, so a later run can say how to recover."""
        self.path = path
        self.run_id = run_id
        self.failure: JournalFailure | None = None
        start: dict[str, Any] = {"type": "start", "runId": run_id, "at": now_iso(), "sinks": list(sinks)}
        if project is not None:
            start |= {"projectId": project.id, "baseUrl": project.canonical_url}
        self._lines = JsonLines(path)  # never through a link, 0600 even if it existed
        try:
            self._lines.append(json.dumps(start, sort_keys=True), durable=True)
        except OSError as error:  # before anything was sent
            self._lines.close()
            raise ConfigError(f"journal {path}: cannot be written: {error.strerror or error}") from None

    def _write(self, record: Mapping[str, Any], *, durable: bool = False) -> bool:
        """False when the journal could not take the line (now or earlier: a journal with a hole is
        not trusted to say what the run did)."""
        if self.failure is not None:
            return False
        try:
            self._lines.append(json.dumps(record, sort_keys=True), durable=durable)
        except OSError as error:
            key_id = record.get("id")
            event = str(record.get("event") or record.get("type"))
            self.failure = JournalFailure(
                error.strerror or str(error), event, None if key_id is None else str(key_id), str(record.get("name"))
            )
            return False
        return True

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

    def secret(  # noqa: PLR0913 (each argument is one field of the journal line)
        self, event: str, op: str, key_id: str | None, name: str, error: str | None = None, *, took: Sequence[str] = ()
    ) -> bool:
        """One step of an issued secret's way to the sinks (the secret itself is never written); `took`:
        the sinks that took an undelivered secret all the same. False when the journal could not take it."""
        assert event in SECRET_EVENTS
        record: dict[str, Any] = {"type": "secret", "event": event, "op": op, "id": key_id, "name": name}
        record |= {"runId": self.run_id, "error": error, "at": now_iso()} | ({"took": list(took)} if took else {})
        return self._write(record, durable=True)

    def close(self) -> None:
        self._lines.close()


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
    delivered_to: tuple[str, ...] = ()  # the sinks that took it all the same (a partial delivery)


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


def _other_projects_runs(records: Sequence[Mapping[str, Any]], project: Project) -> set[str]:
    """The runs whose first line names another project or server. A run that names none (a journal
    written before runs named their project, or whose first line a crash cut short) still counts:
    a lost secret is worth a question."""
    return {
        str(record.get("runId"))
        for record in records
        if record.get("type") == "start"
        and "projectId" in record
        and Project(str(record.get("projectId")), str(record.get("baseUrl"))) != project
    }


def unsettled(
    records: Iterable[Mapping[str, Any]], observed: Iterable[Mapping[str, Any]], project: Project | None = None
) -> list[Unsettled]:
    """Project keys whose latest secret was issued (or may have been) but never recorded as delivered.
    A later delivery (a deliberate rotation) settles a key; a key that no longer exists needs nothing.
    With `project`, the records of runs against another project or server are not read."""
    return settle(records, observed, project)[0]


def settle(
    records: Iterable[Mapping[str, Any]], observed: Iterable[Mapping[str, Any]], project: Project | None = None
) -> tuple[list[Unsettled], dict[str, str]]:
    """The unsettled keys, and the names a lost create still holds. An open `requested` create is settled
    only by finding the key it made (a key with its name that no answer of a create ever named); another
    run's create of the same name (`delivered`) settles nothing: it may be a second key."""
    records = list(records)
    other = _other_projects_runs(records, project) if project is not None else set()
    open_by_id: dict[str, list[Mapping[str, Any]]] = {}
    creating: dict[tuple[str, str], tuple[int, Mapping[str, Any]]] = {}  # (run, name): a create sent, never answered
    sinks: dict[str, tuple[str, ...]] = {}  # run id -> its sink options
    answered: dict[str, str] = {}  # id -> the event of the last create answer that named it
    delivered_at: dict[str, int] = {}  # id -> the position of its last delivery
    for position, record in enumerate(records):
        if str(record.get("runId")) in other:
            continue
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
        took = tuple(str(option) for option in record.get("took") or ())
        seen[key_id] = Unsettled(
            key_id, names[key_id], run, str(record.get("at")), why + note, sinks.get(run, ()), took
        )
    return sorted(seen.values(), key=lambda item: item.id), blocked
