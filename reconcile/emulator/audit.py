"""The emulator's audit trail: who changed which access key when, searchable like Descope's.

Records have the wire shape of `Audit` in descope-audit-openapi.yaml. `occurred` is kept as
milliseconds since the epoch and sent as a numeric string, as the wire has it (the OpenAPI types it
as a string, the Go and Java SDKs parse it from one), or as a number when the server is told to
(`occurred_as_string` off: the shape this emulator used to send, for tests that read both). A
record whose `occurred` is not a number (one a test appended on purpose) is sent as it was given
and sorts as if it occurred when it was appended.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconcile.emulator.store import StoreError, invalid, whole_number

KEY_CREATED = "AccessKeyCreated"
KEY_MODIFIED = "AccessKeyModified"  # update, activate, deactivate, rotate, a change in the console
KEY_DELETED = "AccessKeyDeleted"
KEYS_DELETED = "AccessKeysDeleted"  # one record for a batch delete
EVENT_TYPES = ("info", "warn", "error")
HORIZON_MS = 30 * 24 * 3600 * 1000  # the trail reaches back 30 days
DEFAULT_PAGE_SIZE = 1000  # the Go SDK's documented default and maximum
MAX_PAGE_SIZE = 1000  # a larger size is cut to this, silently: only `total` tells there is more


def now_ms() -> int:
    return int(time.time() * 1000)


def naming_keys(key_ids: Sequence[str], places: Sequence[str], *, batch: bool = False) -> dict[str, Any]:
    """The fields of a record that name the key(s) it is about, at each configured place.

    `data.<field>` holds the id (for a batch: the list of ids), `externalIds` the list of ids,
    `userId` the id (for a batch: nothing, one user id cannot name several keys).
    """
    fields: dict[str, Any] = {"data": {}}
    for place in places:
        if place == "userId":
            fields["userId"] = "" if batch else key_ids[0]
        elif place == "externalIds":
            fields["externalIds"] = list(key_ids)
        else:
            fields["data"][place.removeprefix("data.")] = list(key_ids) if batch else key_ids[0]
    return fields


@dataclass
class _Entry:
    at_ms: int  # when it sorts and ages out
    seq: int  # insertion order breaks ties
    record: dict[str, Any]


@dataclass
class _Query:
    """A parsed SearchAuditRequest (the filters this emulator honours; others are ignored)."""

    lists: dict[str, set[str]]  # record field -> wanted values, for actions / actorIds / userIds
    excluded: set[str]
    start: int
    end: int | None
    text: str
    size: int
    page: int
    oldest_first: bool

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> _Query:
        def strings(name: str) -> set[str] | None:
            value = body.get(name)
            if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                raise invalid(f"{name} must be a list of strings")
            return set(value) if value else None

        def number(name: str, default: int) -> int:
            value = body.get(name)
            parsed = default if value is None else whole_number(value)
            if parsed is None:
                raise invalid(f"{name} must be a non-negative whole number (a number or a numeric string)")
            return parsed

        if body.get("text") is not None and not isinstance(body["text"], str):
            raise invalid("text must be a string")
        if body.get("oldestFirst") is not None and not isinstance(body["oldestFirst"], bool):
            raise invalid("oldestFirst must be a boolean")
        wanted = {"action": strings("actions"), "actorId": strings("actorIds"), "userId": strings("userIds")}
        return cls(
            lists={field: values for field, values in wanted.items() if values is not None},
            excluded=strings("excludedActions") or set(),
            start=max(number("from", 0), now_ms() - HORIZON_MS),
            end=None if body.get("to") is None else number("to", 0),
            text=(body.get("text") or "").lower(),
            size=min(number("size", 0) or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE),
            page=number("page", 0),
            oldest_first=bool(body.get("oldestFirst")),
        )

    def matches(self, entry: _Entry, wire: Callable[[Mapping[str, Any]], dict[str, Any]]) -> bool:
        record = entry.record
        return (
            self.start <= entry.at_ms
            and (self.end is None or entry.at_ms <= self.end)
            and all(isinstance(record.get(f), str) and record[f] in values for f, values in self.lists.items())
            and not (isinstance(record.get("action"), str) and record["action"] in self.excluded)
            and (not self.text or self.text in json.dumps(wire(record), ensure_ascii=False).lower())
        )


class AuditTrail:
    def __init__(self, project_id: str, *, ahead_ms: int = 0) -> None:
        self._project_id = project_id
        self._ahead_ms = ahead_ms  # a server clock ahead of the client's
        self._entries: list[_Entry] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Append one record; fields not given get defaults, `occurred` is now unless given."""
        now = now_ms() + self._ahead_ms
        full: dict[str, Any] = {
            "ID": uuid.uuid4().hex,
            "projectId": self._project_id,
            "userId": "",
            "action": "",
            "occurred": now,
            "device": "",
            "method": "",
            "geo": "",
            "remoteAddress": "",
            "externalIds": [],
            "tenants": [],
            "data": {},
            "type": "info",
            "actorId": "",
        }
        full.update(copy.deepcopy(dict(record)))
        at = whole_number(full["occurred"])
        if at is not None:
            full["occurred"] = at
        with self._lock:
            self._entries.append(_Entry(now if at is None else at, len(self._entries), full))
        return copy.deepcopy(full)

    def all(self, *, occurred_as_string: bool) -> list[dict[str, Any]]:
        """Every record, old ones too, in the order they were appended: for tests."""
        with self._lock:
            return [_wire(entry.record, occurred_as_string) for entry in self._entries]

    def search(self, body: Mapping[str, Any], *, occurred_as_string: bool) -> dict[str, Any]:
        """`{"audits": [...], "total": N}`: one page of the matching records within 30 days."""
        query = _Query.parse(body)

        def wire(record: Mapping[str, Any]) -> dict[str, Any]:
            return _wire(record, occurred_as_string)

        with self._lock:
            found = [entry for entry in self._entries if query.matches(entry, wire)]
        found.sort(key=lambda entry: (entry.at_ms, entry.seq), reverse=not query.oldest_first)
        page = found[query.page * query.size : (query.page + 1) * query.size]
        return {"audits": [wire(entry.record) for entry in page], "total": len(found)}


def _wire(record: Mapping[str, Any], occurred_as_string: bool) -> dict[str, Any]:
    wire = copy.deepcopy(dict(record))
    if occurred_as_string and isinstance(wire["occurred"], int):
        wire["occurred"] = str(wire["occurred"])
    return wire


def check_event(body: Mapping[str, Any]) -> dict[str, Any]:
    """A CreateAuditRequest as a record: action and type (info, warn or error) are required."""
    if not isinstance(body.get("action"), str) or not body["action"]:
        raise StoreError(400, "E011002", "Missing arguments", "action is required")
    if body.get("type") not in EVENT_TYPES:
        raise invalid(f"type must be one of {', '.join(EVENT_TYPES)}")
    for name in ("actorId", "tenantId", "userId"):
        if body.get(name) is not None and not isinstance(body[name], str):
            raise invalid(f"{name} must be a string")
    if body.get("data") is not None and not isinstance(body["data"], dict):
        raise invalid("data must be an object")
    return {
        "action": body["action"],
        "type": body["type"],
        "actorId": body.get("actorId") or "",
        "userId": body.get("userId") or "",
        "tenants": [body["tenantId"]] if body.get("tenantId") else [],
        "data": body.get("data") or {},
    }
