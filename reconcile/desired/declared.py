"""The desired keys' custom attributes against the project's declarations: an undeclared name, a value
of the wrong type, or a select value outside its options is a located problem (the key's file and
line, the field), found before any write. Pure: the declarations are read by reconcile/job/declared.py.

A declaration is what the attribute endpoint answers: `type` (string, number, boolean, singleselect,
multiselect, date) and, for the select types, `options` as `{label, value}`. How a `date` value is
written is not published: a number (ms) or text is taken.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from reconcile.desired.loader import Diagnostic
from reconcile.model import DesiredKey

Declaration = Mapping[str, Any]


def attribute_names(keys: Iterable[DesiredKey]) -> set[str]:
    """Every custom attribute name the desired keys use."""
    names: set[str] = set()
    for key in keys:
        values = key.fields.get("customAttributes")
        if type(values) is dict or isinstance(values, Mapping):  # (a dict: no ABC check)
            names.update(values)
    return names


def options(declaration: Declaration) -> set[str]:
    found = set()
    for option in declaration.get("options") or ():
        for part in ("value", "label") if isinstance(option, Mapping) else ():
            if isinstance(option.get(part), str):
                found.add(option[part])
    return found


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def fit(declaration: Declaration) -> Callable[[Any], str | None]:
    """Why a value does not fit the declaration (None when it does), its options read once: a big
    project checks one attribute on every key."""
    kind = declaration.get("type")
    if kind == "string":
        return lambda value: None if isinstance(value, str) else "takes text"
    if kind == "number":
        return lambda value: None if _number(value) else "takes a number"
    if kind == "boolean":
        return lambda value: None if isinstance(value, bool) else "takes true or false"
    if kind == "date":
        return lambda value: None if isinstance(value, str) or _number(value) else "takes a date (text or milliseconds)"
    allowed = options(declaration)
    shown = ", ".join(sorted(allowed)[:10]) or "none declared"
    if kind == "singleselect":
        return lambda value: (
            None if isinstance(value, str) and value in allowed else f"takes one of its options ({shown})"
        )
    if kind == "multiselect":
        return lambda value: (
            None
            if isinstance(value, list) and all(isinstance(item, str) and item in allowed for item in value)
            else f"takes a list of its options ({shown})"
        )
    return lambda _: None  # a type this tool does not know: the server decides


_UNDECLARED = "not declared"


def problems(keys: Iterable[DesiredKey], declared: Mapping[str, Declaration | None]) -> list[Diagnostic]:
    """`declared`: every name the keys use → its declaration, None when the project has none."""
    found = []
    # Each name looked up → why a value does not fit it (a name not looked up: nothing to say).
    fits = {
        name: fit(declaration) if declaration is not None else lambda _: _UNDECLARED
        for name, declaration in declared.items()
    }
    for key in keys:
        values = key.fields.get("customAttributes")
        if not (type(values) is dict or isinstance(values, Mapping)):
            continue
        for name, value in values.items():
            check = fits.get(name)
            why = None if check is None else check(value)
            if why is None:
                continue
            if why is _UNDECLARED:
                message = f"custom attribute `{name}` is not declared in the project (declare it, or fix the name)"
            else:
                message = f"custom attribute `{name}` is a {(declared[name] or {}).get('type')} attribute: it {why}"
            source = key.source
            found.append(Diagnostic(source.path, source.line, source.column, message, f"customAttributes.{name}"))
    return sorted(found)
