"""`defaults:` in a desired file through the real CLI: planned and applied on every key of the file,
validated where they are written, and factored out by `export --factor-defaults` (round trip)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from reconcile.errors import ExitCode
from reconcile.output.export import common_values
from tests.conftest import cli_env, load_report, run_cli

PROJECT: list[dict[str, Any]] = [
    {"id": "K1", "name": "deployer", "roleNames": ["deployer"]},
    {"id": "K2", "name": "reader", "customClaims": {"team": "data"}},
    {"id": "K3", "name": "billing", "keyTenants": [{"tenantId": "T1", "roleNames": ["billing"]}]},
]


def test_defaults_are_planned_and_applied_on_every_key_of_the_file(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(PROJECT)
    desired = tmp_path / "keys.yaml"
    desired.write_text(
        "version: 1\n"
        "defaults:\n"
        "  permittedIps: [10.0.0.0/8]\n"
        "  customClaims: {team: platform}\n"
        "  roleNames: [viewer]\n"
        "keys:\n"
        "  - id: K1\n"
        "    roleNames: [deployer]        # the key's own value wins\n"
        "  - id: K2\n"
        "    customClaims: {team: data}\n"
        "  - id: K3\n"
        "    roleNames: []                # K3 has tenants: it cannot take the default roles\n"
    )
    env = cli_env(emulator)
    planned = run_cli(["plan", str(desired), "--report", str(tmp_path / "plan.json")], env)
    assert planned.code == ExitCode.CHANGES_PENDING, planned.output
    assert "~ K1 (deployer)" in planned.stdout and '      + "10.0.0.0/8"' in planned.stdout
    report = load_report(tmp_path / "plan.json")
    changes = {key["id"]: {c["field"]: c["after"] for c in key["changes"]} for key in report["keys"]}
    assert changes == {
        "K1": {"customClaims": {"team": "platform"}, "permittedIps": ["10.0.0.0/8"]},
        "K2": {"roleNames": ["viewer"], "permittedIps": ["10.0.0.0/8"]},
        "K3": {"customClaims": {"team": "platform"}, "permittedIps": ["10.0.0.0/8"]},
    }

    applied = run_cli(["apply", str(desired)], env)
    assert applied.code == 0, applied.output
    keys = {key["id"]: key for key in emulator.store.all()}
    assert all(key["permittedIps"] == ["10.0.0.0/8"] for key in keys.values())
    assert keys["K1"]["roleNames"] == ["deployer"] and keys["K2"]["roleNames"] == ["viewer"]
    assert keys["K3"]["roleNames"] == [] and keys["K3"]["keyTenants"][0]["tenantId"] == "T1"
    assert keys["K2"]["customClaims"] == {"team": "data"}
    assert run_cli(["plan", str(desired)], env).code == 0  # converged


def test_problems_in_defaults_are_located_at_the_defaults(tmp_path: Path) -> None:
    desired = tmp_path / "keys.yaml"
    desired.write_text(
        "version: 1\n"
        "defaults:\n"
        "  id: K0\n"
        "  roleName: [viewer]\n"
        "  roleNames: [viewer]\n"
        "  permittedIps: [10.0.0.1/8]\n"
        "  description: null\n"
        "keys:\n"
        "  - id: K1\n"
        "    keyTenants: [{tenantId: T1}]\n"
    )
    result = run_cli(["validate", str(desired)], cli_env(None))
    assert result.code == ExitCode.FAILURE
    assert result.stderr.replace(str(desired), "keys.yaml").splitlines() == [
        "keys.yaml:3:3: error: `defaults` cannot set `id`: each key names its own [defaults.id]",
        "keys.yaml:4:3: error: unknown field `roleName`: did you mean `roleNames`? [defaults.roleName]",
        "keys.yaml:6:18: error: `10.0.0.1/8` has host bits set: did you mean `10.0.0.0/8`? [defaults.permittedIps[0]]",
        "keys.yaml:7:16: error: `description` is null: remove it from `defaults`, or give [] / {} / "
        '"" to clear it on every key [defaults.description]',
        "keys.yaml:10:17: error: a key has either global `roleNames` or `keyTenants`, not both: `roleNames` comes "
        "from `defaults` (line 5); set `roleNames: []` on this key [keys[0].keyTenants]",
        "error: 5 validation errors; nothing was sent",
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("null", "`defaults` is null: give it a value, or remove it [defaults]"),
        ("[]", "`defaults` must be a mapping, got list [] [defaults]"),
        ("text", "`defaults` must be a mapping, got string 'text' [defaults]"),
        (
            "{bogus: 1}",
            "unknown field `bogus` (known fields: boundUserId, customAttributes, customClaims, description, "
            "expireTime, keyTenants, permittedIps, roleNames, status) [defaults.bogus]",
        ),
    ],
)
def test_defaults_that_are_no_mapping_are_said_once_and_never_blamed_on_id(
    tmp_path: Path, value: str, expected: str
) -> None:
    desired = tmp_path / "keys.yaml"
    desired.write_text(f"version: 1\ndefaults: {value}\nkeys:\n  - id: K1\n")
    result = run_cli(["validate", str(desired)], cli_env(None))
    assert result.code == ExitCode.FAILURE
    problems = [line.split(" error: ", 1)[1] for line in result.stderr.splitlines() if ": error: " in line]
    assert problems == [expected], result.stderr


def test_export_factor_defaults_round_trips(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(
        [
            *PROJECT,
            {"id": "K4", "name": "", "permittedIps": ["10.0.0.0/8"], "customClaims": {"n": 1}},
            {"id": "K5", "name": "five", "permittedIps": ["10.0.0.0/8"]},
        ]
    )
    out = tmp_path / "keys.yaml"
    env = cli_env(emulator)
    result = run_cli(["export", "--out", str(out), "--factor-defaults"], env)
    assert result.code == 0, result.output
    document = yaml.safe_load(out.read_text())
    assert document["defaults"] == {
        "description": "",
        "roleNames": [],
        "keyTenants": [],
        "customClaims": {},
        "permittedIps": [],  # 3 of 5
        "customAttributes": {},
    }
    by_id = {key["id"]: key for key in document["keys"]}
    assert by_id["K1"] == {"id": "K1", "name": "deployer", "roleNames": ["deployer"]}
    assert by_id["K4"] == {"id": "K4", "customClaims": {"n": 1}, "permittedIps": ["10.0.0.0/8"]}  # no name
    assert by_id["K5"] == {"id": "K5", "name": "five", "permittedIps": ["10.0.0.0/8"]}
    planned = run_cli(["plan", str(out)], env)
    assert planned.code == 0, planned.output  # the round trip: nothing to change


def test_factoring_rule_is_a_strict_majority_of_at_least_two() -> None:
    def keys(*values: str) -> list[dict[str, str]]:
        return [{"name": f'"k{i}"', "description": value} for i, value in enumerate(values)]

    assert common_values(keys('"a"', '"a"', '"b"')) == {"description": '"a"'}
    assert common_values(keys('"a"', '"a"', '"b"', '"b"')) == {}  # half is not most
    assert common_values(keys('"a"')) == {}  # one key: nothing to share
    assert common_values(keys('"x"', '"x"')) == {"description": '"x"'}  # never `name`, which tells keys apart
