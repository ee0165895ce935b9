"""The `/_emulator/*` endpoints: what a test sees and does when the server runs in another process.

They need no credentials, are never rate limited nor faulted, and are not in the request log.

    GET  /_emulator/stats     counters: requests by path and status, 429s, faults, blocks
    GET  /_emulator/keys      {"keys": [AccessKey, ...]}
    GET  /_emulator/requests  {"requests": [{method, path, status, body, at, fault, applied}, ...]}
    GET  /_emulator/config    {"config": {switch: value}}: the switches settable at run time
    POST /_emulator/config    {switch: value, ...}: set them (all or none) -> {"config": ...}
    POST /_emulator/console   a change "made in the console" by another actor -> {"key", "audit"}
    GET  /_emulator/audit     {"audits": [...]}: every record, those beyond 30 days too
    POST /_emulator/audit     {"records": [partial Audit, ...]}: append as given -> {"audits": [...]}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from reconcile.emulator.answers import Answer, error, one_id
from reconcile.emulator.audit import KEY_DELETED, KEY_MODIFIED
from reconcile.emulator.config import apply_runtime, runtime_view
from reconcile.emulator.store import StoreError, invalid

if TYPE_CHECKING:
    from reconcile.emulator.server import Emulator

CONSOLE_ACTOR = "U2consoleAdmin"  # who a console change is by when the request names nobody


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid("body must be a JSON object")
    return body


def _console(emulator: Emulator, body: Any) -> dict[str, Any]:
    """`{id, changes: {field: value, status: active|inactive}, actorId, remoteAddress}` changes
    the key (merge: only the fields given), or `{id, delete: true, ...}` deletes it; either way
    the trail records it as done by `actorId` from `remoteAddress` on a desktop browser."""
    body = _object(body)
    key_id = one_id(body)
    changes, delete = body.get("changes") or {}, body.get("delete", False)
    actor, remote = body.get("actorId") or CONSOLE_ACTOR, body.get("remoteAddress") or ""
    if not isinstance(changes, dict) or not isinstance(delete, bool):
        raise invalid("changes is an object, delete a boolean")
    if not isinstance(actor, str) or not isinstance(remote, str):
        raise invalid("actorId and remoteAddress are strings")
    if delete == bool(changes):
        raise invalid("give changes, or delete: true")
    if delete:
        deleted = emulator.store.delete([key_id])
        return {"key": None, "audit": emulator.record_change(KEY_DELETED, deleted, actor, remote, device="Desktop")}
    status = changes.get("status")
    if status not in (None, "active", "inactive"):
        raise invalid("status is active or inactive")
    fields = {name: value for name, value in changes.items() if name != "status"}
    key = emulator.store.update({**fields, "id": key_id}, "merge") if fields else emulator.store.load(key_id)
    if status is not None:
        key = emulator.store.set_status([key_id], status)[0]
    return {"key": key, "audit": emulator.record_change(KEY_MODIFIED, [key], actor, remote, device="Desktop")}


def _append_audit(emulator: Emulator, body: Any) -> dict[str, Any]:
    records = _object(body).get("records")
    if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
        raise invalid("records is a list of objects")
    return {"audits": [emulator.audit.add(record) for record in records]}


def _set_config(emulator: Emulator, body: Any) -> dict[str, Any]:
    apply_runtime(emulator.config, _object(body))
    return {"config": runtime_view(emulator.config)}


_HANDLERS: dict[tuple[str, str], Callable[[Emulator, Any], dict[str, Any]]] = {
    ("GET", "stats"): lambda emulator, _: emulator.stats(),
    ("GET", "keys"): lambda emulator, _: {"keys": emulator.store.all()},
    ("GET", "requests"): lambda emulator, _: {"requests": [dataclasses.asdict(r) for r in emulator.recorded()]},
    ("GET", "config"): lambda emulator, _: {"config": runtime_view(emulator.config)},
    ("POST", "config"): _set_config,
    ("POST", "console"): _console,
    ("GET", "audit"): lambda emulator, _: {
        "audits": emulator.audit.all(occurred_as_string=emulator.config.occurred_as_string)
    },
    ("POST", "audit"): _append_audit,
}


def admin_answer(emulator: Emulator, method: str, name: str, body: Any) -> Answer:
    """The answer to `method /_emulator/<name>`."""
    handler = _HANDLERS.get((method, name))
    if handler is None:
        return error(404, "E011001", "Not found", f"{method} /_emulator/{name}")
    try:
        return Answer(200, handler(emulator, body))
    except StoreError as failure:
        return error(failure.status, failure.code, failure.description, failure.message)
    except ValueError as failure:  # a run-time switch with a bad value
        return error(400, "E011003", "Request validation failed", str(failure))
