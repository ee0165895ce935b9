"""Where the JSON Schemas are, and compiled validators for them (compiled once per process)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

REQUEST_SCHEMA = "accesskey-update-request.schema.json"
DESIRED_SCHEMA = "desired.schema.json"
REPORT_SCHEMA = "report.schema.json"


def schemas_dir() -> Path:
    """The wheel carries the schemas as `reconcile/_schemas`; a source checkout has them at the top."""
    packaged = Path(str(resources.files("reconcile"))) / "_schemas"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "schemas"


@cache
def load_schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((schemas_dir() / name).read_text(encoding="utf-8"))
    return schema


@cache
def validator(name: str) -> Draft202012Validator:
    """A validator whose relative `$ref`s resolve to the sibling schema files."""
    registry: Registry[Any] = Registry().with_resources(
        (other, Resource.from_contents(load_schema(other))) for other in (REQUEST_SCHEMA, DESIRED_SCHEMA)
    )
    return Draft202012Validator(load_schema(name), registry=registry)
