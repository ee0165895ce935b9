"""Where the JSON Schemas are, and validators for them.

Two validators per schema, one meaning: `validator` (jsonschema, draft 2020-12) explains every
error with its path; `is_valid` only says yes or no, ~10x faster, for the common case where
everything is valid. It runs Python code that fastjsonschema generated from the schema when the
schemas were generated (`reconcile/schemas/compiled/`, checked for freshness by `make test`):
compiling at run time took longer than the rest of `validate`, which the pre-commit hook runs on
every commit. Our schemas use only keywords whose meaning is the same in draft 7, which
fastjsonschema implements; a test checks the two agree.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

REQUEST_SCHEMA = "accesskey-update-request.schema.json"
CREATE_SCHEMA = "accesskey-create-request.schema.json"
DESIRED_SCHEMA = "desired.schema.json"
REPORT_SCHEMA = "report.schema.json"
RESPONSES_SCHEMA = "accesskey-responses.schema.json"
CONFIG_SCHEMA = "config.schema.json"
POLICY_SCHEMA = "policy.schema.json"


def schemas_dir() -> Path:
    """The wheel carries the schemas as `reconcile/_schemas`; a source checkout has them at the top.
    (Beside this package, as importlib.resources would say of an installed one, without its 17 ms of
    imports and look-up, which a large document's check pays: it reads the desired schema.)"""
    packaged = Path(__file__).resolve().parents[1] / "_schemas"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "schemas"


@cache
def load_schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((schemas_dir() / name).read_text(encoding="utf-8"))
    return schema


def _inline(node: Any, document: str) -> Any:
    """The schema with every `$ref` (local or to a sibling file) replaced by its target."""
    if isinstance(node, list):
        return [_inline(item, document) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target_file, _, pointer = node["$ref"].partition("#")
        target_file = target_file or document
        target: Any = load_schema(target_file)
        for part in filter(None, pointer.split("/")):
            target = target[part]
        rest = {k: v for k, v in node.items() if k != "$ref"}
        return _inline({**target, **rest}, target_file)
    return {k: _inline(v, document) for k, v in node.items() if k not in ("$schema", "$defs", "$id")}


@cache
def inlined(name: str) -> dict[str, Any]:
    """The schema (a file, or a file and a JSON pointer into it) with every `$ref` replaced by its
    target (no `$defs`, no `$schema`)."""
    schema: dict[str, Any] = _inline({"$ref": name}, name.partition("#")[0])
    return schema


def compiled_module(name: str) -> str:
    """The module of `reconcile.schemas.compiled` that checks `name` (a file, or a file and a JSON
    pointer into it): `desired.schema.json` → `desired`, `…responses.schema.json#/$defs/NoContent` →
    `accesskey_responses_nocontent`."""
    file, _, pointer = name.partition("#")
    words = [file.removesuffix(".schema.json"), *pointer.rsplit("/", 1)[1:]]
    return re.sub(r"[^0-9a-z]+", "_", "_".join(words).lower())


@cache
def _compiled(name: str) -> tuple[Callable[[Any], Any], type[Exception]]:
    module = importlib.import_module(f"reconcile.schemas.compiled.{compiled_module(name)}")
    return module.validate, module.JsonSchemaValueException


# From this many keys on, a document is checked by jsonschema-rs (Rust): 6x faster than the
# compiled Python checks over 100,000 keys, but 50 ms to import, which `validate` of a few files
# (the pre-commit hook, 0.11 s in all) must not pay.
LARGE_DOCUMENT_KEYS = 2000


@cache
def _native(name: str) -> Callable[[Any], bool]:
    import jsonschema_rs  # noqa: PLC0415 (only for a large document, see above)

    return jsonschema_rs.validator_for(inlined(name), validate_formats=False).is_valid


def _large(instance: Any) -> bool:
    keys = instance.get("keys") if isinstance(instance, dict) else None
    return isinstance(keys, list) and len(keys) >= LARGE_DOCUMENT_KEYS


def is_valid(name: str, instance: Any) -> bool:
    """Whether `instance` is valid against the schema `name`: quick (jsonschema explains why not)."""
    if _large(instance):
        try:
            return _native(name)(instance)
        except (ValueError, TypeError):  # what JSON cannot hold (an int mapping key, a lone surrogate)
            pass
    check, invalid = _compiled(name)
    try:
        check(instance)
    except invalid:
        return False
    return True


@cache
def validator(name: str) -> Draft202012Validator:
    """A validator whose relative `$ref`s resolve to the sibling schema files; `name` is a file, or a
    file and a JSON pointer into it (`accesskey-responses.schema.json#/$defs/AccessKey`). jsonschema is
    imported here, only when there are errors to explain: it is slow to import."""
    from jsonschema import Draft202012Validator  # noqa: PLC0415
    from referencing import Registry, Resource  # noqa: PLC0415

    registry: Registry[Any] = Registry().with_resources(
        (other, Resource.from_contents(load_schema(other)))
        for other in (REQUEST_SCHEMA, CREATE_SCHEMA, DESIRED_SCHEMA, RESPONSES_SCHEMA, POLICY_SCHEMA)
    )
    schema = {"$ref": name} if "#" in name else load_schema(name)
    return Draft202012Validator(schema, registry=registry)
