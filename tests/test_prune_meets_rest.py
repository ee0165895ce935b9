"""Where prune meets the rest (issue 19): a key declared again comes back, the safety limit counts only
what a run touches, a locked key never blocks a reviewed plan, audit sees an ambiguous name, and every
refusal leaves a report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import cli_env, load_report, run_cli, write_desired
from tests.lifecycle import writes


def scoped(folder: Path, keys: list[dict[str, Any]], prune: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    document = {"version": 1, "prune": prune, "keys": keys}
    (folder / "keys.yaml").write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return folder


def test_a_key_declared_again_inside_a_scope_is_activated(start_emulator: Any, tmp_path: Path) -> None:
    project = [
        {"id": "K1", "name": "ci-a", "status": "inactive"},  # pruned earlier, declared again by name
        {"id": "K2", "name": "ci-b", "status": "inactive"},  # ... by id
        {"id": "K3", "name": "ci-c", "status": "inactive"},  # declared, says inactive: stays
        {"id": "K4", "name": "other", "status": "inactive"},  # outside any scope: status unmanaged
    ]
    emulator = start_emulator(project)
    declared = [{"name": "ci-a"}, {"id": "K2", "name": "ci-b"}, {"id": "K3", "name": "ci-c", "status": "inactive"}]
    folder = scoped(tmp_path / "d", [*declared, {"id": "K4", "name": "other"}], {"namePrefix": "ci-"})
    planned = run_cli(["plan", str(folder)], cli_env(emulator))
    assert planned.code == 2, planned.output
    assert planned.stdout.count("which owns its status: it will be activated") == 2
    assert "Plan: 2 unchanged, 2 activate;" in planned.stdout
    applied = run_cli(["apply", str(folder)], cli_env(emulator))
    assert applied.code == 0, applied.output
    states = {key["id"]: key["status"] for key in emulator.store.all()}
    assert states == {"K1": "active", "K2": "active", "K3": "inactive", "K4": "inactive"}
    assert run_cli(["audit", str(folder), "--fail-on-drift"], cli_env(emulator)).code == 0


def test_the_safety_limit_counts_declared_and_pruned_keys_only(start_emulator: Any, tmp_path: Path) -> None:
    live = [{"id": f"K{n:02}", "name": f"svc-{n:02}", "description": "old"} for n in range(12)]
    pruned = [{"id": f"P{n:02}", "name": f"gone-{n:02}", "status": "inactive"} for n in range(40)]
    emulator = start_emulator([*live, *pruned])
    keys = [{"id": key["id"], "name": key["name"], "description": "new"} for key in live]
    folder = scoped(tmp_path / "d", keys, {"namePrefix": "gone-"})
    report = tmp_path / "r.json"
    refused = run_cli(["apply", str(folder), "--report", str(report)], cli_env(emulator))
    assert refused.code == 3, refused.output
    assert "changes 12 of 12 managed keys, over the limit of 3" in refused.stderr
    assert load_report(report)["safety"]["managed"] == 12
    saved = tmp_path / "plan.json"
    assert run_cli(["plan", str(folder), "--out", str(saved)], cli_env(emulator)).code == 2
    replayed = run_cli(["apply", "--plan", str(saved), "--report", str(report)], cli_env(emulator))
    assert replayed.code == 3 and "changes 12 of 12 managed keys" in replayed.stderr, replayed.output
    assert writes(emulator) == []


def test_a_locked_key_in_a_delete_scope_never_blocks_a_reviewed_plan(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(
        [
            {"id": "K1", "name": "ci-a"},
            {"id": "K2", "name": "ci-locked", "editable": False},
            {"id": "K3", "name": "ci-x"},
        ]
    )
    folder = scoped(tmp_path / "d", [{"id": "K1", "name": "ci-a"}], {"namePrefix": "ci-", "action": "delete"})
    saved = tmp_path / "plan.json"
    planned = run_cli(["plan", str(folder), "--out", str(saved)], cli_env(emulator))
    assert planned.code == 2, planned.output
    assert "K2 (ci-locked) is not editable, so it cannot be deleted: it is deactivated instead" in planned.stdout
    assert "narrow the scope" in planned.stdout
    applied = run_cli(["apply", "--plan", str(saved)], cli_env(emulator))
    assert applied.code == 0, applied.output
    assert {key["id"]: key["status"] for key in emulator.store.all()} == {"K1": "active", "K2": "inactive"}


def test_audit_counts_an_ambiguous_name_as_drift(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator([{"id": "K1", "name": "svc"}, {"id": "K2", "name": "svc"}, {"id": "K3", "name": "x"}])
    folder = write_desired(tmp_path / "d", [{"name": "svc"}]).parent
    out = tmp_path / "audit.json"
    audited = run_cli(["audit", str(folder), "--fail-on-drift", "--out", str(out)], cli_env(emulator))
    assert audited.code == 2, audited.output
    found = json.loads(out.read_text())
    assert [(d["action"], d["keys"]) for d in found["drift"]] == [("ambiguous", ["K1", "K2"])]
    assert [key["id"] for key in found["unmanaged"]] == ["K3"]
    planned = run_cli(["plan", str(folder)], cli_env(emulator))
    assert planned.code == 1 and "error: name 'svc': ambiguous" in planned.stderr and "None" not in planned.stderr


def test_every_refusal_writes_the_report_and_plan_says_a_sink_is_needed(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator([{"id": "K1", "name": "ci-a"}])
    folder = write_desired(tmp_path / "d", [{"id": "K1", "name": "ci-a"}, {"name": "ci-new"}]).parent
    report, summary, saved = tmp_path / "r.json", tmp_path / "s.md", tmp_path / "plan.json"
    planned = run_cli(
        ["plan", str(folder), "--out", str(saved), "--report", str(report), "--summary", str(summary)],
        cli_env(emulator),
    )
    assert planned.code == 2, planned.output
    assert "Applying needs a secret sink (--secrets-out FILE and/or --secrets-command CMD): 1 key(s)" in planned.stdout
    assert load_report(report)["secretsToIssue"] == [{"id": None, "name": "ci-new"}]
    assert "**Applying needs a secret sink**" in summary.read_text() and "`ci-new`" in summary.read_text()

    no_sink = run_cli(["apply", "--plan", str(saved), "--report", str(report)], cli_env(emulator))
    assert no_sink.code == 64, no_sink.output
    assert (
        load_report(report)["refusal"]["kind"] == "usage"
        and "--secrets-out" in load_report(report)["refusal"]["reason"]
    )

    emulator.store.create({"name": "ci-new"}, "someone")  # the plan is stale now: its name was taken
    stale = run_cli(
        ["apply", "--plan", str(saved), "--report", str(report), "--summary", str(summary)], cli_env(emulator)
    )
    assert stale.code == 1 and "changed since the plan was made" in stale.stderr, stale.output
    refusal = load_report(report)["refusal"]
    assert refusal["kind"] == "savedPlan" and refusal["exitCode"] == 1 and "now taken by" in refusal["reason"]
    assert "**Refused** before any write" in summary.read_text()

    (tmp_path / "d" / "keys.yaml").write_text((tmp_path / "d" / "keys.yaml").read_text() + "\n")
    other = run_cli(["apply", str(folder), "--plan", str(saved), "--report", str(report)], cli_env(emulator))
    assert other.code == 1 and load_report(report)["refusal"]["kind"] == "savedPlan", other.output
    assert writes(emulator) == []
