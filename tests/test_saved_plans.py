"""Reviewed plans keep their promises, through the real CLI: the safety threshold decides as `apply`
would, a plan with keys in error is refused, and every summary tells the truth."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from reconcile.emulator import Answer, Call
from tests.conftest import cli_env, load_report, run_cli, write_desired
from tests.support import UPDATE, fleet, start_process


def renaming(keys: list[dict[str, Any]], changes: int) -> list[dict[str, Any]]:
    return [{**key, "name": key["name"] + "-new"} if i < changes else key for i, key in enumerate(keys)]


# (managed keys, keys changed, --max-changes or None) → apply's exit code: 0 applied, 3 refused.
SAFETY_CASES = [
    (100, 11, None, 0),  # 11% of 100: the saved path took 11 changes for 11 managed keys and refused
    (12, 10, None, 3),  # 10 of 12: the saved path saw 10 "managed" keys, under the default's minimum
    (12, 3, None, 0),
    (12, 4, None, 3),
    (10, 10, None, 0),  # 10 keys or fewer: no default threshold
    (20, 5, "4", 3),
    (20, 5, "25%", 0),
    (20, 6, "25%", 3),
]


@pytest.mark.parametrize(("managed", "changes", "limit", "expected"), SAFETY_CASES)
def test_apply_plan_decides_the_safety_threshold_exactly_as_apply(
    start_emulator: Any, tmp_path: Path, managed: int, changes: int, limit: str | None, expected: int
) -> None:
    keys = fleet(managed)
    desired = write_desired(tmp_path / "d", renaming(keys, changes)).parent
    extra = ["--max-changes", limit] if limit else []

    direct = start_emulator(keys)
    applied = run_cli(["apply", str(desired), *extra], cli_env(direct))
    assert applied.code == expected, applied.output

    reviewed = start_emulator(keys)
    plan_file, summary, plan_report = tmp_path / "plan.json", tmp_path / "plan.md", tmp_path / "p.json"
    outputs = ["--out", str(plan_file), "--summary", str(summary), "--report", str(plan_report)]
    planned = run_cli(["plan", str(desired), *outputs, *extra], cli_env(reviewed))
    assert planned.code == 2, planned.output
    warned = "Warning: apply would refuse this plan (exit 3)" in planned.stdout
    assert warned == (expected == 3), planned.stdout
    assert ("`apply` would refuse this plan" in summary.read_text()) == (expected == 3)
    assert load_report(plan_report)["safety"]["exceeded"] == (expected == 3)

    report = tmp_path / "r.json"
    from_plan = run_cli(["apply", "--plan", str(plan_file), "--report", str(report), *extra], cli_env(reviewed))
    assert from_plan.code == expected, from_plan.output
    safety = load_report(report)["safety"]
    assert (safety["changes"], safety["managed"], safety["exceeded"]) == (changes, managed, expected == 3)
    sent = [r for r in reviewed.requests if r.path == UPDATE]
    assert len(sent) == (changes if expected == 0 else 0)


def test_a_plan_with_keys_in_error_is_saved_and_refused_before_any_request(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(fleet(3))
    desired = write_desired(tmp_path / "d", [{"id": "K000", "name": "renamed"}, {"id": "K7", "name": "ghost"}]).parent
    plan_file = tmp_path / "plan.json"
    planned = run_cli(["plan", str(desired), "--out", str(plan_file)], cli_env(emulator))
    assert planned.code == 1, planned.output
    assert "`apply --plan` will refuse it" in planned.stderr
    assert json.loads(plan_file.read_text())["errors"][0]["id"] == "K7"  # the reviewable file is still written

    before = len(emulator.requests)
    refused = run_cli(["apply", "--plan", str(plan_file), "--report", str(tmp_path / "r.json")], cli_env(emulator))
    assert refused.code == 1, refused.output
    assert "the plan has 1 key(s) in error: K7 (missing)" in refused.stderr
    assert len(emulator.requests) == before  # refused offline: not even a read
    assert emulator.store.load("K000")["name"] == "key-0"


def test_apply_plan_counts_unmanaged_and_managed_keys_and_records_the_plan(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(fleet(6))
    desired = write_desired(tmp_path / "d", [{"id": "K000", "name": "renamed"}, {"id": "K001", "name": "key-1"}]).parent
    plan_file = tmp_path / "plan.json"
    assert run_cli(["plan", str(desired), "--out", str(plan_file)], cli_env(emulator)).code == 2
    report, summary = tmp_path / "r.json", tmp_path / "s.md"
    result = run_cli(
        ["apply", "--plan", str(plan_file), "--report", str(report), "--summary", str(summary)], cli_env(emulator)
    )
    assert result.code == 0, result.output
    assert "Plan: 1 update, 1 unchanged when planned; 4 unmanaged key(s) in the project." in result.stdout
    data = load_report(report)
    assert data["summary"]["unmanaged"] == 4 and data["summary"]["keys"] == 2
    assert [key["id"] for key in data["unmanaged"]] == ["K002", "K003", "K004", "K005"]
    saved = json.loads(plan_file.read_text())
    assert data["savedPlan"]["checksum"] == saved["checksum"]
    assert data["savedPlan"]["createdAt"] == saved["createdAt"] and 0 <= data["savedPlan"]["ageSeconds"] < 60
    text = summary.read_text()
    assert "| unmanaged (not in any file) | 4 |" in text and f"`{saved['checksum'][:12]}`" in text


def test_the_last_line_of_an_apply_says_why_it_fails(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(fleet(2))
    desired = write_desired(tmp_path / "d", [{"id": "K000", "name": "renamed"}, {"id": "K7", "name": "ghost"}]).parent
    summary = tmp_path / "s.md"
    result = run_cli(["apply", str(desired), "--summary", str(summary)], cli_env(emulator))
    assert result.code == 1
    last = result.stdout.strip().splitlines()[-1]
    assert last == "Apply: 1 updated, 1 missing; 1 key(s) not as desired (exit 1).", result.stdout
    assert "! K7  [missing]: not in the project" in result.stdout
    assert "**1 key(s) not as desired**" in summary.read_text()

    only_errors = write_desired(tmp_path / "e", [{"id": "K7", "name": "ghost"}]).parent
    nothing_sent = run_cli(["apply", str(only_errors)], cli_env(emulator))
    assert nothing_sent.code == 1
    assert nothing_sent.stdout.strip().splitlines()[-1] == "Apply: 1 missing; 1 key(s) not as desired (exit 1)."


def _wait_for(condition: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.slow
def test_interrupted_keys_say_what_was_sent(start_emulator: Any, tmp_path: Path) -> None:
    """K000's update fails (503) and is being retried; K001's status change was made, its update not
    sent: when the run is interrupted, neither may be reported as simply "not sent"."""
    emulator = start_emulator(fleet(2))

    def failing_k000(call: Call) -> Answer:
        if isinstance(call.body, dict) and call.body.get("id") == "K000":
            return call.forward(fault="503")
        return call.forward()

    emulator.intercept(UPDATE, failing_k000)
    desired = write_desired(
        tmp_path / "d", [{"id": "K000", "name": "v2"}, {"id": "K001", "name": "v2", "status": "inactive"}]
    ).parent
    report = tmp_path / "r.json"
    process = start_process(["apply", str(desired), "--concurrency", "1", "--report", str(report)], cli_env(emulator))
    _wait_for(lambda: len(emulator.updates_for("K000")) == 1)
    time.sleep(0.15)  # K000 is now waiting out its backoff (0.5 s and more) before its second attempt
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 1, stderr
    keys = {key["id"]: key for key in load_report(report)["keys"]}
    assert keys["K000"]["outcome"] == "interrupted" and keys["K000"]["attempts"] == 1
    assert "not sent" not in keys["K000"]["reason"] and "the last of 1 attempt(s) failed" in keys["K000"]["reason"]
    assert keys["K001"]["outcome"] == "interrupted" and keys["K001"]["attempts"] == 1
    assert keys["K001"]["reason"].startswith("status set inactive, but the update was not sent")
    assert emulator.store.load("K001")["status"] == "inactive"  # as the report says
    assert "K000  [interrupted] after 1 attempt(s): the run stopped while retrying" in stdout


@pytest.mark.parametrize(
    "damage",
    [
        {"changes": "abc"},
        {"changes": [{"id": "K000", "fingerprint": "f"}]},
        {"managed": [1, 2]},
        {"desired": {"checksum": "x", "files": [7]}},
    ],
)
def test_a_plan_of_another_shape_with_a_valid_checksum_is_refused_before_any_request(
    start_emulator: Any, tmp_path: Path, damage: dict[str, Any]
) -> None:
    """The checksum proves a file unchanged, not that this tool made it (a handmade plan, another
    version's): before, a part read after the search ended the run in a traceback."""
    from reconcile.plan.diff import digest  # noqa: PLC0415 (to re-seal the damaged plan)

    emulator = start_emulator(fleet(3))
    plan_file = tmp_path / "plan.json"
    desired = write_desired(tmp_path / "d", [{"id": "K000", "name": "renamed"}]).parent
    assert run_cli(["plan", str(desired), "--out", str(plan_file)], cli_env(emulator)).code == 2
    document = json.loads(plan_file.read_text())
    del document["checksum"]
    document.update(damage)
    plan_file.write_text(json.dumps({**document, "checksum": digest(document)}))
    before = len(emulator.requests)
    refused = run_cli(["apply", "--plan", str(plan_file)], cli_env(emulator))
    assert refused.code == 1 and refused.stderr == f"error: {plan_file} is not a complete saved plan\n", refused.output
    assert len(emulator.requests) == before and emulator.store.load("K000")["name"] == "key-0"
