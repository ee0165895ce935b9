"""Parsed documents → the desired model, or every problem in every file.

The JSON Schema (schemas/desired.schema.json, which reuses the update-request schema) checks
shapes; the checks here cover what a schema cannot say well: IP syntax, the same key id twice
across files, a name that identifies a key (no id) given twice, roleNames together with keyTenants,
and messages that teach ("did you mean").

A file's `defaults` are fields every key of the file gets unless the key sets them: checked like
key fields where they are written, and merged into each key here, so later stages see only keys.
A key's identity (its `id`, or its `name` when it has no id) is always its own, never a default.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from reconcile.desired.loader import Diagnostic, ParsedFile, Unlocatable
from reconcile.model import (
    DESIRED_FIELDS,
    PRUNE_ACTIONS,
    DesiredKey,
    DesiredState,
    PruneScope,
    SourceLocation,
    Waiver,
)
from reconcile.schemas.validators import DESIRED_SCHEMA, inlined, is_valid, validator

if TYPE_CHECKING:
    from jsonschema import ValidationError

SUPPORTED_VERSIONS = (1,)
# What `defaults` cannot set: the identity fields (a default name would give every key with an id the
# same name) and the waivers.
NOT_DEFAULTS = {
    "id": "each key names its own",
    "name": "each key names its own",
    "waivers": "each key states its own, beside it",
}
_PREFIX_LENGTH = re.compile(r"0|[1-9][0-9]*")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def json_path(segments: Iterable[object]) -> str:
    """`keys[3].roleNames`; odd keys (spaces, or not even strings) in brackets."""
    text = ""
    for segment in segments:
        if isinstance(segment, int) and not isinstance(segment, bool):
            text += f"[{segment}]"
        elif isinstance(segment, str) and segment.isidentifier():
            text += f".{segment}" if text else segment
        else:
            text += f"[{segment!r}]"
    return text


def _yaml_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _known_fields(error: ValidationError) -> list[str]:
    properties = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
    return sorted(properties)


def _required(path: Sequence[str | int]) -> bool:
    """Whether the desired-file schema requires the field at `path` (`keys`, `keys[0].id`...)."""
    schema = inlined(DESIRED_SCHEMA)
    for segment in path[:-1]:
        schema = schema.get("items", {}) if isinstance(segment, int) else schema.get("properties", {}).get(segment, {})
    return bool(path) and path[-1] in schema.get("required", ())


def _null_message(path: Sequence[str | int]) -> str:
    name = f"`{path[-1] if path and isinstance(path[-1], str) else json_path(path)}`"
    if _required(path):
        return f"{name} is required, so it cannot be null: give it a value"
    if len(path) == 3 and path[0] == "keys" and path[2] == "id":  # optional, but never unmanaged
        return "`id` is null: give the key's id, or remove it to identify the key by its name"
    if len(path) == 3 and path[0] == "keys" and isinstance(path[2], str):  # a key's field: may be left out
        return f'{name} is null: remove the field to leave it unmanaged, or give [] / {{}} / "" to clear it'
    if len(path) == 2 and path[0] == "defaults" and isinstance(path[1], str):  # a default: may be left out
        return f'{name} is null: remove it from `defaults`, or give [] / {{}} / "" to clear it on every key'
    return f"`{json_path(path)}` is null: give it a value, or remove it"  # a list item, a claim


def _schema_messages(error: ValidationError) -> list[tuple[list[str | int], str, bool]]:
    """One schema error → (path, message, point at the key rather than the value)."""
    path: list[str | int] = list(error.absolute_path)
    field = str(path[-1]) if path and isinstance(path[-1], str) else ""
    if error.validator == "not" and path == ["defaults"]:  # a field of its own set, or not a mapping (said apart)
        instance = error.instance if isinstance(error.instance, dict) else {}
        return [
            ([*path, name], f"`defaults` cannot set `{name}`: {why}", True)
            for name, why in NOT_DEFAULTS.items()
            if name in instance
        ]
    if error.instance is None:
        return [(path, _null_message(path), False)]
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        refused = set(NOT_DEFAULTS) if path == ["defaults"] else set()  # known, but said by the `not` above
        known = [name for name in _known_fields(error) if name not in refused]
        results: list[tuple[list[str | int], str, bool]] = []
        for name in sorted(set(error.instance) - set(known) - refused, key=str):
            hint = difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
            suffix = f": did you mean `{hint[0]}`?" if hint else f" (known fields: {', '.join(known)})"
            if name == "<<":
                suffix = ": merge keys are not supported (YAML 1.2); write the fields out"
            results.append(([*path, name], f"unknown field `{name}`{suffix}", True))
        return results
    if error.validator == "required":
        return [(path, error.message.replace("is a required property", "is required"), False)]
    if error.validator == "const" and path == ["version"]:
        supported = ", ".join(map(str, SUPPORTED_VERSIONS))
        return [(path, f"unsupported version {_short(error.instance)}: supported versions are {supported}", False)]
    if error.validator == "type":
        expected = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        names = {"array": "list", "object": "mapping"}
        wanted = " or ".join(names.get(str(t), str(t)) for t in expected)
        what = f"`{json_path(path)}`" if path else "the top level"
        got = f"{_yaml_type(error.instance)} {_short(error.instance)}"
        return [(path, f"{what} must be a {wanted}, got {got}", False)]
    if error.validator == "uniqueItems":
        return [(path, f"`{field}` lists the same value more than once", False)]
    if error.validator == "anyOf" and len(path) >= 2 and path[-2] == "customAttributes":
        return [(path, "a customAttributes value must be a string, number, boolean or a list of those", False)]
    if error.validator == "anyOf" and len(path) == 2 and path[0] == "keys":
        return [
            (path, "a key needs an `id`, or a `name` to be identified by (and created with, if no key has it)", False)
        ]
    if error.validator == "anyOf" and path == ["prune"]:
        return [(path, "`prune` needs a scope: namePrefix, tenantIds and/or customAttributes", False)]
    if error.validator in ("minLength", "minItems", "minProperties"):
        return [(path, f"`{json_path(path)}` must not be empty", False)]
    if error.validator == "enum" and path == ["prune", "action"]:
        allowed = ", ".join(PRUNE_ACTIONS)
        return [(path, f"`prune.action` must be one of {allowed}, got {_short(error.instance)}", False)]
    if error.validator in ("minimum", "exclusiveMinimum"):
        bound = "at least" if error.validator == "minimum" else "more than"
        return [(path, f"`{json_path(path)}` must be {bound} {error.validator_value}", False)]
    if error.validator == "pattern":
        return [(path, f"`{json_path(path)}` must not contain control characters", False)]
    return [(path, error.message, False)]


Located = list[tuple[list[str | int], str]]  # (path, message)


def _tenant_problems(item: dict[str, Any], base: list[str | int]) -> Located:
    problems: Located = []
    roles, tenants = item.get("roleNames"), item.get("keyTenants")
    if isinstance(roles, list) and isinstance(tenants, list) and roles and tenants:
        problems.append(
            (
                [*base, "keyTenants"],
                "a key has either global `roleNames` or `keyTenants`, not both: make one of them []",
            )
        )
    if isinstance(tenants, list):
        seen: set[str] = set()
        for index, tenant in enumerate(tenants):
            tenant_id = tenant.get("tenantId") if isinstance(tenant, dict) else None
            if isinstance(tenant_id, str):
                if tenant_id in seen:
                    problems.append(([*base, "keyTenants", index, "tenantId"], f"tenant `{tenant_id}` is listed twice"))
                seen.add(tenant_id)
    return problems


def _map_problems(item: dict[str, Any], base: list[str | int]) -> Located:
    problems: Located = []
    for field in ("customClaims", "customAttributes"):
        values = item.get(field)
        if isinstance(values, dict):
            for name, value in values.items():
                if not isinstance(name, str):
                    problems.append(([*base, field], f"`{field}` keys must be strings, got {_short(name)}"))
                for number in value if isinstance(value, list) else [value]:
                    if isinstance(number, float) and not math.isfinite(number):
                        problems.append(([*base, field, name], f"`{number}` is not a number JSON can carry"))
    return problems


# An IPv4 address as ipaddress accepts it, and so its one spelling: the common case, told apart
# without ipaddress's parser (10x slower; a big project has a few entries per key).
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")


def _ipv4_value(address: str) -> int | None:
    """The address as a number, when it is an IPv4 address written as its one spelling."""
    if _IPV4.fullmatch(address) is None:
        return None
    first, second, third, fourth = map(int, address.split("."))
    return first << 24 | second << 16 | third << 8 | fourth


@lru_cache(maxsize=4096)  # a project's keys share their few ranges (an office, a CI runner pool)
def _ip_problem(text: str) -> tuple[str | None, tuple[object, str] | None]:
    """Why `text` is not an IP address or CIDR range Descope can match (None when it is one), and
    what it means (the address by value, the prefix length as written: as `model.normal_ip`)."""
    address, slash, prefix = text.partition("/")
    if "%" in address:
        return f"`{text}` has a zone id (`%...`): Descope cannot match one; remove it", None
    if slash and not _PREFIX_LENGTH.fullmatch(prefix):
        return f"`{text}`: the prefix length `{prefix}` must be a plain decimal number (no leading zero)", None
    value, bits = _ipv4_value(address), 32
    written: object = address  # an IPv4 address's one spelling stands for its value
    if value is None:
        try:
            parsed = ipaddress.ip_address(address)  # (ip_network and ip_interface parse 2-3x slower)
        except ValueError:
            return f"`{text}` is not an IP address or CIDR range", None
        value, bits, written = int(parsed), parsed.max_prefixlen, parsed
    if slash:
        host_bits = bits - int(prefix)
        if host_bits < 0:
            return f"`{text}` is not an IP address or CIDR range", None
        if value & ((1 << host_bits) - 1):  # almost always a typo for the network address
            return f"`{text}` has host bits set: did you mean `{ipaddress.ip_network(text, strict=False)}`?", None
    return None, (written, slash + prefix)


def _ip_problems(item: dict[str, Any], base: list[str | int]) -> Located:
    problems: Located = []
    ips = item.get("permittedIps")
    first_spelling: dict[tuple[object, str], str] = {}
    for index, entry in enumerate(ips if isinstance(ips, list) else []):
        if not isinstance(entry, str) or not entry:
            continue  # the schema says why
        problem, meaning = _ip_problem(entry)
        first = first_spelling.setdefault(meaning, entry) if meaning else entry
        if first != entry:  # (the very same text twice is the schema's `uniqueItems`)
            problem = f"`{entry}` is a duplicate of `{first}`: the same address, written another way"
        if problem:
            problems.append(([*base, "permittedIps", index], problem))
    return problems


def _waiver_problems(item: dict[str, Any], base: list[str | int]) -> Located:
    """A waiver's `until` is a real day (the schema checks only its shape)."""
    problems: Located = []
    waivers = item.get("waivers")
    for index, waiver in enumerate(waivers if isinstance(waivers, list) else []):
        until = waiver.get("until") if isinstance(waiver, dict) else None
        if isinstance(until, str) and _DAY.fullmatch(until):
            try:
                date.fromisoformat(until)
            except ValueError:
                problems.append(([*base, "waivers", index, "until"], f"`{until}` is not a day of the calendar"))
    return problems


def _semantic_problems(item: dict[str, Any], base: list[str | int]) -> Located:
    return [
        *_tenant_problems(item, base),
        *_map_problems(item, base),
        *_ip_problems(item, base),
        *_waiver_problems(item, base),
    ]


# What a map field's values may be for `_map_problems` to find nothing in them (no float: it
# could be infinite). A list is looked into.
_NO_FLOAT = frozenset({str, int, bool, type(None), dict})


def _floatless(values: Any) -> bool:
    """A mapping with string keys only and no float among its values (nor in a list among them), or
    no mapping at all: either way nothing for `_map_problems` to find."""
    if type(values) is not dict:
        return not isinstance(values, dict)
    for name, value in values.items():
        if type(name) is not str:
            return False
        if type(value) not in _NO_FLOAT:
            if type(value) is not list:
                return False
            for item in value:
                if type(item) not in _NO_FLOAT and type(item) is not list:
                    return False
    return True


@lru_cache(maxsize=4096)  # a project's keys share a few lists of ranges, as they share the ranges
def _fine_ip_list(entries: tuple[Any, ...]) -> bool:
    return not _ip_problems({"permittedIps": list(entries)}, [])


def _may_have_problems(item: dict[str, Any]) -> bool:
    """False only where `_semantic_problems` finds nothing: a valid key costs a few look-ups here (a
    big project has 100,000 of them), and the checks that explain run where this says True."""
    tenants = item.get("keyTenants")
    if tenants and (not isinstance(tenants, list) or len(tenants) > 1 or item.get("roleNames")):
        return True  # (one tenant is never listed twice, and without roles conflicts with none)
    if "waivers" in item or not (_floatless(item.get("customClaims")) and _floatless(item.get("customAttributes"))):
        return True
    ips = item.get("permittedIps")
    if not ips:
        return False
    try:
        return not _fine_ip_list(tuple(ips))
    except TypeError:  # an entry that is no string (a list, a mapping): the schema's to explain
        return True


def _waivers(item: Mapping[str, Any]) -> tuple[Waiver, ...]:
    waivers = item.get("waivers")
    return tuple(
        Waiver(entry["rule"], entry["reason"], entry["until"], index)
        for index, entry in enumerate(waivers if isinstance(waivers, list) else [])
        if isinstance(entry, dict) and all(isinstance(entry.get(name), str) for name in ("rule", "reason", "until"))
    )  # (an incomplete one is the schema's to report: the state is not used then)


def located(parsed: ParsedFile, path: Sequence[str | int], message: str, *, key: bool = False) -> Diagnostic:
    """A problem at `path` of the document (at its key, with `key=True`), with its line and column."""
    line, column = parsed.locate(path, key=key)
    if path and parsed.unlocatable:  # never a line given as if it were known
        message += f" (line unknown: PyYAML cannot read this file as YAML 1.2: {parsed.unlocatable})"
    return Diagnostic(parsed.path, line, column, message, json_path(path))


def schema_problems(parsed: ParsedFile, schema: str) -> list[Diagnostic]:
    """Every way the document breaks `schema`, located and worded as above (quick when it is valid)."""
    if is_valid(schema, parsed.data):  # the compiled check is quick; explaining is not
        return []
    return [
        located(parsed, path, message, key=at_key)
        for error in validator(schema).iter_errors(parsed.data)
        for path, message, at_key in _schema_messages(error)
    ]


def _defaults_of(data: Mapping[str, Any]) -> dict[str, Any]:
    defaults = data.get("defaults")
    return defaults if isinstance(defaults, dict) else {}


def _conflict_with_defaults(
    parsed: ParsedFile, item: dict[str, Any], defaults: dict[str, Any], base: list[str | int]
) -> Diagnostic | None:
    """`roleNames` and `keyTenants` together once the defaults are merged in, one of them from `defaults`
    (a key that sets both itself is reported by the key's own checks)."""
    merged = {**defaults, **item}
    if not all(isinstance(merged.get(name), list) and merged[name] for name in ("roleNames", "keyTenants")):
        return None
    inherited = [name for name in ("roleNames", "keyTenants") if name not in item]
    if len(inherited) != 1:
        return None
    own = "keyTenants" if inherited[0] == "roleNames" else "roleNames"
    line, _ = parsed.locate(["defaults", inherited[0]])
    message = (
        f"a key has either global `roleNames` or `keyTenants`, not both: `{inherited[0]}` comes from "
        f"`defaults` (line {line}); set `{inherited[0]}: []` on this key"
    )
    return located(parsed, [*base, own], message)


def validate_file(parsed: ParsedFile) -> list[Diagnostic]:
    diagnostics: list[Diagnostic] = list(parsed.problems)
    data = parsed.data
    if not isinstance(data, dict):
        message = f"the top level must be a mapping with `version` and `keys`, got {_yaml_type(data)}"
        return [*diagnostics, located(parsed, [], message)]
    diagnostics.extend(schema_problems(parsed, DESIRED_SCHEMA))
    defaults = _defaults_of(data)
    diagnostics.extend(located(parsed, path, message) for path, message in _semantic_problems(defaults, ["defaults"]))
    keys = data.get("keys")
    # A key conflicts with `defaults` only where a default gives roles or tenants.
    inherits = any(isinstance(defaults.get(name), list) and defaults[name] for name in ("roleNames", "keyTenants"))
    for index, item in enumerate(keys if isinstance(keys, list) else []):
        if not isinstance(item, dict):
            continue
        if _may_have_problems(item):
            found = _semantic_problems(item, ["keys", index])
            diagnostics.extend(located(parsed, path, message) for path, message in found)
        if inherits and (conflict := _conflict_with_defaults(parsed, item, defaults, ["keys", index])):
            diagnostics.append(conflict)
    return diagnostics


def _usable(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


_SHAPES: dict[tuple[Any, ...], dict[str, Any] | None] = {}  # a file's keys share a few shapes


def _model_fields(shape: tuple[Any, ...]) -> dict[str, Any] | None:
    """For a key written with these fields: when they are model fields (and `id`), those fields by
    the model's own names, in model order (values None). A plain dict remembers them (an lru_cache
    costs more than the look-up it saves, per key), emptied when a hostile file fills it."""
    if shape not in _SHAPES:
        if len(_SHAPES) >= 1024:
            _SHAPES.clear()
        names = [name for name in DESIRED_FIELDS if name in shape]
        _SHAPES[shape] = dict.fromkeys(names) if len(names) == len(shape) - ("id" in shape) else None
    return _SHAPES[shape]


def _fields(item: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """A key's fields, in model order, with the file's defaults merged in (the key's own value wins),
    named by the model's strings: the file's own names, one set per key, are let go with the file
    (40 MB of 100,000 keys). An update keeps a dict's names and takes the values: all in C, where the
    comprehension below takes 3x as long."""
    model = None if defaults else _model_fields(tuple(item))
    if model is not None:
        fields = model.copy()  # (the remembered one is never changed)
        fields.update(item)
        fields.pop("id", None)
        return fields
    merged = {**defaults, **item}
    return {name: merged[name] for name in DESIRED_FIELDS if name in merged}


def _desired_keys(parsed: ParsedFile, lines: list[tuple[int, int]]) -> Iterable[tuple[int, DesiredKey]]:
    """Every key item with a usable id or name of its own, valid or not (duplicates are found across all
    of them), with the file's defaults merged in."""
    data = parsed.data if isinstance(parsed.data, dict) else {}
    keys = data.get("keys")
    items = keys if isinstance(keys, list) else []
    defaults = _defaults_of(data)
    for index, (item, (line, column)) in enumerate(zip(items, lines, strict=True)):
        if not isinstance(item, dict):
            continue
        key_id = item.get("id")
        if not _usable(key_id):
            key_id = None
            if not _usable(item.get("name")):
                continue
        source = SourceLocation(parsed.path, line, column)
        yield index, DesiredKey(key_id, _fields(item, defaults), source, _waivers(item) if "waivers" in item else ())


def _prune_scope(parsed: ParsedFile) -> PruneScope | None:
    """The file's `prune:` section (already valid when this is used)."""
    section = parsed.data.get("prune") if isinstance(parsed.data, dict) else None
    if not isinstance(section, dict):
        return None
    return PruneScope(
        source=SourceLocation(parsed.path, *_top_level_line(parsed, "prune")),
        action=section.get("action", PRUNE_ACTIONS[0]),
        name_prefix=section.get("namePrefix"),
        tenant_ids=frozenset(section.get("tenantIds") or ()),
        custom_attributes=section.get("customAttributes"),
    )


def _top_level_line(parsed: ParsedFile, name: str) -> tuple[int, int]:
    """Where a top-level key is: a scan for `name:` at the start of a line (a big file need not be
    composed for it), else the node graph."""
    match = re.search(rf"^{name}[ \t]*:", parsed.text, flags=re.MULTILINE)
    if match is None:
        return parsed.locate([name], key=True)
    return parsed.text.count("\n", 0, match.start()) + 1, 1


class _Identities:
    """Each id once across the files; each name that identifies a key (no id) held by no other key."""

    def __init__(self) -> None:
        self.ids: dict[str, SourceLocation] = {}
        self.names: dict[str, DesiredKey] = {}  # the first key with each name

    def problem(self, key: DesiredKey) -> tuple[str, str] | None:
        """(the field, the message) when `key` repeats an identity already seen."""
        if key.id is not None:
            earlier = self.ids.setdefault(key.id, key.source)
            if earlier is not key.source:
                return "id", f"key id `{key.id}` is already defined at {earlier.path}:{earlier.line}"
        name = key.fields.get("name")
        if not isinstance(name, str):
            return None
        first = self.names.setdefault(name, key)
        if first is not key and (key.id is None or first.id is None):
            where = f"{first.source.path}:{first.source.line}"
            why = "a key without an id is identified by its name"
            return "name", f"key name `{name}` is already used at {where}: {why}"
        return None


def build_desired_state(parsed_files: Sequence[ParsedFile]) -> tuple[DesiredState, list[Diagnostic]]:
    """Validate every file, then check across files. Diagnostics come sorted by file and line."""
    diagnostics: list[Diagnostic] = []
    keys: list[DesiredKey] = []
    scopes: list[PruneScope] = []
    seen = _Identities()
    for parsed in parsed_files:
        diagnostics.extend(validate_file(parsed))
        try:
            lines = parsed.key_lines()
        except Unlocatable as error:
            message = f"cannot tell the keys' lines: PyYAML cannot read this file as YAML 1.2: {error}"
            diagnostics.append(Diagnostic(parsed.path, 1, 1, message))
            continue
        for index, key in _desired_keys(parsed, lines):
            repeated = seen.problem(key)
            if repeated is not None:
                field, message = repeated
                diagnostics.append(located(parsed, ["keys", index, field], message, key=True))
            keys.append(key)
        scope = _prune_scope(parsed) if not diagnostics else None
        if scope is not None:
            scopes.append(scope)
    if diagnostics:
        return DesiredState(keys=()), sorted(diagnostics)
    return DesiredState(keys=tuple(keys), prune=tuple(scopes)), []


__all__ = ["SUPPORTED_VERSIONS", "build_desired_state", "json_path", "located", "schema_problems", "validate_file"]
