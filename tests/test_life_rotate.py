"""`rotate`, and saved plans that create and prune."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from reconcile.emulator import Answer, Call
from tests.conftest import cli_env, load_report, run_cli, write_desired
from tests.lifecycle import exchange, journal, secret_lines, writes

ROTATE = "/v1/mgmt/accesskey/rotate"
PROJECT = [
    {"id": "K1", "name": "ci", "cleartext": "old-secret-of-k1"},
    {"id": "K2", "name": "billing", "cleartext": "old-secret-of-k2"},
    {"id": "K3", "name": "frozen", "editable": False},
]


def test_rotation_kills_the_old_secret_and_delivers_a_working_one(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(PROJECT)
    assert exchange(emulator, "old-secret-of-k1") == 200
    dry = run_cli(["rotate", "--ids", "K1,K2", "--dry-run"], cli_env(emulator))
    assert dry.code == 0 and "* K1 (ci)" in dry.stdout and "* K2 (billing)" in dry.stdout and "[rotate]" in dry.stdout
    assert writes(emulator) == []
    refused = run_cli(["rotate", "--ids", "K1", "--report", str(tmp_path / "r.json")], cli_env(emulator))
    assert refused.code == 64 and "--secrets-out FILE" in refused.stderr and writes(emulator) == []

    out, report = tmp_path / "new.jsonl", tmp_path / "rotate.json"
    result = run_cli(
        [
            "rotate",
            "--ids",
            "K1",
            "--secrets-out",
            str(out),
            "--report",
            str(report),
            "--summary",
            str(tmp_path / "s.md"),
        ],
        cli_env(emulator),
    )
    assert result.code == 0, result.output
    [line] = secret_lines(out)
    assert line["id"] == "K1" and line["name"] == "ci"
    assert exchange(emulator, "old-secret-of-k1") == 401 and exchange(emulator, line["cleartext"]) == 200
    assert exchange(emulator, "old-secret-of-k2") == 200  # exactly the keys named
    assert [(r.path, r.body) for r in writes(emulator)] == [(ROTATE, {"id": "K1"})]
    record = load_report(report)
    assert record["run"]["mode"] == "rotate" and record["summary"]["byOutcome"] == {"rotated": 1}
    assert record["desired"]["files"] == [] and "Rotate: 1 rotated." in result.stdout
    assert [r["event"] for r in journal(tmp_path / "rotate.json.journal.jsonl") if r["type"] == "secret"] == [
        "requested",
        "issued",
        "delivered",
    ]


def test_rotation_of_unknown_or_frozen_keys(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(PROJECT)
    args = ["rotate", "--ids", "K9,K3,K2", "--secrets-out", str(tmp_path / "s"), "--journal", str(tmp_path / "j")]
    result = run_cli(args, cli_env(emulator))
    assert result.code == 1 and "[missing]" in result.stdout and "[not_editable]" in result.stdout
    assert [r.body for r in writes(emulator)] == [{"id": "K2"}]  # the others rotated anyway


def test_a_rotation_whose_answer_is_lost_is_reloaded_never_resent(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(PROJECT)

    def fail_after_rotating(call: Call) -> Answer:
        answer = call.forward()  # rotated, then a 503 from the gateway: the new secret is lost
        answer.status, answer.body = 503, {"errorCode": "E011001", "errorDescription": "unavailable"}
        return answer

    emulator.intercept(ROTATE, fail_after_rotating)
    report = tmp_path / "r.json"
    result = run_cli(
        ["rotate", "--ids", "K1", "--secrets-out", str(tmp_path / "s"), "--report", str(report)], cli_env(emulator)
    )
    assert result.code == 1, result.output
    paths = [r.path for r in emulator.recorded() if r.path != "/v1/auth/accesskey/exchange"]
    assert paths == ["/v1/mgmt/accesskey", ROTATE, "/v1/mgmt/accesskey"]  # load, rotate once, reload
    [key] = load_report(report)["keys"]
    assert key["outcome"] == "undelivered" and "the key is there (active" in key["reason"]
    assert "old secret may no longer work" in key["reason"] and key["recover"] in result.stdout
    assert exchange(emulator, "old-secret-of-k1") == 401  # indeed: the server did rotate


def _plan(emulator: Any, folder: Path, out: Path) -> dict[str, Any]:
    result = run_cli(["plan", str(folder), "--out", str(out)], cli_env(emulator))
    assert result.code == 2, result.output
    saved: dict[str, Any] = json.loads(out.read_text())
    return saved


def test_saved_plan_carries_creates_and_prunes_exactly(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(
        [{"id": "K1", "name": "app-a"}, {"id": "K2", "name": "app-old"}, {"id": "K3", "name": "other"}]
    )
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "keys.yaml").write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "prune": {"namePrefix": "app-", "action": "delete"},
                "keys": [{"id": "K1", "name": "app-a"}, {"name": "app-new", "roleNames": ["r"]}],
            }
        )
    )
    plan_file = tmp_path / "plan.json"
    saved = _plan(emulator, folder, plan_file)
    assert [(c["action"], c["id"], c["name"]) for c in saved["changes"]] == [
        ("create", None, "app-new"),
        ("delete", "K2", "app-old"),
    ]
    write_desired(folder, [{"id": "K1", "name": "changed after the plan"}])  # not what the plan applies
    args = ["apply", "--plan", str(plan_file), "--report", str(tmp_path / "r.json")]
    assert run_cli(args, cli_env(emulator)).code == 64  # a create needs a sink
    result = run_cli([*args, "--secrets-out", str(tmp_path / "s")], cli_env(emulator))
    assert result.code == 0, result.output
    assert [r.path.rsplit("/", 1)[-1] for r in writes(emulator)] == ["create", "delete"]
    assert sorted(k["name"] for k in emulator.store.all()) == ["app-a", "app-new", "other"]
    assert load_report(tmp_path / "r.json")["summary"]["byOutcome"] == {"created": 1, "deleted": 1}


def test_saved_plan_is_refused_when_a_planned_name_was_taken_or_a_doomed_key_changed(
    start_emulator: Any, tmp_path: Path
) -> None:
    emulator = start_emulator([{"id": "K1", "name": "app-a"}, {"id": "K2", "name": "app-old"}])
    folder = tmp_path / "d"
    folder.mkdir()
    document = {"version": 1, "prune": {"namePrefix": "app-", "action": "delete"}, "keys": [{"name": "app-new"}]}
    (folder / "keys.yaml").write_text(yaml.safe_dump(document))
    plan_file = tmp_path / "plan.json"
    _plan(emulator, folder, plan_file)
    taken, _ = emulator.store.create({"name": "app-new"}, created_by="someone else")
    emulator.store.update({"id": "K2", "description": "still in use!"}, "merge")  # K1, also doomed, is as planned
    args = ["apply", "--plan", str(plan_file), "--secrets-out", str(tmp_path / "s"), "--journal", str(tmp_path / "j")]
    result = run_cli(args, cli_env(emulator))
    assert result.code == 1, result.output
    stale = f"'app-new' (planned for creation, now taken by {taken['id']}), K2 (planned for deletion); plan again"
    assert f"2 planned key(s) changed since the plan was made: {stale}" in result.stderr
    assert writes(emulator) == []
