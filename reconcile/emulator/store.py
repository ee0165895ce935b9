"""The emulator's access keys: in memory, with Descope's update semantics (merge or replace).

Error codes follow the reference notes: E011003 for a body that fails validation, E011004 for
invalid arguments (an unknown id, a non-editable key, roleNames together with keyTenants).
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

UpdateSemantics = Literal["merge", "replace"]
# Spelled out here, not imported from reconcile.model: the server side stays an independent model,
# so a mistake in the tool's own field list shows up in the tests instead of being shared.
UPDATABLE = (
    "name",
    "description",
    "roleNames",
    "keyTenants",
    "customClaims",
    "permittedIps",
    "customAttributes",
)
_EMPTY: dict[str, Any] = {
    "name": "",
    "description": "",
    "roleNames": [],
    "keyTenants": [],
    "customClaims": {},
    "permittedIps": [],
    "customAttributes": {},
}


@dataclass
class StoreError(Exception):
    status: int
    code: str
    description: str
    message: str = ""


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def _str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _check_body(body: Any) -> None:
    """The shapes a real server accepts; anything else is a 400 with E011003."""

    def bad(why: str) -> StoreError:
        return StoreError(400, "E011003", "Request validation failed", why)

    if not isinstance(body, dict):
        raise bad("body must be a JSON object")
    unknown = set(body) - {"id", *UPDATABLE}
    if unknown:
        raise bad(f"unknown fields: {sorted(unknown)}")
    if not isinstance(body.get("id"), str) or not body["id"]:
        raise bad("id is required")
    checks: dict[str, Callable[[Any], bool]] = {
        "name": lambda v: isinstance(v, str),
        "description": lambda v: isinstance(v, str),
        "roleNames": _str_list,
        "permittedIps": _str_list,
        "keyTenants": lambda v: (
            isinstance(v, list)
            and all(
                isinstance(t, dict) and isinstance(t.get("tenantId"), str) and _str_list(t.get("roleNames", []))
                for t in v
            )
        ),
        "customClaims": lambda v: isinstance(v, dict) and all(_is_scalar(x) for x in v.values()),
        "customAttributes": lambda v: (
            isinstance(v, dict)
            and all(_is_scalar(x) or (isinstance(x, list) and all(_is_scalar(i) for i in x)) for x in v.values())
        ),
    }
    for name, ok in checks.items():
        if body.get(name) is not None and not ok(body[name]):
            raise bad(f"{name} has the wrong shape")


def complete_key(raw: Mapping[str, Any], index: int = 0) -> dict[str, Any]:
    """A seeded key with every field a real server returns."""
    key: dict[str, Any] = {field: copy.deepcopy(empty) for field, empty in _EMPTY.items()}
    key.update(
        {
            "status": "active",
            "createdTime": int(time.time()),
            "expireTime": 0,
            "createdBy": "emulator",
            "clientId": f"C{index:08d}",
            "boundUserId": "",
            "editable": True,
        }
    )
    key.update(copy.deepcopy(dict(raw)))
    if not isinstance(key.get("id"), str) or not key["id"]:
        raise ValueError(f"seed key #{index} has no id")
    return key


class KeyStore:
    def __init__(self, keys: Iterable[Mapping[str, Any]] = (), tenant_names: Mapping[str, str] | None = None) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, dict[str, Any]] = {}
        self._tenant_names = dict(tenant_names or {})
        for index, raw in enumerate(keys):
            key = complete_key(raw, index)
            self._keys[key["id"]] = key

    def _view(self, key: Mapping[str, Any]) -> dict[str, Any]:
        view = copy.deepcopy(dict(key))
        for tenant in view["keyTenants"]:
            tenant["tenantName"] = self._tenant_names.get(tenant["tenantId"], tenant["tenantId"])
        return view

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._view(key) for key in self._keys.values()]

    def search(self, request: Mapping[str, Any]) -> list[dict[str, Any]]:
        tenant_ids = set(request.get("tenantIds") or ())
        text = (request.get("text") or "").lower()
        with self._lock:
            return [
                self._view(key)
                for key in self._keys.values()
                if (not tenant_ids or tenant_ids & {t["tenantId"] for t in key["keyTenants"]})
                and (not text or text in key["name"].lower() or text in key["id"].lower())
            ]

    def load(self, key_id: str) -> dict[str, Any]:
        with self._lock:
            return self._view(self._get(key_id))

    def _get(self, key_id: str) -> dict[str, Any]:
        key = self._keys.get(key_id)
        if key is None:
            raise StoreError(404, "E011004", "Access key not found", f"no access key with id {key_id}")
        return key

    def update(self, body: Any, semantics: UpdateSemantics) -> dict[str, Any]:
        _check_body(body)
        with self._lock:
            key = self._get(body["id"])
            if not key.get("editable", True):
                raise StoreError(400, "E011004", "Access key is not editable")
            updated = dict(key)
            for name in UPDATABLE:
                value = body.get(name)
                if value is not None:
                    updated[name] = copy.deepcopy(value)
                elif semantics == "replace":
                    updated[name] = copy.deepcopy(_EMPTY[name])
            updated["keyTenants"] = [
                {"tenantId": t["tenantId"], "roleNames": list(t.get("roleNames") or [])} for t in updated["keyTenants"]
            ]
            if updated["roleNames"] and updated["keyTenants"]:
                raise StoreError(400, "E011004", "Invalid arguments", "a key has roleNames or keyTenants, not both")
            self._keys[key["id"]] = updated
            return self._view(updated)

    def set_status(self, key_ids: Iterable[str], status: str) -> None:
        with self._lock:
            keys = [self._get(key_id) for key_id in key_ids]
            for key in keys:
                key["status"] = status
