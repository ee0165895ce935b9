"""Prune: project keys inside a declared scope that no desired key names; keys outside stay untouched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import cli_env, load_report, run_cli
from tests.lifecycle import writes

DELETE_BATCH = "/v1/mgmt/accesskey/delete/batch"
OWNED = {"owner": "platform"}
PROJECT: list[dict[str, Any]] = [
    {"id": "K1", "name": "plat-ci", "customAttributes": OWNED, "keyTenants": [{"tenantId": "T1", "roleNames": []}]},
    {"id": "K2", "name": "plat-old", "customAttributes": OWNED, "keyTenants": [{"tenantId": "T1", "roleNames": []}]},
    {
        "id": "K3",
        "name": "plat-older",
        "customAttributes": OWNED,
        "keyTenants": [{"tenantId": "T1", "roleNames": []}],
        "description": "kept in lastState",
        "roleNames": [],
        "permittedIps": ["10.0.0.0/8"],
        "expireTime": 4102444800,
    },
    {
        "id": "K4",
        "name": "plat-theirs",
        "customAttributes": {"owner": "data"},
        "keyTenants": [{"tenantId": "T1", "roleNames": []}],
    },
    {"id": "K5", "name": "plat-t2", "customAttributes": OWNED, "keyTenants": [{"tenantId": "T2", "roleNames": []}]},
    {"id": "K6", "name": "billing", "customAttributes": OWNED, "keyTenants": [{"tenantId": "T1", "roleNames": []}]},
]
SCOPE = {"namePrefix": "plat-", "tenantIds": ["T1"], "customAttributes": OWNED}  # ANDed: K1-K3 only


def desired(folder: Path, prune: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "keys.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "prune": prune, "keys": [{"id": "K1", "name": "plat-ci"}]}))
    return folder


def untouched(emulator: Any, before: dict[str, Any]) -> None:
    now = {k["id"]: k for k in emulator.store.all()}
    for key_id in ("K4", "K5", "K6"):  # outside the scope: never touched
        assert now[key_id] == before[key_id]


def test_prune_deactivates_by_default_and_replans_to_nothing(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(PROJECT)
    before = {k["id"]: k for k in emulator.store.all()}
    folder = desired(tmp_path / "d", SCOPE)
    planned = run_cli(["plan", str(folder)], cli_env(emulator))
    assert planned.code == 2, planned.output
    assert "~ K2 (plat-old)" in planned.stdout and "[deactivate]" in planned.stdout
    assert "inside the prune scope at" in planned.stdout and "3 unmanaged" in planned.stdout
    report = tmp_path / "r.json"
    applied = run_cli(["apply", str(folder), "--report", str(report)], cli_env(emulator))
    assert applied.code == 0, applied.output
    assert {k["id"]: k["status"] for k in emulator.store.all() if k["id"] in ("K2", "K3")} == {
        "K2": "inactive",
        "K3": "inactive",
    }
    assert [(r.path, r.body) for r in writes(emulator)] == [
        ("/v1/mgmt/accesskey/deactivate/batch", {"ids": ["K2", "K3"]})
    ]
    untouched(emulator, before)
    record = load_report(report)
    assert record["summary"]["byOutcome"] == {"deactivated": 2, "unchanged": 1}
    assert sorted(u["id"] for u in record["unmanaged"]) == ["K4", "K5", "K6"]
    again = run_cli(["plan", str(folder), "-v"], cli_env(emulator))
    assert again.code == 0 and "already inactive" in again.stdout, again.output


def test_prune_delete_keeps_the_last_state_and_replans_to_nothing(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(PROJECT)
    before = {k["id"]: k for k in emulator.store.all()}
    folder = desired(tmp_path / "d", {**SCOPE, "action": "delete"})
    summary = tmp_path / "plan.md"
    planned = run_cli(["plan", str(folder), "--summary", str(summary)], cli_env(emulator))
    assert planned.code == 2 and "- K3 (plat-older)" in planned.stdout and "[DELETE]" in planned.stdout
    assert "!! 2 key(s) will be DELETED, which cannot be undone: K2, K3" in planned.stdout
    assert "**2 key(s) will be deleted**" in summary.read_text()
    refused = run_cli(["apply", str(folder), "--max-changes", "1"], cli_env(emulator))
    assert refused.code == 3 and writes(emulator) == []  # deletions count towards --max-changes

    report = tmp_path / "r.json"
    assert run_cli(["apply", str(folder), "--report", str(report)], cli_env(emulator)).code == 0
    assert [(r.path, r.body) for r in writes(emulator)] == [(DELETE_BATCH, {"ids": ["K2", "K3"]})]
    assert sorted(k["id"] for k in emulator.store.all()) == ["K1", "K4", "K5", "K6"]
    untouched(emulator, before)
    deleted = {k["id"]: k for k in load_report(report)["keys"] if k["outcome"] == "deleted"}
    assert deleted["K3"]["lastState"] == before["K3"]  # every field, enough to recreate it
    assert run_cli(["plan", str(folder)], cli_env(emulator)).code == 0


def test_a_key_named_by_name_is_never_pruned(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(PROJECT)
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "keys.yaml").write_text(
        yaml.safe_dump(
            {"version": 1, "prune": {"namePrefix": "plat-", "action": "delete"}, "keys": [{"name": "plat-old"}]}
        )
    )
    (folder / "more.yaml").write_text(yaml.safe_dump({"version": 1, "keys": [{"id": "K1"}]}))
    planned = run_cli(["plan", str(folder), "--report", str(tmp_path / "r.json")], cli_env(emulator))
    outcomes = {k["id"]: k["outcome"] for k in load_report(tmp_path / "r.json")["keys"]}
    assert outcomes == {"K1": "unchanged", "K2": "unchanged", "K3": "delete", "K4": "delete", "K5": "delete"}, (
        planned.output
    )


@pytest.mark.parametrize(
    ("prune", "message", "where"),
    [  # where: line:column of the mapping that lacks a scope, the wrong value, the unknown field
        ({"action": "delete"}, "`prune` needs a scope: namePrefix, tenantIds and/or customAttributes", "4:3"),
        (
            {"namePrefix": "x", "action": "remove"},
            "`prune.action` must be one of deactivate, delete, got 'remove'",
            "5:11",
        ),
        ({"tenantIds": []}, "`prune.tenantIds` must not be empty", "4:14"),
        ({"namePrefix": "x", "tenants": ["T1"]}, "unknown field `tenants`: did you mean `tenantIds`?", "5:3"),
    ],
)
def test_prune_section_errors_are_located(tmp_path: Path, prune: dict[str, Any], message: str, where: str) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text("version: 1\nkeys: []\nprune:\n" + "".join(f"  {k}: {json.dumps(v)}\n" for k, v in prune.items()))
    result = run_cli(["validate", str(path)], cli_env(None))
    assert result.code == 1 and message in result.stderr, result.stderr
    assert f"{path}:{where}: error: {message}" in result.stderr, result.stderr
