"""Concurrent writers, through the real CLI: two applies on one machine serialize (or the second refuses,
naming the first), a key changed between our read and our write is not written (`stale`), and an
update whose answer is not the intended key says so (`unconfirmed`)."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from reconcile.emulator import Answer, Call
from tests.conftest import cli_env, load_report, run_cli, write_desired
from tests.support import SEARCH, UPDATE, start_process

KEYS = [{"id": f"K00{i}", "name": f"key-{i}", "description": f"about {i}"} for i in range(3)]


def env_for(emulator: Any, state: Path) -> dict[str, str]:
    return cli_env(emulator, XDG_STATE_HOME=str(state))  # the lock folder, per test


def saved_plan(emulator: Any, folder: Path, desired: list[dict[str, Any]], env: dict[str, str]) -> Path:
    write_desired(folder, desired)
    plan_file = folder.with_suffix(".json")
    result = run_cli(["plan", str(folder), "--out", str(plan_file)], env)
    assert result.code == 2, result.output
    return plan_file


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return start_process(args, env)


def wait_until_locked(state: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not any(path.read_text() for path in state.glob("descope-reconcile/locks/*.lock")):
        assert time.monotonic() < deadline, "the first apply never took the lock"
        time.sleep(0.02)


@pytest.mark.slow
def test_two_applies_at_once_never_lose_an_update(start_emulator: Any, tmp_path: Path) -> None:
    """Both start at once: the first to take the lock reads, and is held there until the other has
    given up, so the two runs overlap whatever the machine's load."""
    emulator = start_emulator(KEYS, latency_ms=300)
    env = env_for(emulator, tmp_path / "state")
    rename = saved_plan(emulator, tmp_path / "a", [{"id": "K000", "name": "renamed"}], env)
    describe = saved_plan(emulator, tmp_path / "b", [{"id": "K000", "description": "described"}], env)
    first_read, other_ended = threading.Event(), threading.Event()

    def held_read(call: Call) -> Answer:
        if not first_read.is_set():
            first_read.set()
            other_ended.wait(timeout=60)
        return call.forward()

    emulator.intercept(SEARCH, held_read)
    runs = [start(["apply", "--plan", str(plan)], env) for plan in (rename, describe)]
    deadline = time.monotonic() + 60
    while all(run.poll() is None for run in runs):
        assert time.monotonic() < deadline, "neither apply ended"
        time.sleep(0.02)
    other_ended.set()
    outputs = [run.communicate(timeout=60) for run in runs]
    codes = [run.returncode for run in runs]
    assert sorted(codes) == [0, 1], outputs
    winner, loser = (0, 1) if codes[0] == 0 else (1, 0)
    loser_said = outputs[loser][1]
    assert "another apply is changing this project" in loser_said, loser_said
    key = emulator.store.load("K000")
    wanted = [("renamed", "about 0"), ("key-0", "described")][winner]
    assert (key["name"], key["description"]) == wanted  # the winner's change, and nothing silently reverted
    assert len([r for r in emulator.requests if r.path == UPDATE]) == 1


def test_a_saved_plan_applied_after_another_apply_changed_its_key_is_refused(
    start_emulator: Any, tmp_path: Path
) -> None:
    """One after the other (no lock in the way): the second plan was made before the first's change."""
    emulator = start_emulator(KEYS)
    env = env_for(emulator, tmp_path / "state")
    rename = saved_plan(emulator, tmp_path / "a", [{"id": "K000", "name": "renamed"}], env)
    describe = saved_plan(emulator, tmp_path / "b", [{"id": "K000", "description": "described"}], env)
    assert run_cli(["apply", "--plan", str(rename)], env).code == 0
    late = run_cli(["apply", "--plan", str(describe)], env)
    assert late.code == 1, late.output
    assert "changed since the plan" in late.stderr, late.output
    key = emulator.store.load("K000")
    assert (key["name"], key["description"]) == ("renamed", "about 0")  # nothing silently reverted
    assert len([r for r in emulator.requests if r.path == UPDATE]) == 1


@pytest.mark.slow
def test_a_second_apply_refuses_naming_the_first_or_waits_for_it(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(KEYS)
    gate = threading.Event()

    def held_update(call: Call) -> Answer:
        if isinstance(call.body, dict) and call.body.get("id") == "K000":
            gate.wait(timeout=60)  # the first apply is mid-write until the test says so
        return call.forward()

    emulator.intercept(UPDATE, held_update)
    state = tmp_path / "state"
    env = env_for(emulator, state)
    first = start(["apply", str(write_desired(tmp_path / "a", [{"id": "K000", "name": "renamed"}]))], env)
    try:
        wait_until_locked(state)
        other = write_desired(tmp_path / "b", [{"id": "K001", "description": "described"}])
        searches = len([r for r in emulator.requests if r.path == SEARCH])
        refused = run_cli(["apply", str(other)], env)
        assert refused.code == 1, refused.output
        assert f"another apply is changing this project from this machine (pid {first.pid} on" in refused.stderr
        assert "--wait-lock" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
        assert len([r for r in emulator.requests if r.path == SEARCH]) <= searches + 1  # only the first's own read

        waiter = start(["apply", str(other), "--wait-lock", "60"], env)
        assert waiter.stderr is not None
        assert f"waiting up to 60s for the project's lock (pid {first.pid}" in waiter.stderr.readline()
        assert not emulator.updates_for("K001")  # it waits: nothing read or sent meanwhile
    finally:
        gate.set()
    assert first.wait(timeout=30) == 0
    assert waiter.wait(timeout=30) == 0
    assert emulator.store.load("K000")["name"] == "renamed"
    assert emulator.store.load("K001")["description"] == "described"


def writer_after_the_search(emulator: Any, changes: list[dict[str, Any]]) -> None:
    """Someone edits keys by hand right after the tool's read: the window the re-check guards."""

    def answer(call: Call) -> Answer:
        result = call.forward()
        for change in changes:
            emulator.store.update(change, "merge")
        return result

    emulator.intercept(SEARCH, answer)


@pytest.mark.parametrize("mode", ["--plan", "--recheck"])
def test_a_key_changed_after_the_read_is_not_written(start_emulator: Any, tmp_path: Path, mode: str) -> None:
    emulator = start_emulator(KEYS)
    env = env_for(emulator, tmp_path / "state")
    desired = [{"id": "K000", "name": "renamed"}, {"id": "K001", "name": "renamed-too"}]
    desired.append({"id": "K002", "status": "inactive"})
    if mode == "--plan":
        args = ["apply", "--plan", str(saved_plan(emulator, tmp_path / "d", desired, env))]
    else:
        args = ["apply", str(write_desired(tmp_path / "d", desired)), "--recheck"]
    writer_after_the_search(
        emulator, [{"id": "K000", "description": "by hand"}, {"id": "K002", "description": "by hand too"}]
    )
    report = tmp_path / "r.json"
    result = run_cli([*args, "--report", str(report), "--summary", str(tmp_path / "s.md")], env)
    assert result.code == 1, result.output
    outcomes = {key["id"]: key["outcome"] for key in load_report(report)["keys"]}
    assert outcomes == {"K000": "stale", "K001": "updated", "K002": "stale"}
    assert "K000  [stale]: not written: the key changed since it was read" in result.stdout
    assert "| `K000` | renamed | **stale** |" in (tmp_path / "s.md").read_text()
    assert [r.body["id"] for r in emulator.requests if r.path == UPDATE] == ["K001"]
    assert not [r for r in emulator.requests if "activate" in r.path]
    assert emulator.store.load("K000")["description"] == "by hand"  # not reverted
    assert emulator.store.load("K002")["status"] == "active"


def test_an_update_answered_with_another_key_is_unconfirmed(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(KEYS)

    def renaming_server(call: Call) -> Answer:
        if isinstance(call.body, dict) and call.body.get("id") == "K000":
            return call.forward({**call.body, "name": "the server's idea"})
        return call.forward()

    emulator.intercept(UPDATE, renaming_server)
    desired = write_desired(tmp_path / "d", [{"id": "K000", "name": "renamed"}, {"id": "K001", "name": "fine"}])
    report, summary = tmp_path / "r.json", tmp_path / "s.md"
    result = run_cli(
        ["apply", str(desired), "--report", str(report), "--summary", str(summary)],
        env_for(emulator, tmp_path / "state"),
    )
    assert result.code == 1, result.output
    keys = {key["id"]: key for key in load_report(report)["keys"]}
    assert keys["K000"]["outcome"] == "unconfirmed" and keys["K001"]["outcome"] == "updated"
    assert "answered a key that differs in name" in keys["K000"]["reason"]
    assert "K000  [unconfirmed] after 1 attempt(s): the update was accepted" in result.stdout
    assert "Apply: 1 updated, 1 unconfirmed; 1 key(s) not as desired (exit 1)." in result.stdout
    assert "**unconfirmed**" in summary.read_text()


def test_the_recheck_costs_one_read_per_written_key_and_a_direct_apply_none(
    start_emulator: Any, tmp_path: Path
) -> None:
    keys = [{"id": f"K{i:02d}", "name": f"k{i}"} for i in range(12)]
    emulator = start_emulator(keys)
    env = env_for(emulator, tmp_path / "state")
    desired = [{"id": key["id"], "name": key["name"] + "-v2"} for key in keys[:8]]
    desired += [{"id": key["id"], "name": key["name"]} for key in keys[8:]]
    plan_file = saved_plan(emulator, tmp_path / "d", desired, env)
    before = len(emulator.requests)
    assert run_cli(["apply", "--plan", str(plan_file), "--force"], env).code == 0
    paths = [r.path for r in emulator.requests[before:]]
    assert (paths.count(SEARCH), paths.count("/v1/mgmt/accesskey"), paths.count(UPDATE)) == (1, 8, 8)

    back = write_desired(tmp_path / "e", keys)  # a direct apply: one search, one update per drifted key
    before = len(emulator.requests)
    assert run_cli(["apply", str(back), "--force"], env).code == 0
    keys_paths = [r.path for r in emulator.requests[before:] if "/audit/" not in r.path]  # the trail's own budget
    assert keys_paths == [SEARCH] + [UPDATE] * 8
