"""Prune fails safe (issue 18): a name any file gives is never pruned, prunes come last and only after
everything before them succeeded, a rename keeps the old key until the new secret is delivered, and a
run over part of a folder prunes nothing the rest of it declares."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.conftest import cli_env, load_report, run_cli
from tests.lifecycle import secret_lines, writes


def scoped(folder: Path, keys: list[dict[str, Any]], prune: dict[str, Any], name: str = "keys.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = {"version": 1, "keys": keys}
    if prune:
        document["prune"] = prune
    (folder / name).write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return folder


def status(emulator: Any) -> dict[str, str]:
    return {key["id"]: key["status"] for key in emulator.store.all()}


def test_an_id_typo_never_deletes_the_key_the_file_means(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator([{"id": "K1", "name": "ci-app"}, {"id": "K2", "name": "ci-stale"}])
    folder = scoped(tmp_path / "d", [{"id": "K1X", "name": "ci-app"}], {"namePrefix": "ci-", "action": "delete"})
    planned = run_cli(["plan", str(folder)], cli_env(emulator))
    assert planned.code == 1, planned.output
    assert "has a key with its name (K1), maybe the id meant" in planned.stdout
    assert "K1 (ci-app)" not in planned.stdout  # not planned for deletion
    report = tmp_path / "r.json"
    applied = run_cli(["apply", str(folder), "--report", str(report)], cli_env(emulator))
    assert applied.code == 1, applied.output
    assert writes(emulator) == []  # K1 has a desired name; K2 waits: the plan has a key in error
    keys = {key["id"]: key for key in load_report(report)["keys"]}
    assert keys["K2"]["outcome"] == "held" and "the plan has 1 key(s) in error (K1X missing)" in keys["K2"]["reason"]
    assert sorted(emulator.store.load(key_id)["name"] for key_id in ("K1", "K2")) == ["ci-app", "ci-stale"]


def test_a_rename_keeps_the_old_key_until_the_new_secret_is_delivered(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator([{"id": "K1", "name": "ci-a", "roleNames": ["deployer"]}])
    folder = scoped(tmp_path / "d", [{"name": "ci-b", "roleNames": ["deployer"]}], {"namePrefix": "ci-"})
    planned = run_cli(["plan", str(folder)], cli_env(emulator))
    assert planned.code == 2, planned.output
    assert "probably the rename of K1 ('ci-a')" in planned.stdout
    assert "probably renamed to 'ci-b' (created by this run)" in planned.stdout
    report, secrets = tmp_path / "r.json", tmp_path / "s.jsonl"
    args = ["apply", str(folder), "--report", str(report)]
    failing = run_cli([*args, "--secrets-command", "exit 3"], cli_env(emulator))
    assert failing.code == 1, failing.output
    [new] = [key for key in emulator.store.all() if key["name"] == "ci-b"]
    assert status(emulator)["K1"] == "active"  # the old key still works: the new secret was lost
    keys = {key["name"]: key for key in load_report(report)["keys"]}
    assert keys["ci-b"]["outcome"] == "undelivered" and keys["ci-a"]["outcome"] == "held"

    rerun = run_cli([*args, "--secrets-out", str(secrets)], cli_env(emulator))  # the new key is unsettled
    assert rerun.code == 1 and status(emulator)["K1"] == "active", rerun.output
    assert "Apply: nothing to do" not in rerun.stdout and "never delivered (exit 1)" in rerun.stdout
    rotated = run_cli(
        ["rotate", "--ids", new["id"], "--secrets-out", str(secrets), "--journal", str(report) + ".journal.jsonl"],
        cli_env(emulator),
    )
    assert rotated.code == 0, rotated.output
    done = run_cli([*args, "--secrets-out", str(secrets)], cli_env(emulator))
    assert done.code == 0, done.output
    assert status(emulator) == {"K1": "inactive", new["id"]: "active"} and len(secret_lines(secrets)) == 1


def test_deactivations_run_after_creates(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator([{"id": "K1", "name": "ci-a"}])
    folder = scoped(tmp_path / "d", [{"name": "ci-b"}], {"namePrefix": "ci-"})
    args = ["apply", str(folder), "--journal", str(tmp_path / "j"), "--secrets-out", str(tmp_path / "s")]
    applied = run_cli(args, cli_env(emulator))
    assert applied.code == 0, applied.output
    assert [r.path.split("/")[4] for r in writes(emulator)] == ["create", "deactivate"]


def test_a_run_over_one_file_prunes_nothing_its_neighbours_declare(start_emulator: Any, tmp_path: Path) -> None:
    project = [{"id": "K1", "name": "ci-a"}, {"id": "K2", "name": "ci-b"}, {"id": "K3", "name": "ci-c"}]
    emulator = start_emulator([*project, {"id": "K4", "name": "ci-old"}])
    folder = scoped(tmp_path / "desired", [{"id": "K1", "name": "ci-a"}], {"namePrefix": "ci-"}, "a.yaml")
    scoped(folder, [{"id": "K2", "name": "ci-b"}, {"name": "ci-c"}], {}, "b.yaml")
    (folder / "workflow.yml").write_text("on: push\njobs: {}\n")  # no desired file: left alone
    applied = run_cli(["apply", str(folder / "a.yaml"), "--report", str(tmp_path / "r.json")], cli_env(emulator))
    assert applied.code == 0, applied.output
    assert [(r.path.split("/")[4], r.body) for r in writes(emulator)] == [("deactivate", {"id": "K4"})]
    (folder / "b.yaml").write_text("keys: [")  # unreadable: what it declares is unknown, so nothing runs
    broken = run_cli(["apply", str(folder / "a.yaml")], cli_env(emulator))
    assert broken.code != 0 and "b.yaml" in broken.stderr, broken.output
    assert len(writes(emulator)) == 1
