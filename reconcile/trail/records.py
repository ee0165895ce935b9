"""Audit records as this tool reads them: the wire shape checked, `occurred` in milliseconds, and
every string that may name an access key collected (where Descope puts the key id is not published).

Pure: no I/O. A record or page in another shape raises `TrailShapeError`: attribution then says it
is unavailable rather than guessing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Descope's published access-key events (the default of --attribution-actions).
KEY_ACTIONS = ("AccessKeyCreated", "AccessKeyModified", "AccessKeyDeleted", "AccessKeysDeleted")
# The event every apply that changed something writes into the project's trail, and its actor.
EVENT_ACTION = "DescopeReconcileApply"
EVENT_ACTOR = "descope-reconcile"
DAY_MS = 24 * 3600 * 1000
HORIZON_DAYS = 30  # how far back the trail reaches
PAGE_SIZE = 1000  # records asked for per search; a server that sends fewer pages on by the same index
_MAX_DEPTH = 64  # data nested deeper than this is not searched for key ids
MAX_OCCURRED_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: the last instant a date can show


class TrailShapeError(ValueError):
    """A page or record of the audit search answer is not in the shape Descope documents."""


@dataclass(frozen=True)
class Record:
    id: str
    action: str
    actor: str  # "" when the record names none
    occurred: int  # milliseconds since the epoch
    remote: str  # the remote address, "" when absent
    names: frozenset[str]  # every string value of data (recursively), userId and externalIds
    data: Mapping[str, Any]

    @property
    def is_tool_event(self) -> bool:
        return self.action == EVENT_ACTION and self.actor == EVENT_ACTOR


def occurred_ms(value: Any) -> int:
    """`occurred`: milliseconds as a number or a string of digits (the OpenAPI types it as a string)."""
    whole = isinstance(value, int) and not isinstance(value, bool)
    number = whole or (isinstance(value, float) and value.is_integer())
    digits = isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20
    if not (number or digits):
        raise TrailShapeError(f"occurred is {str(value)[:40]!r}, not milliseconds")
    ms = int(value)
    if not 0 <= ms <= MAX_OCCURRED_MS:  # a date no one can show: not a time of the last 30 days
        raise TrailShapeError(f"occurred is {str(value)[:40]!r}, not a time since 1970 that a date can show")
    return ms


def _strings(value: Any) -> Iterator[str]:
    """Every string inside a JSON value (mapping values and list items, not mapping keys)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            yield item
        elif depth < _MAX_DEPTH and isinstance(item, Mapping):
            stack.extend((child, depth + 1) for child in item.values())
        elif depth < _MAX_DEPTH and isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)


def _optional(raw: Mapping[str, Any], name: str, kind: type, default: Any) -> Any:
    value = raw.get(name)
    if value is None:
        return default
    if not isinstance(value, kind):
        raise TrailShapeError(f"{name} is a {type(value).__name__}, not a {kind.__name__}")
    return value


def parse_record(raw: Any) -> Record:
    if not isinstance(raw, Mapping):
        raise TrailShapeError(f"a record is a {type(raw).__name__}, not an object")
    action = raw.get("action")
    if not isinstance(action, str) or not action:
        raise TrailShapeError("a record has no action")
    data = _optional(raw, "data", Mapping, {})
    external = _optional(raw, "externalIds", list, [])
    if not all(isinstance(item, str) for item in external):
        raise TrailShapeError("externalIds holds something other than strings")
    user = _optional(raw, "userId", str, "")
    return Record(
        id=str(raw.get("ID") or ""),
        action=action,
        actor=_optional(raw, "actorId", str, ""),
        occurred=occurred_ms(raw.get("occurred")),
        remote=_optional(raw, "remoteAddress", str, ""),
        names=frozenset([*_strings(data), *external, user]) - {""},
        data=data,
    )


def parse_page(body: Any) -> tuple[list[Record], int | None]:
    """An audit search answer → its records and `total` (None when it sends none)."""
    if not isinstance(body, Mapping):
        raise TrailShapeError("the answer is not an object")
    audits = body.get("audits")
    if audits is None:
        audits = []
    if not isinstance(audits, list):
        raise TrailShapeError("audits is not a list")
    total = body.get("total")
    if total is not None and (isinstance(total, bool) or not isinstance(total, int)):
        raise TrailShapeError("total is not a whole number")
    return [parse_record(raw) for raw in audits], total


def search_body(actions: Sequence[str], start: int, end: int, page: int) -> dict[str, Any]:
    """One page of the records of these actions between two times (ms, sent as numbers like the
    SDK), newest first."""
    return {"actions": list(actions), "from": start, "to": end, "size": PAGE_SIZE, "page": page}
