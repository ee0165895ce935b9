"""The project's declared access-key custom attributes, and the refusal of any other.

Descope keeps an access key's custom attributes only under names the project declares, each with a
type (the Terraform provider's `attributes.access_key`: a machine name, a display name, a type and,
for the select types, options). Declarations are seeded like keys: given, or read off the seeded
keys (a key can hold only declared attributes, so every name a seeded key holds is declared, typed
by its value). Not published, so chosen here and switchable (`attribute_lookup`): which name the
lookup's `?name=` means, and the answer's shape (`{"attribute": {...}}`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from reconcile.emulator.store import StoreError, invalid

TYPES = ("string", "number", "boolean", "singleselect", "multiselect", "date")
SELECT_TYPES = ("singleselect", "multiselect")


@dataclass(frozen=True)
class Declared:
    name: str  # the machine name: what keys hold
    display_name: str
    type: str
    options: tuple[str, ...] = ()

    def wire(self) -> dict[str, Any]:
        options = [{"label": option, "value": option} for option in self.options]
        return {"name": self.name, "displayName": self.display_name, "type": self.type, "options": options}

    def accepts(self, value: Any) -> bool:
        if self.type == "boolean":
            return isinstance(value, bool)
        if self.type == "number":
            return isinstance(value, int | float) and not isinstance(value, bool)
        if self.type == "string":
            return isinstance(value, str)
        if self.type == "date":  # not published: milliseconds, or text
            return isinstance(value, str | int) and not isinstance(value, bool)
        if self.type == "singleselect":
            return isinstance(value, str) and value in self.options
        return isinstance(value, list) and all(isinstance(item, str) and item in self.options for item in value)


def parse_declared(raw: Any, index: int = 0) -> Declared:
    """One declaration: `{name, displayName?, type, options?}` (options as text or {label, value})."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"attribute #{index} is not a mapping")
    name, kind = raw.get("name"), raw.get("type")
    if not isinstance(name, str) or not name:
        raise ValueError(f"attribute #{index} has no name")
    if kind not in TYPES:
        raise ValueError(f"attribute {name!r}: type is one of {', '.join(TYPES)}")
    options = []
    for option in raw.get("options") or ():
        value = option.get("value") if isinstance(option, Mapping) else option
        if not isinstance(value, str):
            raise ValueError(f"attribute {name!r}: an option is text or {{label, value}}")
        options.append(value)
    if kind in SELECT_TYPES and not options:
        raise ValueError(f"attribute {name!r}: a {kind} attribute needs options")
    display = raw.get("displayName")
    return Declared(name, display if isinstance(display, str) and display else name, str(kind), tuple(options))


def _inferred(name: str, values: list[Any]) -> Declared:
    """The declaration a seeded key's value implies (a list: a multiselect of the values seen)."""
    if all(isinstance(value, bool) for value in values):
        return Declared(name, name, "boolean")
    if all(isinstance(value, int | float) and not isinstance(value, bool) for value in values):
        return Declared(name, name, "number")
    if all(isinstance(value, list) for value in values):
        seen = sorted({str(item) for value in values for item in value})
        return Declared(name, name, "multiselect", tuple(seen))
    return Declared(name, name, "string")


class AttributeSchema:
    """Declared names; `check` refuses a write that uses any other (E011003), or a value of the wrong type."""

    def __init__(self, declared: Iterable[Declared] = ()) -> None:
        self._declared = {item.name: item for item in declared}

    @classmethod
    def seeded(cls, attributes: Iterable[Any] | None, keys: Iterable[Mapping[str, Any]]) -> AttributeSchema:
        if attributes is not None:
            return cls(parse_declared(raw, index) for index, raw in enumerate(attributes))
        held: dict[str, list[Any]] = {}
        for key in keys:
            for name, value in (key.get("customAttributes") or {}).items():
                held.setdefault(name, []).append(value)
        return cls(_inferred(name, values) for name, values in held.items())

    def __len__(self) -> int:
        return len(self._declared)

    def declare(self, item: Declared) -> None:
        self._declared[item.name] = item

    def find(self, name: str, by: str) -> Declared | None:
        """By machine name or display name (`by`: name, displayName)."""
        if by == "name":
            return self._declared.get(name)
        return next((item for item in self._declared.values() if item.display_name == name), None)

    def all(self) -> list[dict[str, Any]]:
        return [item.wire() for item in self._declared.values()]

    def check(self, body: Mapping[str, Any]) -> None:
        values = body.get("customAttributes")
        if not isinstance(values, Mapping):
            return
        for name, value in values.items():
            declared = self._declared.get(name)
            if declared is None:
                raise invalid(f"customAttributes: {name!r} is not a custom attribute of this project")
            if value is not None and not declared.accepts(value):
                raise invalid(f"customAttributes: {name!r} does not take this value (a {declared.type} attribute)")


def not_declared(name: str) -> StoreError:
    return StoreError(404, "E011004", "Attribute not found", f"no access key attribute {name!r}")
