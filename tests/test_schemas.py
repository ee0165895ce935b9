"""The request and answer schemas are derived from the OpenAPI fragment; the committed copies are current."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from reconcile.schemas import generate as schemagen
from reconcile.schemas.validators import (
    CONFIG_SCHEMA,
    CREATE_SCHEMA,
    DESIRED_SCHEMA,
    POLICY_SCHEMA,
    REPORT_SCHEMA,
    REQUEST_SCHEMA,
    RESPONSES_SCHEMA,
    is_valid,
    load_schema,
    validator,
)


def test_committed_request_schemas_are_what_the_generator_produces() -> None:
    for name, generate in schemagen.TARGETS.items():
        generated = generate()
        committed = (schemagen.SCHEMAS / name).read_text(encoding="utf-8")
        assert committed == generated, f"{name}: run `make schemas` and commit the result"


@pytest.mark.slow
def test_generator_check_mode_detects_a_stale_schema(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = tmp_path / REQUEST_SCHEMA
    stale.write_text("{}\n")
    monkeypatch.setattr(schemagen, "SCHEMAS", tmp_path)
    monkeypatch.setattr(schemagen, "COMPILED", _copy_of_compiled(tmp_path))
    assert schemagen.main(["--check"]) == 1
    assert schemagen.main(["--write"]) == 0
    assert schemagen.main(["--check"]) == 0


def _copy_of_compiled(tmp_path: Any) -> Path:
    compiled = tmp_path / "compiled"
    shutil.copytree(schemagen.COMPILED, compiled, ignore=shutil.ignore_patterns("__pycache__"))
    return compiled


def _generate_into_copies(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The generator's outputs copied under tmp_path and its targets pointed there: a test never writes
    into the tree, which the other tests (run in parallel) read. → the copy of the compiled modules."""
    for name in schemagen.TARGETS:
        shutil.copy(schemagen.SCHEMAS / name, tmp_path / name)
    monkeypatch.setattr(schemagen, "SCHEMAS", tmp_path)
    compiled = _copy_of_compiled(tmp_path)
    monkeypatch.setattr(schemagen, "COMPILED", compiled)
    return compiled


def test_writing_up_to_date_schemas_touches_no_file(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`make schemas` twice: the second run rewrites nothing (a rewrite truncates the file a moment
    under whoever reads it, and changes its time for make and editors)."""
    _generate_into_copies(tmp_path, monkeypatch)
    files = sorted(path for path in Path(tmp_path).rglob("*") if path.is_file())
    before = [path.stat().st_mtime_ns for path in files]
    assert schemagen.main(["--write"]) == 0
    assert [path.stat().st_mtime_ns for path in files] == before
    assert "wrote" not in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("change", ["edited", "missing", "left over"])
def test_generator_check_mode_detects_a_stale_compiled_validator(
    change: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The generated validators are part of the schemas: an edit, a missing module or one that checks no
    schema in use fails `make check-schemas`; `make schemas` puts each back as generated."""
    compiled = _generate_into_copies(tmp_path, monkeypatch)
    desired = compiled / "desired.py"
    generated = desired.read_text(encoding="utf-8")
    if change == "edited":
        desired.write_text(generated.replace('raise JsonSchemaValueException("invalid")', "pass", 1), encoding="utf-8")
    elif change == "missing":
        desired.unlink()
    else:
        (compiled / "unused_schema.py").write_text("", encoding="utf-8")
    assert schemagen.main(["--check"]) == 1
    assert "make schemas" in capsys.readouterr().err
    assert schemagen.main(["--write"]) == 0
    assert schemagen.main(["--check"]) == 0
    assert desired.read_text(encoding="utf-8") == generated
    assert sorted(p.name for p in compiled.glob("*.py")) == sorted(p.name for p in schemagen.COMPILED.glob("*.py"))


def test_the_compiled_validators_import_nothing_of_fastjsonschema() -> None:
    """They run in `validate` on every commit: plain code, no generator (a dev dependency) behind it."""
    for module in schemagen.COMPILED.glob("*.py"):
        text = module.read_text(encoding="utf-8")
        assert "fastjsonschema import" not in text and "import fastjsonschema" not in text, module.name


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
    # and the policy's waivers: never a key field, never sent (test_policy.py)
    assert set(key_fields["properties"]) - set(request["properties"]) == {"status", "waivers", *create_only}
    desired_key = definitions["desiredKey"]
    assert desired_key["anyOf"] == [{"required": ["id"]}, {"required": ["name"]}]  # identified by id or by name
    assert request["required"] == ["id"] and create["required"] == ["name"]
    assert definitions["keyDefaults"]["$ref"] == desired_key["$ref"] == "#/$defs/keyFields"
    assert not validator(DESIRED_SCHEMA).is_valid({"version": 1, "keys": [{"id": "K", "roleName": []}]})
    assert not validator(DESIRED_SCHEMA).is_valid({"version": 1, "defaults": {"id": "K"}, "keys": []})
    assert validator(DESIRED_SCHEMA).is_valid({"version": 1, "defaults": {"roleNames": []}, "keys": [{"id": "K"}]})


def test_schemas_are_valid_json_schema() -> None:
    for name in (REQUEST_SCHEMA, CREATE_SCHEMA, DESIRED_SCHEMA, REPORT_SCHEMA, CONFIG_SCHEMA, POLICY_SCHEMA):
        Draft202012Validator.check_schema(json.loads((schemagen.SCHEMAS / name).read_text()))


def test_committed_responses_schema_is_what_the_generator_produces() -> None:
    committed = (schemagen.SCHEMAS / RESPONSES_SCHEMA).read_text(encoding="utf-8")
    assert committed == schemagen.render_responses(), "run `make schemas` and commit the result"
    Draft202012Validator.check_schema(json.loads(committed))


def test_responses_schema_follows_the_openapi_answers_and_its_overlay() -> None:
    schema = load_schema(RESPONSES_SCHEMA)
    endpoints = schema["x-endpoints"]
    assert endpoints["POST /v1/mgmt/accesskey/search"] == "#/$defs/AccessKeysResponse"  # from the fragment
    assert endpoints["POST /v1/mgmt/accesskey/activate"] == "#/$defs/NoContent"  # `content: {}`
    assert endpoints["POST /v1/mgmt/accesskey/rotate"] == "#/$defs/CreateAccessKeyResponse"  # from the overlay
    assert endpoints["GET /v1/mgmt/license"] == "#/$defs/LicenseResponse"  # a new component of the overlay
    key = schema["$defs"]["AccessKey"]
    assert key["required"] == ["id"] and "maximum" not in key["properties"]["expireTime"]  # past 2038, unlike int32
    assert key["properties"]["expireTime"]["minimum"] == 0
    shape = f"{RESPONSES_SCHEMA}#/$defs/AccessKeysResponse"
    for body, valid in [
        ({"keys": []}, True),
        ({"keys": [{"id": "K", "customClaims": {"a": 1, "b": True}, "future": "field"}]}, True),
        ({}, False),
        # any JSON value in the maps of an answer (the Go and Node SDKs read map[string]any)
        ({"keys": [{"id": "K", "customClaims": {"a": [1], "b": None, "c": {"d": [{}]}}}]}, True),
        ({"keys": [{"id": "K", "customAttributes": {"a": None, "b": {"c": 1}}}]}, True),
        ({"keys": [{"id": "K", "customAttributes": ["a"]}]}, False),
        ({"keys": [{"id": "K", "keyTenants": [{"roleNames": []}]}]}, False),
    ]:
        assert validator(shape).is_valid(body) is valid and is_valid(shape, body) is valid, body


@pytest.mark.parametrize(
    ("overlay", "says"),
    [
        ({"components": {"AccessKeyz": {"required": ["id"]}}}, "component the OpenAPI fragment does not have"),
        ({"components": {"AccessKey": {"properties": {"nmae": {"type": "string"}}}}}, "a property AccessKey"),
    ],
)
def test_response_overlay_naming_what_does_not_exist_is_rejected(overlay: dict[str, Any], says: str) -> None:
    openapi = yaml.safe_load(schemagen.OPENAPI.read_text(encoding="utf-8"))
    with pytest.raises(SystemExit, match=says):
        schemagen.derive_responses(openapi, overlay)
