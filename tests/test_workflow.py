"""Operator workflows through the real CLI: export, saved plans, key status, summaries, audit."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconcile.schemas.validators import REQUEST_SCHEMA, validator
from tests.conftest import cli_env, load_report, run_cli, write_desired

PROJECT: list[dict[str, Any]] = [
    {
        "id": "K1",
        "name": "ci-deployer",
        "description": "deploys",
        "roleNames": ["deployer", "admin"],
        "customClaims": {"tier": 2, "prod": True},
        "permittedIps": ["10.0.0.0/8"],
        "customAttributes": {"owner": "platform", "regions": ["eu", "us"]},
        "expireTime": 4102444800,  # 2100: past int32 (January 2038), which the API's typing would cap
        "boundUserId": "U1",
    },
    {"id": "K2", "name": "billing", "keyTenants": [{"tenantId": "T1", "roleNames": ["b"]}], "status": "inactive"},
    {"id": "K3", "name": "tenant-two", "keyTenants": [{"tenantId": "T2", "roleNames": []}]},
    {"id": "K4", "name": "", "description": "a key without a name"},
]
UPDATE = "/v1/mgmt/accesskey/update"


def test_export_round_trip_is_in_sync(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(PROJECT, tenant_names={"T1": "One"})
    out = tmp_path / "desired" / "keys.yaml"
    result = run_cli(["export", "--out", str(out)], cli_env(emulator))
    assert result.code == 0, result.output
    text = out.read_text()
    assert "# status: inactive; expires: never; bound user: none" in text
    assert "# status: active; expires: 2100-01-01; bound user: U1" in text
    assert "tenantName" not in text and "status:" not in text.replace("# status:", "")
    document = yaml.safe_load(text)
    assert [k["id"] for k in document["keys"]] == ["K1", "K2", "K3", "K4"]
    assert "name" not in document["keys"][3]  # empty name: left unmanaged, the file stays valid
    assert document["keys"][0]["roleNames"] == ["admin", "deployer"]  # sorted: deterministic

    assert run_cli(["validate", str(out)], cli_env(None)).code == 0
    planned = run_cli(["plan", str(out)], cli_env(emulator))
    assert planned.code == 0, planned.output  # round trip: zero changes

    again = run_cli(["export", "--out", str(out)], cli_env(emulator))
    assert again.code == 1 and "--overwrite" in again.stderr
    assert run_cli(["export", "--out", str(out), "--overwrite"], cli_env(emulator)).code == 0
    assert out.read_text() == text  # deterministic


def test_export_narrowed_by_ids_and_tenant(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(PROJECT)
    by_ids = tmp_path / "ids.yaml"
    assert run_cli(["export", "--out", str(by_ids), "--ids", "K3,K1"], cli_env(emulator)).code == 0
    assert [k["id"] for k in yaml.safe_load(by_ids.read_text())["keys"]] == ["K1", "K3"]
    loads = [(r.method, r.path) for r in emulator.requests if not r.path.endswith("/attribute")]  # not declarations
    assert loads == [("GET", "/v1/mgmt/accesskey")] * 2  # no search
    by_tenant = tmp_path / "tenant.yaml"
    assert run_cli(["export", "--out", str(by_tenant), "--tenant", "T2"], cli_env(emulator)).code == 0
    assert [k["id"] for k in yaml.safe_load(by_tenant.read_text())["keys"]] == ["K3"]
    unknown = run_cli(["export", "--out", str(tmp_path / "x.yaml"), "--ids", "K9,K1"], cli_env(emulator))
    assert unknown.code == 1 and "not in the project: K9" in unknown.stderr
    both = tmp_path / "both.yaml"
    assert run_cli(["export", "--out", str(both), "--ids", "K3", "--tenant", "T2"], cli_env(emulator)).code == 0
    assert [k["id"] for k in yaml.safe_load(both.read_text())["keys"]] == ["K3"]
    outside = run_cli(
        ["export", "--out", str(tmp_path / "o.yaml"), "--ids", "K1,K3", "--tenant", "T2"], cli_env(emulator)
    )
    assert outside.code == 1 and "not in tenant(s) T2: K1" in outside.stderr


def _saved_plan(emulator: Any, tmp_path: Path, desired: list[dict[str, Any]]) -> tuple[Path, Path]:
    folder = tmp_path / "desired"
    write_desired(folder, desired)
    plan_file = tmp_path / "plan.json"
    result = run_cli(["plan", str(folder), "--out", str(plan_file)], cli_env(emulator))
    assert result.code == 2, result.output
    return folder, plan_file


def test_saved_plan_is_applied_exactly(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(PROJECT)
    folder, plan_file = _saved_plan(
        emulator, tmp_path, [{"id": "K1", "name": "renamed"}, {"id": "K3", "name": "tenant-two"}]
    )
    saved = json.loads(plan_file.read_text())
    assert [change["id"] for change in saved["changes"]] == ["K1"]
    # Changing the desired files after the plan does not change what the plan applies...
    write_desired(folder, [{"id": "K1", "name": "something else"}, {"id": "K3", "name": "also changed"}])
    result = run_cli(["apply", "--plan", str(plan_file), "--report", str(tmp_path / "r.json")], cli_env(emulator))
    assert result.code == 0, result.output
    assert [r.body["id"] for r in emulator.requests if r.path == UPDATE] == ["K1"]
    assert emulator.store.load("K1")["name"] == "renamed"
    assert load_report(tmp_path / "r.json")["summary"]["byOutcome"] == {"updated": 1}
    # ...but with the PATHs given, files that differ from the plan's are refused.
    refused = run_cli(["apply", str(folder), "--plan", str(plan_file)], cli_env(emulator))
    assert refused.code == 1 and "desired files differ" in refused.stderr


def test_stale_plan_is_refused_naming_the_keys(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(PROJECT)
    _, plan_file = _saved_plan(emulator, tmp_path, [{"id": "K1", "name": "renamed"}, {"id": "K3", "name": "t2"}])
    emulator.store.update({"id": "K3", "description": "someone changed it by hand"}, "merge")
    before = len(emulator.requests)
    result = run_cli(["apply", "--plan", str(plan_file)], cli_env(emulator))
    assert result.code == 1
    assert "1 planned key(s) changed since the plan was made: K3" in result.stderr
    assert [r.path for r in emulator.requests[before:]] == ["/v1/mgmt/accesskey/search"]  # read, never wrote


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda plan: plan["changes"][0]["body"].update(name="sneaky"), "edited or damaged"),
        (lambda plan: plan.update(planFormat=99), "not a saved plan"),
        (lambda plan: plan.pop("target"), "edited or damaged"),
    ],
)
def test_edited_plan_file_is_refused_before_any_request(
    start_emulator: Any, tmp_path: Path, tamper: Any, message: str
) -> None:
    emulator = start_emulator(PROJECT)
    _, plan_file = _saved_plan(emulator, tmp_path, [{"id": "K1", "name": "renamed"}])
    saved = json.loads(plan_file.read_text())
    tamper(saved)
    plan_file.write_text(json.dumps(saved))
    before = len(emulator.requests)
    result = run_cli(["apply", "--plan", str(plan_file)], cli_env(emulator))
    assert result.code == 1 and message in result.stderr, result.stderr
    assert len(emulator.requests) == before


def test_old_plan_and_other_project_are_refused(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(PROJECT)
    _, plan_file = _saved_plan(emulator, tmp_path, [{"id": "K1", "name": "renamed"}])
    time.sleep(1.1)
    too_old = run_cli(["apply", "--plan", str(plan_file), "--max-plan-age", "1s"], cli_env(emulator))
    assert too_old.code == 1 and "over --max-plan-age" in too_old.stderr
    elsewhere = run_cli(["apply", "--plan", str(plan_file)], {**cli_env(emulator), "DESCOPE_PROJECT_ID": "P2other"})
    assert elsewhere.code == 1 and "made for project" in elsewhere.stderr
    assert run_cli(["apply", "--plan", str(plan_file), "--max-plan-age", "soon"], cli_env(emulator)).code == 64
    assert run_cli(["apply"], cli_env(emulator)).code == 64


def test_status_is_managed_through_activate_and_deactivate(start_emulator: Any, tmp_path: Path) -> None:
    keys = [{"id": f"K{i}", "name": f"k{i}"} for i in range(5)] + [{"id": "K9", "name": "k9", "status": "inactive"}]
    emulator = start_emulator(keys)
    desired = [
        {"id": "K0", "status": "inactive"},
        {"id": "K1", "status": "inactive", "name": "renamed"},
        {"id": "K2", "status": "active"},
        {"id": "K9", "status": "active"},
    ]
    folder = write_desired(tmp_path / "d", desired).parent
    planned = run_cli(["plan", str(folder)], cli_env(emulator))
    assert planned.code == 2 and 'status: "active" -> "inactive"' in planned.stdout
    result = run_cli(["apply", str(folder), "--report", str(tmp_path / "r.json")], cli_env(emulator))
    assert result.code == 0, result.output
    posts = [r for r in emulator.requests if r.method == "POST" and "/accesskey/" in r.path]  # not the audit trail
    calls = [(r.path, r.body) for r in posts if "search" not in r.path]
    assert calls == [
        ("/v1/mgmt/accesskey/deactivate/batch", {"ids": ["K0", "K1"]}),  # several keys: the batch form
        ("/v1/mgmt/accesskey/activate", {"id": "K9"}),  # one key: the single form
        (UPDATE, calls[2][1]),
    ]
    assert calls[2][1]["id"] == "K1" and "status" not in calls[2][1]
    assert {k["id"]: k["status"] for k in emulator.store.all()} == {
        "K0": "inactive",
        "K1": "inactive",
        "K2": "active",
        "K3": "active",
        "K4": "active",
        "K9": "active",
    }
    report = load_report(tmp_path / "r.json")
    assert report["summary"]["byOutcome"] == {"unchanged": 1, "updated": 3}
    assert run_cli(["plan", str(folder)], cli_env(emulator)).code == 0


def test_status_changes_count_towards_the_safety_threshold(start_emulator: Any, tmp_path: Path) -> None:
    keys = [{"id": f"K{i:02d}", "name": f"k{i}"} for i in range(20)]
    emulator = start_emulator(keys)
    desired = [{"id": k["id"], "status": "inactive" if i < 6 else "active"} for i, k in enumerate(keys)]
    folder = write_desired(tmp_path / "d", desired).parent
    result = run_cli(["apply", str(folder)], cli_env(emulator))
    assert result.code == 3 and "changes 6 of 20" in result.stderr
    assert all(k["status"] == "active" for k in emulator.store.all())


def test_every_update_body_is_valid_against_the_request_schema(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(PROJECT)
    desired = [
        {"id": "K1", "customClaims": {"tier": 3}},
        {"id": "K2", "keyTenants": [{"tenantId": "T1"}, {"tenantId": "T3", "roleNames": ["x"]}]},
        {"id": "K4", "name": "named at last"},
    ]
    assert run_cli(["apply", str(write_desired(tmp_path, desired))], cli_env(emulator)).code == 0
    bodies = [r.body for r in emulator.requests if r.path == UPDATE]
    assert len(bodies) == 3
    for body in bodies:
        assert not list(validator(REQUEST_SCHEMA).iter_errors(body)), body


def test_summary_file_and_github_step_summary(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(PROJECT)
    folder = write_desired(tmp_path / "d", [{"id": "K1", "name": "renamed"}, {"id": "K7", "name": "ghost"}]).parent
    summary = tmp_path / "summary.md"
    run_cli(["plan", str(folder), "--summary", str(summary)], cli_env(emulator))
    text = summary.read_text()
    assert "| missing | 1 |" in text and "| update | 1 |" in text
    rows = [line for line in text.splitlines() if line.startswith("| `K")]
    assert rows[0].startswith("| `K7`") and rows[1].startswith("| `K1`")  # failures first
    assert "<details><summary><code>K1</code>" in text and '+ name: "renamed"' in text

    step_summary = tmp_path / "step.md"
    step_summary.write_text("earlier step\n")
    env = {**cli_env(emulator), "GITHUB_STEP_SUMMARY": str(step_summary)}
    run_cli(["plan", str(folder)], env)
    assert step_summary.read_text().startswith("earlier step\n## descope-reconcile Plan")  # appended


def test_long_plans_are_cut_in_the_summary(start_emulator: Any, tmp_path: Path) -> None:
    keys = [{"id": f"K{i:03d}", "name": "old"} for i in range(230)]
    emulator = start_emulator(keys)
    folder = write_desired(tmp_path / "d", [{"id": k["id"], "name": "new"} for k in keys]).parent
    summary = tmp_path / "s.md"
    run_cli(["plan", str(folder), "--summary", str(summary)], cli_env(emulator))
    text = summary.read_text()
    # 200 rows of changed keys, and 200 of who changed them (the audit trail's section)
    assert text.count("| `K") == 2 * 200 and text.count("and 30 more key(s) not shown") == 2


def test_audit_reports_findings_and_fails_on_drift_only_when_asked(start_emulator: Any, tmp_path: Path) -> None:
    now = int(time.time())
    keys = [
        {"id": "K1", "name": "fine", "roleNames": ["r"], "permittedIps": ["10.0.0.0/8"]},
        {"id": "K2", "name": "soon", "roleNames": ["r"], "permittedIps": ["10.0.0.0/8"], "expireTime": now + 86400},
        {"id": "K3", "name": "gone", "roleNames": ["r"], "permittedIps": ["10.0.0.0/8"], "expireTime": now - 60},
        {"id": "K4", "name": "bare", "status": "inactive"},
        {"id": "K5", "name": "later", "roleNames": ["r"], "permittedIps": ["1.1.1.1"], "expireTime": now + 90 * 86400},
    ]
    emulator = start_emulator(keys)
    folder = write_desired(tmp_path / "d", [{"id": "K1", "name": "drifted"}, {"id": "K2", "name": "soon"}]).parent
    out = tmp_path / "audit.json"
    result = run_cli(["audit", str(folder), "--out", str(out), "--summary", str(tmp_path / "a.md")], cli_env(emulator))
    assert result.code == 0, result.output
    audit = json.loads(out.read_text())
    ids = {name: [entry["id"] for entry in entries] for name, entries in audit["findings"].items()}
    assert ids == {"inactive": ["K4"], "expiring": ["K2", "K3"], "noIpRestriction": ["K4"], "noRolesNoTenants": ["K4"]}
    assert [entry["expired"] for entry in audit["findings"]["expiring"]] == [False, True]
    assert audit["managed"] == ["K1", "K2"] and [k["id"] for k in audit["unmanaged"]] == ["K3", "K4", "K5"]
    assert [d["id"] for d in audit["drift"]] == ["K1"]
    assert "| drift | 1 |" in result.stdout and (tmp_path / "a.md").read_text() == result.stdout
    reads = ("/v1/mgmt/accesskey/search", "/v1/mgmt/audit/search")
    assert not [r for r in emulator.requests if r.path not in reads]  # read-only

    assert run_cli(["audit", str(folder), "--fail-on-drift", "-q"], cli_env(emulator)).code == 2
    wide = run_cli(["audit", "--expiring-within", "120", "--out", str(out)], cli_env(emulator))
    assert wide.code == 0 and [e["id"] for e in json.loads(out.read_text())["findings"]["expiring"]] == [
        "K2",
        "K3",
        "K5",
    ]
