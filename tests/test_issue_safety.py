"""Issuing secrets fails safe (issue 18): a lost create blocks its name, the first delivery failure
stops further issuing, rotations take the project's lock, and `rotate` says what it should."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from reconcile.emulator import Answer, Call
from tests.conftest import cli_env, load_report, run_cli, write_desired
from tests.lifecycle import secret_lines
from tests.support.process import start_process

CREATE = "/v1/mgmt/accesskey/create"
ROTATE = "/v1/mgmt/accesskey/rotate"


def test_a_lost_create_blocks_its_name_until_the_key_it_made_is_found(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator([{"id": "K1", "name": "ci-old"}])
    queued: list[Any] = []

    def queue_first_create(call: Call) -> Answer:
        if not queued:  # the server took it, will make it later; the answer is lost
            queued.append(call.body)
            return Answer(0, drop=True)
        return call.forward()

    emulator.intercept(CREATE, queue_first_create)
    folder = write_desired(tmp_path / "d", [{"name": "ci-new"}]).parent
    report, secrets = tmp_path / "r.json", tmp_path / "s.jsonl"
    args = ["apply", str(folder), "--report", str(report), "--secrets-out", str(secrets)]
    assert run_cli(args, cli_env(emulator)).code == 1  # no key named ci-new: nothing known yet

    rerun = run_cli(args, cli_env(emulator))
    assert rerun.code == 1, rerun.output
    assert [r.path for r in emulator.recorded()].count(CREATE) == 1  # not created again
    assert "never read the answer" in rerun.stderr and "--allow-recreate 'ci-new'" in rerun.stderr
    assert load_report(report)["keys"][0]["outcome"] == "conflict"

    recreated = run_cli([*args, "--allow-recreate", "ci-new"], cli_env(emulator))  # the operator's call
    assert recreated.code == 0, recreated.output
    [delivered] = secret_lines(secrets)
    late, _ = emulator.store.create(queued[0], "queued")  # the lost create lands after all
    flagged = run_cli(args, cli_env(emulator))
    assert flagged.code == 1, flagged.output
    [unsettled] = load_report(report)["unsettledSecrets"]
    assert unsettled["id"] == late["id"] and "the run stopped before the answer came" in unsettled["why"]
    assert f"{delivered['id']}, also named 'ci-new', holds the delivered secret" in unsettled["why"]
    assert unsettled["recover"] in flagged.stderr


def test_the_first_delivery_failure_stops_further_issuing(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator([{"id": f"K{n}", "name": f"svc-{n}"} for n in (1, 2, 3)])
    report = tmp_path / "r.json"
    args = ["rotate", "--ids", "K1,K2,K3", "--report", str(report), "--secrets-command", "exit 127"]
    result = run_cli(args, cli_env(emulator))
    assert result.code == 1, result.output
    assert [r.path for r in emulator.recorded()].count(ROTATE) == 1  # two working secrets kept
    outcomes = {key["id"]: key["outcome"] for key in load_report(report)["keys"]}
    assert outcomes == {"K1": "undelivered", "K2": "held", "K3": "held"}
    assert "2 key(s) not sent: issuing stops at the first delivery failure" in result.stdout
    [line] = [line for line in result.stdout.splitlines() if line.startswith("Recover all of them")]
    assert "rotate --ids K1,K2,K3 " in line


def test_rotate_takes_the_project_lock(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator([{"id": "K1", "name": "svc"}])
    env = cli_env(emulator, XDG_STATE_HOME=str(tmp_path / "state"))
    go = tmp_path / "go"  # the first rotation's sink holds its secret until the second one has tried
    sink = f"for i in $(seq 600); do [ -e {go} ] && break; sleep 0.05; done; cat >/dev/null"
    slow = ["rotate", "--ids", "K1", "--journal", str(tmp_path / "j1"), "--secrets-command", sink]
    first = start_process(slow, env)
    try:
        deadline = time.monotonic() + 30
        while ROTATE not in [r.path for r in emulator.recorded()] and time.monotonic() < deadline:
            time.sleep(0.05)
        second = run_cli(
            ["rotate", "--ids", "K1", "--journal", str(tmp_path / "j2"), "--secrets-out", str(tmp_path / "s")], env
        )
        assert second.code == 1 and "another apply is changing this project" in second.stderr, second.output
        assert [r.path for r in emulator.recorded()].count(ROTATE) == 1
    finally:
        go.touch()
        assert first.wait(timeout=60) == 0, first.communicate()


def test_rotate_warns_of_an_inactive_key_and_of_a_key_no_file_manages(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator([{"id": "K1", "name": "svc", "status": "inactive"}, {"id": "K2", "name": "ci-x"}])
    shown = run_cli(["rotate", "--ids", "K1,K2", "--dry-run"], cli_env(emulator))
    assert shown.code == 0 and "warning: the key is inactive" in shown.stdout, shown.output
    path = write_desired(tmp_path / "d", [{"id": "K1", "name": "svc"}])
    path.write_text(path.read_text() + "prune: {namePrefix: ci-}\n")
    told = run_cli(["rotate", "--ids", "K1,K2", "--dry-run", str(path.parent)], cli_env(emulator))
    assert told.code == 0, told.output
    assert told.stdout.count("no desired file manages this key") == 1  # K2, not K1
    assert "owns it: the next apply prunes it" in told.stdout
