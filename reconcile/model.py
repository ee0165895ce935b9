"""The access-key model: which fields exist, which we manage, and their semantic normal form.

Normal form makes comparison semantic (see `normalize_field`): set-like lists compare as sets,
IP addresses by value (`2001:0db8::1` is `2001:db8::1`), `keyTenants` as a map of tenant id to
the set of its roles (entries for the same tenant merged), and JSON scalars keep their type and
exact value (`1` differs from `"1"` and from `true`; `2` equals `2.0`; integers beyond 2**53 are
not rounded to floats).
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

JSON = Any  # a value decoded from JSON or safe YAML
Frozen = TypeVar("Frozen")


def quick_init(cls: type[Frozen]) -> type[Frozen]:
    """A frozen dataclass with slots (a third of the memory of one with a dict), built twice as fast:
    the generated `__init__` sets each field through `object.__setattr__`, this one through the
    field's slot (a big plan makes a few of these per key). Same signature, defaults and frozenness;
    a class with more than plain fields (a factory, `init=False`, keyword-only fields,
    `__post_init__`) is refused."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__ or hasattr(cls, "__post_init__"):
        raise TypeError(f"quick_init is for frozen dataclasses with slots: {cls.__name__}")
    namespace: dict[str, Any] = {}
    signature, body = [], []
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        if field.default_factory is not dataclasses.MISSING or not field.init or field.kw_only:
            raise TypeError(f"quick_init is for plain fields: {cls.__name__}.{field.name}")
        namespace[f"_set_{field.name}"] = getattr(cls, field.name).__set__  # the slot's own setter
        if field.default is dataclasses.MISSING:
            signature.append(field.name)
        else:
            namespace[f"_default_{field.name}"] = field.default
            signature.append(f"{field.name}=_default_{field.name}")
        body.append(f"    _set_{field.name}(self, {field.name})\n")
    exec(f"def __init__(self, {', '.join(signature)}):\n{''.join(body)}", namespace)  # noqa: S102 (its own field names)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__annotations__ = {field.name: field.type for field in dataclasses.fields(cls)} | {"return": None}  # type: ignore[arg-type]
    cls.__init__ = init  # type: ignore[method-assign]
    return cls


# Fields the update request body can carry besides `id`, in wire order.
UPDATABLE_FIELDS: tuple[str, ...] = (
    "name",
    "description",
    "roleNames",
    "keyTenants",
    "customClaims",
    "permittedIps",
    "customAttributes",
)
# Managed through the activate / deactivate endpoints, never the update body.
STATUS_FIELD = "status"
DEFAULT_STATUS = "active"
# Managed: compared, and changed when they differ.
MANAGED_FIELDS: tuple[str, ...] = (*UPDATABLE_FIELDS, STATUS_FIELD)
# Set only when a key is created: a desired key's name for it (the key object's) → the create request's.
# For a key that exists a difference is a warning, never a change (schemas/source/tightening.yaml).
CREATE_ONLY_FIELDS: dict[str, str] = {"expireTime": "expireTime", "boundUserId": "userId"}
# What a desired key may say besides `id`.
DESIRED_FIELDS: tuple[str, ...] = (*MANAGED_FIELDS, *CREATE_ONLY_FIELDS)
# Everything else a key has (createdTime, createdBy, clientId, editable, and status unless managed)
# is filled by the server: never sent, never part of a diff.
SET_FIELDS = frozenset({"roleNames", "permittedIps"})
MAP_FIELDS = frozenset({"customClaims", "customAttributes"})
STRING_FIELDS = frozenset({"name", "description"})


@quick_init
@dataclass(frozen=True, slots=True)
class SourceLocation:
    """Where a key is written: its desired file and the line of its `id` (of the item, without one)."""

    path: str
    line: int  # 1-based
    column: int = 1  # 1-based

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class Waiver:
    """A key's exception to one policy rule (its `waivers` list in the desired file): never sent to the API."""

    rule: str
    reason: str
    until: str  # the last day it holds, YYYY-MM-DD
    index: int = 0  # its place in the key's `waivers` list, to say where it is written


@quick_init
@dataclass(frozen=True, slots=True)
class DesiredKey:
    """One key as the desired files say it should be: only the fields they manage. Without an id,
    the key is identified by its name (unique among the desired keys), and created when no key has it."""

    id: str | None
    fields: Mapping[str, JSON]
    source: SourceLocation
    waivers: tuple[Waiver, ...] = ()

    @property
    def label(self) -> str:
        """How people can tell the key apart: its id, or its name when it has no id (yet)."""
        return self.id or f"name {self.fields.get('name', '')!r}"


PRUNE_ACTIONS = ("deactivate", "delete")  # the first is the default: it can be undone


@dataclass(frozen=True)
class PruneScope:
    """A desired file's `prune:` section: the project keys the files own (every criterion given must
    hold), and what happens to an owned key that no desired key names."""

    source: SourceLocation
    action: str = PRUNE_ACTIONS[0]
    name_prefix: str | None = None
    tenant_ids: frozenset[str] = frozenset()
    custom_attributes: Mapping[str, JSON] | None = None

    def contains(self, key: Mapping[str, JSON]) -> bool:
        if self.name_prefix is not None and not str(key.get("name") or "").startswith(self.name_prefix):
            return False
        tenants = {tenant.get("tenantId") for tenant in key.get("keyTenants") or ()}
        if self.tenant_ids and not self.tenant_ids & tenants:
            return False
        attributes = key.get("customAttributes") or {}
        return all(
            name in attributes and _typed(attributes[name]) == _typed(value)
            for name, value in (self.custom_attributes or {}).items()
        )

    def describe(self) -> str:
        parts = []
        if self.name_prefix is not None:
            parts.append(f"namePrefix {self.name_prefix!r}")
        if self.tenant_ids:
            parts.append(f"tenantIds {', '.join(sorted(self.tenant_ids))}")
        if self.custom_attributes:
            parts.append(f"customAttributes {dict(sorted(self.custom_attributes.items()))}")
        return " and ".join(parts)


@dataclass(frozen=True)
class DesiredState:
    """Every desired file together: the keys they manage, and the prune scopes they own."""

    keys: tuple[DesiredKey, ...]
    prune: tuple[PruneScope, ...] = ()
    # Keys the files beside the given ones declare (a run given part of a folder): never pruned by it.
    elsewhere: tuple[DesiredKey, ...] = ()


def empty_value(name: str) -> JSON:
    """What an absent field means on the server side."""
    if name in STRING_FIELDS:
        return ""
    if name in MAP_FIELDS:
        return {}
    return []


def _typed(value: JSON) -> JSON:
    """A hashable, type-tagged form of a JSON value: 1 and 1.0 are equal numbers (Python compares
    int and float exactly: 2**53 + 1 differs from 2.0**53); True is not 1."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, str):
        return ("string", value)
    if value is None:
        return ("null", None)
    if isinstance(value, list):
        return ("list", tuple(_typed(item) for item in value))
    if isinstance(value, dict):
        return ("map", frozenset((key, _typed(item)) for key, item in value.items()))
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def normal_ip(entry: JSON) -> JSON:
    """One spelling per IP address (`2001:0DB8::1` → `2001:db8::1`), its prefix length kept;
    anything that is not an address stays as it is."""
    return _normal_ip_text(entry) if isinstance(entry, str) else entry


@functools.lru_cache(maxsize=1 << 16)  # ipaddress parses in Python (20 µs); a fleet repeats its ranges
def _normal_ip_text(entry: str) -> str:
    address, slash, prefix = entry.partition("/")
    try:
        return f"{ipaddress.ip_address(address)}{slash}{prefix}"
    except ValueError:
        return entry


def _by_normal_form(name: str, values: Iterable[JSON]) -> dict[JSON, JSON]:
    """A set-like field's entries by their normal form (the first spelling of each kept)."""
    spelled: dict[JSON, JSON] = {}
    for value in values:
        spelled.setdefault(normal_ip(value) if name == "permittedIps" else value, value)
    return spelled


def _tenant_roles(tenants: Iterable[Mapping[str, JSON]]) -> dict[str, set[str]]:
    """Tenant id → its roles; two entries for one tenant hold the union of their roles."""
    merged: dict[str, set[str]] = {}
    for tenant in tenants:
        merged.setdefault(tenant["tenantId"], set()).update(tenant.get("roleNames") or ())
    return merged


def normalize_field(name: str, value: JSON) -> JSON:
    """Hashable normal form of one updatable field; `None` (absent) means the empty value."""
    if value is None:
        value = empty_value(name)
    if name in SET_FIELDS:
        return frozenset(_by_normal_form(name, value))
    if name == "keyTenants":
        return frozenset((tenant_id, frozenset(roles)) for tenant_id, roles in _tenant_roles(value).items())
    if name in MAP_FIELDS:
        return _typed(value)
    return value


def _same_types(first: JSON, second: JSON) -> bool:
    """Of two equal JSON values (`==`), whether every value has the same type in both (loops, not
    generators: this runs for every field of every key in sync)."""
    kind = type(first)
    if kind is not type(second):
        return False
    if kind is dict:
        for key, value in first.items():
            other = second[key]
            inner = type(value)
            if inner is not type(other) or ((inner is dict or inner is list) and not _same_types(value, other)):
                return False
    elif kind is list:
        for value, other in zip(first, second, strict=True):
            inner = type(value)
            if inner is not type(other) or ((inner is dict or inner is list) and not _same_types(value, other)):
                return False
    return True


def _exactly(first: JSON, second: JSON) -> bool:
    """The same JSON value to the letter, types included (`true` is not `1`, nor `1.0` `1`)."""
    return bool(first == second) and _same_types(first, second)


def _same_tenants(wanted: JSON, present: JSON) -> bool:
    """The same tenants and roles in the same order (the server's `tenantName` is not compared)."""
    if type(wanted) is not list or type(present) is not list or len(wanted) != len(present):
        return False
    for mine, theirs in zip(wanted, present, strict=True):
        if type(mine) is not dict or type(theirs) is not dict:
            return False
        if not (
            _exactly(mine.get("tenantId"), theirs.get("tenantId"))
            and _exactly(mine.get("roleNames"), theirs.get("roleNames"))
        ):
            return False
    return True


def _strings(values: list[Any]) -> bool:
    """Whether every item is a string (joined in C: a TypeError names the first that is not)."""
    try:
        "".join(values)
    except TypeError:
        return False
    return True


def same_field(name: str, wanted: JSON, present: JSON) -> bool:
    """Whether `normalize_field` would find the two equal, told cheaply for the common case where
    both are spelled alike (most keys of a big project are in sync): True only when that is sure;
    False means "compare the normal forms", not "different"."""
    kind = type(wanted)
    if kind is str:  # a string equals nothing else
        return bool(wanted == present)
    if name == "keyTenants":
        return _same_tenants(wanted, present)
    if name in SET_FIELDS and kind is list and type(present) is list:
        # Strings only; the same entries in another order too (a file sorts them, the server may not).
        return _strings(wanted) and _strings(present) and (wanted == present or set(wanted) == set(present))
    return _exactly(wanted, present)


def canonical_value(name: str, value: JSON) -> JSON:
    """A deterministic, JSON-ready rendering of a field for reports, request bodies and exports
    (one entry per normal form: an export holds no two spellings of one address)."""
    if value is None:
        value = empty_value(name)
    if name in SET_FIELDS:
        return sorted(_by_normal_form(name, sorted(value)).values())
    if name == "keyTenants":
        return [{"tenantId": tid, "roleNames": sorted(roles)} for tid, roles in sorted(_tenant_roles(value).items())]
    if name in MAP_FIELDS:
        return {key: value[key] for key in sorted(value)}
    return value


def current_fields(key: Mapping[str, JSON]) -> dict[str, JSON]:
    """The updatable fields of a key as the server returned it, in canonical form."""
    return {name: canonical_value(name, key.get(name)) for name in UPDATABLE_FIELDS}


@dataclass(frozen=True)
class DesiredFile:
    """A desired file as a run saw it: reports and saved plans pin the exact content by hash."""

    path: str
    sha256: str
