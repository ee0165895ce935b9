"""The request schema is derived from the OpenAPI fragment; the committed copy is current."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from reconcile.schemas import generate as schemagen
from reconcile.schemas.validators import (
    CONFIG_SCHEMA,
    CREATE_SCHEMA,
    DESIRED_SCHEMA,
    REPORT_SCHEMA,
    REQUEST_SCHEMA,
    load_schema,
    validator,
)


def test_committed_request_schemas_are_what_the_generator_produces() -> None:
    for name, generated in schemagen.render().items():
        committed = (schemagen.SCHEMAS / name).read_text(encoding="utf-8")
        assert committed == generated, f"{name}: run `make schemas` and commit the result"


def test_generator_check_mode_detects_a_stale_schema(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = tmp_path / REQUEST_SCHEMA
    stale.write_text("{}\n")
    monkeypatch.setattr(schemagen, "SCHEMAS", tmp_path)
    assert schemagen.main(["--check"]) == 1
    assert schemagen.main(["--write"]) == 0
    assert schemagen.main(["--check"]) == 0


def test_derived_schema_keeps_every_openapi_property_and_tightens_types() -> None:
    schema = load_schema(REQUEST_SCHEMA)
    assert set(schema["properties"]) == {
        "id",
        "name",
        "description",
        "roleNames",
        "keyTenants",
        "customClaims",
        "permittedIps",
        "customAttributes",
    }
    assert schema["additionalProperties"] is False
    assert schema["properties"]["roleNames"]["type"] == "array"  # OpenAPI says google.protobuf.Value
    assert "Custom claims" in schema["properties"]["customClaims"]["description"]  # documentation kept


def test_overlay_naming_an_unknown_property_is_rejected() -> None:
    openapi = {"components": {"schemas": {"UpdateAccessKeyRequest": {"properties": {"id": {"type": "string"}}}}}}
    with pytest.raises(SystemExit, match="does not have"):
        schemagen.derive(openapi, {"properties": {"nmae": {"type": "string"}}})


@pytest.mark.parametrize(
    ("body", "valid"),
    [
        ({"id": "K1"}, True),
        ({"id": "K1", "customClaims": {"a": "x", "b": 1, "c": True}}, True),
        ({"id": "K1", "customAttributes": {"a": ["x", 1]}}, True),
        ({"id": "K1", "customClaims": {"a": {"nested": 1}}}, False),
        ({"id": "K1", "customAttributes": {"a": [{"x": 1}]}}, False),
        ({"id": "K1", "roleNames": "admin"}, False),
        ({"id": "K1", "keyTenants": [{"roleNames": ["x"]}]}, False),
        ({"id": ""}, False),
        ({"id": "K\n1"}, False),
        ({"name": "no id"}, False),
        ({"id": "K1", "extra": 1}, False),
    ],
)
def test_request_schema_accepts_and_rejects(body: dict[str, Any], valid: bool) -> None:
    assert validator(REQUEST_SCHEMA).is_valid(body) is valid


def test_desired_schema_reuses_every_request_field_by_ref() -> None:
    definitions = load_schema(DESIRED_SCHEMA)["$defs"]
    key_fields = definitions["keyFields"]  # what a key, and the file's `defaults`, may say
    request = load_schema(REQUEST_SCHEMA)
    for field in request["properties"]:  # a field added to the request schema must reach the files
        assert key_fields["properties"][field] == {"$ref": f"{REQUEST_SCHEMA}#/properties/{field}"}
    create = load_schema(CREATE_SCHEMA)
    create_only = {"expireTime": "expireTime", "boundUserId": "userId"}  # desired name -> create request name
    for field, wire in create_only.items():  # derived from CreateAccessKeyRequest, by $ref
        assert key_fields["properties"][field] == {"$ref": f"{CREATE_SCHEMA}#/properties/{wire}"}
        assert wire not in request["properties"]
    assert set(key_fields["properties"]) - set(request["properties"]) == {"status", *create_only}
    desired_key = definitions["desiredKey"]
    assert desired_key["anyOf"] == [{"required": ["id"]}, {"required": ["name"]}]  # identified by id or by name
    assert request["required"] == ["id"] and create["required"] == ["name"]
    assert definitions["keyDefaults"]["$ref"] == desired_key["$ref"] == "#/$defs/keyFields"
    assert not validator(DESIRED_SCHEMA).is_valid({"version": 1, "keys": [{"id": "K", "roleName": []}]})
    assert not validator(DESIRED_SCHEMA).is_valid({"version": 1, "defaults": {"id": "K"}, "keys": []})
    assert validator(DESIRED_SCHEMA).is_valid({"version": 1, "defaults": {"roleNames": []}, "keys": [{"id": "K"}]})


def test_schemas_are_valid_json_schema() -> None:
    for name in (REQUEST_SCHEMA, CREATE_SCHEMA, DESIRED_SCHEMA, REPORT_SCHEMA, CONFIG_SCHEMA):
        Draft202012Validator.check_schema(json.loads((schemagen.SCHEMAS / name).read_text()))
