"""Key status on keys the server marks not editable, and the audit's verdict on missing keys, through the
real CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from reconcile.emulator import Answer, Call
from tests.conftest import cli_env, load_report, run_cli, write_desired

DEACTIVATE = "/v1/mgmt/accesskey/deactivate"
UPDATE = "/v1/mgmt/accesskey/update"
KEYS = [
    {"id": "K1", "name": "fine"},
    {"id": "K2", "name": "system", "editable": False},
    {"id": "K3", "name": "also-system", "editable": False},
]


def test_status_changes_on_keys_not_editable_are_sent_and_the_answer_reported(
    start_emulator: Any, tmp_path: Path
) -> None:
    emulator = start_emulator(KEYS)
    desired = write_desired(tmp_path / "d", [{"id": "K2", "status": "inactive"}]).parent
    planned = run_cli(["plan", str(desired)], cli_env(emulator))
    assert planned.code == 2, planned.output  # a change to make, not an error
    assert "[update]" in planned.stdout and "not_editable" not in planned.stdout
    report = tmp_path / "r.json"
    applied = run_cli(["apply", str(desired), "--report", str(report)], cli_env(emulator))
    assert applied.code == 0, applied.output
    assert emulator.store.load("K2")["status"] == "inactive"
    assert load_report(report)["summary"]["byOutcome"] == {"updated": 1}


def test_a_server_that_refuses_the_status_change_is_reported(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(KEYS)

    def refusing(call: Call) -> Answer:  # a server that guards status like updates: its "not editable" answer
        return replace(call, path=UPDATE).forward({"id": call.body["id"]})

    emulator.intercept(DEACTIVATE, refusing)
    desired = write_desired(tmp_path / "d", [{"id": "K2", "status": "inactive"}]).parent
    report = tmp_path / "r.json"
    applied = run_cli(["apply", str(desired), "--report", str(report)], cli_env(emulator))
    assert applied.code == 1
    key = load_report(report)["keys"][0]
    assert key["outcome"] == "failed" and key["error"]["status"] == 400 and key["error"]["code"] == "E011004"
    assert "K2  [failed] after 1 attempt(s): HTTP 400 E011004: Access key is not editable" in applied.stdout
    assert emulator.store.load("K2")["status"] == "active"


def test_a_field_change_on_a_key_not_editable_stays_an_error_but_its_status_is_still_set(
    start_emulator: Any, tmp_path: Path
) -> None:
    emulator = start_emulator(KEYS)
    desired = write_desired(
        tmp_path / "d", [{"id": "K3", "name": "renamed", "status": "inactive"}, {"id": "K1", "name": "fine"}]
    ).parent
    report = tmp_path / "r.json"
    applied = run_cli(["apply", str(desired), "--report", str(report)], cli_env(emulator))
    assert applied.code == 1
    key = next(k for k in load_report(report)["keys"] if k["id"] == "K3")
    assert key["outcome"] == "not_editable" and key["reason"].startswith("status set inactive; the server marks")
    assert emulator.store.load("K3")["status"] == "inactive" and emulator.store.load("K3")["name"] == "also-system"
    assert not emulator.updates_for("K3")


def test_audit_fails_on_missing_keys_and_names_them(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(KEYS)
    desired = write_desired(tmp_path / "d", [{"id": "K1", "name": "fine"}, {"id": "K7", "name": "ghost"}]).parent
    out, summary = tmp_path / "audit.json", tmp_path / "audit.md"
    result = run_cli(
        ["audit", str(desired), "--fail-on-drift", "--out", str(out), "--summary", str(summary)], cli_env(emulator)
    )
    assert result.code == 2, result.output
    assert json.loads(out.read_text())["missing"] == ["K7"]
    text = summary.read_text()
    assert "1 desired but missing" in text and "### Desired but missing" in text and "- `K7`" in text
    assert run_cli(["audit", str(desired)], cli_env(emulator)).code == 0  # only when asked


def test_audit_counts_keys_it_cannot_change_as_drift(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(KEYS)
    desired = write_desired(tmp_path / "d", [{"id": "K2", "name": "renamed"}]).parent
    out = tmp_path / "audit.json"
    result = run_cli(["audit", str(desired), "--fail-on-drift", "--out", str(out)], cli_env(emulator))
    assert result.code == 2, result.output
    assert [entry["id"] for entry in json.loads(out.read_text())["drift"]] == ["K2"]
