"""The emulator's access keys: in memory, with Descope's update semantics (merge or replace).

Error codes follow the reference notes: E011003 for a body that fails validation, E011004 for
invalid arguments (an unknown id, a non-editable key), E011002 for missing arguments. A key may
hold global roleNames and keyTenants together: the Python SDK says tenant roles take precedence, so
the server likely accepts both. A key's secret (its cleartext) is kept only as a SHA-256 digest, apart from
the key, so no view of a key, dump or log can carry it; the cleartext leaves the server once, in
the answer to create or rotate.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import ipaddress
import json
import re
import secrets
import string
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
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
CREATE_FIELDS = ("expireTime", "userId", *UPDATABLE)
_EMPTY: dict[str, Any] = {
    "name": "",
    "description": "",
    "roleNames": [],
    "keyTenants": [],
    "customClaims": {},
    "permittedIps": [],
    "customAttributes": {},
}
_CONTAINERS = (dict, list)
_ID_CHARS = string.ascii_letters + string.digits
_DIGITS = re.compile(r"^[0-9]+$")


@dataclass
class StoreError(Exception):
    status: int
    code: str
    description: str
    message: str = ""


def invalid(why: str) -> StoreError:
    return StoreError(400, "E011003", "Request validation failed", why)


def missing(why: str) -> StoreError:
    return StoreError(400, "E011002", "Missing arguments", why)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def _str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _tenants_ok(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(t, dict) and isinstance(t.get("tenantId"), str) and _str_list(t.get("roleNames", [])) for t in value
    )


def _attributes_ok(value: Any) -> bool:
    return isinstance(value, dict) and all(
        _is_scalar(x) or (isinstance(x, list) and all(_is_scalar(i) for i in x)) for x in value.values()
    )


def whole_number(value: Any) -> int | None:
    """A non-negative whole number, given as a JSON number or a numeric string; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float):
        return int(value) if value.is_integer() and value >= 0 else None
    if isinstance(value, str) and _DIGITS.match(value):
        return int(value)
    return None


# The shape every field of a request must have when it is not null (null means "not given").
_SHAPES: dict[str, Callable[[Any], bool]] = {
    "id": lambda v: isinstance(v, str),
    "name": lambda v: isinstance(v, str),
    "description": lambda v: isinstance(v, str),
    "userId": lambda v: isinstance(v, str),
    "expireTime": lambda v: whole_number(v) is not None,
    "roleNames": _str_list,
    "permittedIps": _str_list,
    "keyTenants": _tenants_ok,
    "customClaims": lambda v: isinstance(v, dict) and all(_is_scalar(x) for x in v.values()),
    "customAttributes": _attributes_ok,
}


def check_fields(body: Any, allowed: Collection[str], required: Collection[str] = ()) -> dict[str, Any]:
    """The shapes a real server accepts; anything else is a 400 with E011003."""
    if not isinstance(body, dict):
        raise invalid("body must be a JSON object")
    unknown = set(body) - set(allowed)
    if unknown:
        raise invalid(f"unknown fields: {sorted(unknown)}")
    for name in required:
        if not isinstance(body.get(name), str) or not body[name]:
            raise invalid(f"{name} is required")
    for name in allowed:
        if body.get(name) is not None and not _SHAPES[name](body[name]):
            raise invalid(f"{name} has the wrong shape")
    return body


def _plain_tenants(tenants: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Stored without tenantName: the server fills it in on every answer."""
    return [{"tenantId": t["tenantId"], "roleNames": list(t.get("roleNames") or [])} for t in tenants]


def _same(a: Any, b: Any) -> bool:
    """JSON equality: true is not 1, 1 is 1.0, lists element by element."""
    if isinstance(a, list) or isinstance(b, list):
        return (
            isinstance(a, list)
            and isinstance(b, list)
            and len(a) == len(b)
            and all(_same(x, y) for x, y in zip(a, b, strict=True))
        )
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def digest(cleartext: str) -> str:
    return hashlib.sha256(cleartext.encode()).hexdigest()


def new_cleartext() -> str:
    return secrets.token_urlsafe(32)


def _copied(value: Any) -> Any:
    """A copy of a stored JSON value (a dict or a list), sharing nothing: copy.deepcopy's result without
    its memo and per-value dispatch (a search copies every key: 3.2 s → 1.4 s for 100,000 keys)."""
    if isinstance(value, dict):
        return {name: _copied(item) if isinstance(item, _CONTAINERS) else item for name, item in value.items()}
    return [_copied(item) if isinstance(item, _CONTAINERS) else item for item in value]


def complete_key(raw: Mapping[str, Any], index: int = 0) -> dict[str, Any]:
    """A seeded key with every field a real server returns."""
    # _EMPTY holds only "" and empty containers: a shallow copy is a deep one (deepcopy was a fifth
    # of seeding 100,000 keys).
    key: dict[str, Any] = {field: copy.copy(empty) for field, empty in _EMPTY.items()}
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
    key.update(copy.deepcopy({name: value for name, value in raw.items() if name != "cleartext"}))
    if not isinstance(key.get("id"), str) or not key["id"]:
        raise ValueError(f"seed key #{index} has no id")
    return key


def _search_filter(request: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], bool] | None:
    """The documented filters, all of them at once; fields it does not know (sort, ...) are ignored.
    None when no filter is given: every key is found (a 100,000-key search spent 0.1 s asking each)."""
    shapes: dict[str, Callable[[Any], bool]] = {
        "tenantIds": _str_list,
        "boundUserId": lambda v: isinstance(v, str),
        "creatingUser": lambda v: isinstance(v, str),
        "text": lambda v: isinstance(v, str),
        "customAttributes": lambda v: isinstance(v, dict),
    }
    for name, ok in shapes.items():
        if request.get(name) is not None and not ok(request[name]):
            raise invalid(f"{name} has the wrong shape")
    tenant_ids = set(request.get("tenantIds") or ())
    bound, creator = request.get("boundUserId") or "", request.get("creatingUser") or ""
    text = (request.get("text") or "").lower()
    attributes: dict[str, Any] = request.get("customAttributes") or {}
    if not (tenant_ids or bound or creator or text or attributes):
        return None

    def wanted(key: Mapping[str, Any]) -> bool:
        return (
            (not tenant_ids or bool(tenant_ids & {t["tenantId"] for t in key["keyTenants"]}))
            and (not bound or key["boundUserId"] == bound)
            and (not creator or key["createdBy"] == creator)
            and (not text or text in key["name"].lower() or text in key["id"].lower())
            and all(
                name in key["customAttributes"] and _same(key["customAttributes"][name], value)
                for name, value in attributes.items()
            )
        )

    return wanted


@dataclass(frozen=True)
class Found:
    """A search's keys as they were when it ran, and the JSON of each one's view (None where that
    could not be made ahead: the views then fail as they always did)."""

    keys: list[dict[str, Any]]  # stored keys, never changed in place (see KeyStore): a snapshot
    encoded: list[bytes | None]
    view_of: Callable[[Mapping[str, Any]], dict[str, Any]]

    def views(self) -> list[dict[str, Any]]:
        return [self.view_of(key) for key in self.keys]

    def answer_json(self) -> bytes | None:
        """`json.dumps({"keys": self.views()}).encode()`, joined from the JSON each key got when it was
        written; None when a key has none."""
        fragments = [fragment for fragment in self.encoded if fragment is not None]
        if len(fragments) < len(self.encoded):
            return None
        return b'{"keys": [' + b", ".join(fragments) + b"]}"


class KeyStore:
    """Every write replaces a stored key (a new dict) and never changes one in place: a search can
    then hand out its keys as they were, and each key's JSON is made once, when it is written."""

    def __init__(self, keys: Iterable[Mapping[str, Any]] = (), tenant_names: Mapping[str, str] | None = None) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, dict[str, Any]] = {}
        self._digests: dict[str, str] = {}  # key id -> sha256 of its cleartext
        self._encoded: dict[str, bytes | None] = {}  # key id -> the JSON of its view
        self._tenant_names = dict(tenant_names or {})
        for index, raw in enumerate(keys):
            if not isinstance(raw, Mapping):
                raise ValueError(f"seed key #{index} is not a mapping")
            key = complete_key(raw, index)
            if key["id"] in self._keys:
                raise ValueError(f"seed key id {key['id']!r} appears more than once")
            self._put(key)
            cleartext = raw.get("cleartext")
            if cleartext is not None:
                if not isinstance(cleartext, str) or not cleartext:
                    raise ValueError(f"seed key {key['id']!r}: cleartext must be a non-empty string")
                self._digests[key["id"]] = digest(cleartext)

    def _view(self, key: Mapping[str, Any]) -> dict[str, Any]:
        view: dict[str, Any] = _copied(key)
        for tenant in view["keyTenants"]:
            tenant["tenantName"] = self._tenant_names.get(tenant["tenantId"], tenant["tenantId"])
        return view

    def _put(self, key: dict[str, Any]) -> None:
        """Store `key` (a new dict, never changed after) with the JSON of its view: `json.dumps` of
        `_view(key)`, made from a view that copies only what it changes (the tenants)."""
        self._keys[key["id"]] = key
        try:
            names = self._tenant_names
            tenants = [{**t, "tenantName": names.get(t["tenantId"], t["tenantId"])} for t in key["keyTenants"]]
            self._encoded[key["id"]] = json.dumps({**key, "keyTenants": tenants}).encode()
        except (TypeError, ValueError, KeyError, RecursionError):
            self._encoded[key["id"]] = None  # a seeded key no view can show: searches fail on it as before

    def _drop(self, key_id: str) -> None:
        self._keys.pop(key_id, None)
        self._encoded.pop(key_id, None)
        self._digests.pop(key_id, None)

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._view(key) for key in self._keys.values()]

    def __len__(self) -> int:
        return len(self._keys)

    def search(self, request: Mapping[str, Any]) -> list[dict[str, Any]]:
        return self.found(request).views()

    def found(self, request: Mapping[str, Any]) -> Found:
        """The keys a search finds, as they are now: their views are made only when asked for."""
        wanted = _search_filter(request)
        with self._lock:
            keys = list(self._keys.values()) if wanted is None else [key for key in self._keys.values() if wanted(key)]
            encoded = [self._encoded[key["id"]] for key in keys]
        return Found(keys, encoded, self._view)

    def load(self, key_id: str) -> dict[str, Any]:
        with self._lock:
            return self._view(self._get(key_id))

    def _get(self, key_id: str) -> dict[str, Any]:
        key = self._keys.get(key_id)
        if key is None:
            raise StoreError(404, "E011004", "Access key not found", f"no access key with id {key_id}")
        return key

    def _editable(self, key_id: str) -> dict[str, Any]:
        key = self._get(key_id)
        if not key.get("editable", True):
            raise StoreError(400, "E011004", "Access key is not editable")
        return key

    def _new_id(self) -> str:
        """Descope-like: `K2` and 26 letters or digits, 28 characters."""
        while True:
            key_id = "K2" + "".join(secrets.choice(_ID_CHARS) for _ in range(26))
            if key_id not in self._keys:
                return key_id

    def update(self, body: Any, semantics: UpdateSemantics) -> dict[str, Any]:
        check_fields(body, ("id", *UPDATABLE), required=("id",))
        with self._lock:
            key = self._editable(body["id"])
            updated = dict(key)
            for name in UPDATABLE:
                value = body.get(name)
                if value is not None:
                    updated[name] = copy.deepcopy(value)
                elif semantics == "replace":
                    updated[name] = copy.deepcopy(_EMPTY[name])
            updated["keyTenants"] = _plain_tenants(updated["keyTenants"])
            self._put(updated)
            return self._view(updated)

    def create(self, body: Any, created_by: str) -> tuple[dict[str, Any], str]:
        """The new key and its cleartext (returned this once, kept only as a digest)."""
        check_fields(body, CREATE_FIELDS, required=("name",))
        now = int(time.time())
        expire_time = whole_number(body.get("expireTime")) or 0
        if 0 < expire_time <= now:
            raise invalid("expireTime is in the past")
        with self._lock:
            key = complete_key({"id": self._new_id()})
            key.update({name: copy.deepcopy(body[name]) for name in UPDATABLE if body.get(name) is not None})
            key.update(
                keyTenants=_plain_tenants(key["keyTenants"]),
                createdTime=now,
                expireTime=expire_time,
                createdBy=created_by,
                clientId="C" + secrets.token_hex(12),
                boundUserId=body.get("userId") or "",
            )
            cleartext = new_cleartext()
            self._put(key)
            self._digests[key["id"]] = digest(cleartext)
            return self._view(key), cleartext

    def rotate(self, key_id: str) -> tuple[dict[str, Any], str]:
        """A new secret for the same key; the old one stops working at once."""
        with self._lock:
            key = self._editable(key_id)
            cleartext = new_cleartext()
            self._digests[key_id] = digest(cleartext)
            return self._view(key), cleartext

    def delete(self, key_ids: Collection[str]) -> list[dict[str, Any]]:
        """All or nothing: one unknown or non-editable id and no key is deleted."""
        with self._lock:
            keys = [self._editable(key_id) for key_id in key_ids]
            for key in keys:
                self._drop(key["id"])
            return [self._view(key) for key in keys]

    def set_status(self, key_ids: Iterable[str], status: str) -> list[dict[str, Any]]:
        with self._lock:
            keys = [{**self._get(key_id), "status": status} for key_id in key_ids]
            for key in keys:
                self._put(key)
            return [self._view(key) for key in keys]

    def authenticate(self, cleartext: str, remote_address: str) -> dict[str, Any]:
        """The key this secret belongs to, if it may be used now from this address; else a 401."""
        wanted = digest(cleartext)
        with self._lock:
            key_id = next((i for i, d in self._digests.items() if hmac.compare_digest(d, wanted)), None)
            key = self._keys.get(key_id) if key_id else None
            refusal = _refusal(key, remote_address)
            if key is None or refusal:
                raise StoreError(401, "E011002", "Unauthorized", refusal)
            return self._view(key)


def _refusal(key: Mapping[str, Any] | None, remote_address: str) -> str:
    """Why this key may not be exchanged now ("" when it may)."""
    if key is None:
        return "invalid access key"
    if key["status"] != "active":
        return "access key is not active"
    if key["expireTime"] and key["expireTime"] <= time.time():
        return "access key has expired"
    if key["permittedIps"] and not _permitted(remote_address, key["permittedIps"]):
        return "address not permitted for this access key"
    return ""


def _permitted(address: str, allowed: Iterable[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for entry in allowed:
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue  # an entry the server cannot read admits nobody
    return False
