"""Faults, throttling, crashes and interruptions: every key accounted for, nothing lost or duplicated."""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from reconcile.emulator import FAULT_KINDS, Answer, Call, error
from tests.conftest import cli_env, load_report, run_cli, write_desired
from tests.support import SEARCH, UPDATE, journal_lines, run_process, start_process
from tests.support import fleet as keys_of


def fleet(count: int) -> list[dict[str, Any]]:
    return keys_of(count, width=4, roleNames=["reader"])


def drift_every_third(keys: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], set[str]]:
    """Desired state where every third key differs (in its name or its roles)."""
    desired, drifted = [], set()
    for index, key in enumerate(keys):
        wanted = {"id": key["id"], "name": key["name"], "roleNames": ["reader"]}
        if index % 3 == 0:
            drifted.add(key["id"])
            if index % 2:
                wanted["name"] += "-renamed"
            else:
                wanted["roleNames"] = ["reader", "writer"]
        desired.append(wanted)
    return desired, drifted


@pytest.mark.slow
@pytest.mark.parametrize("retry_after", [True, False], ids=["retry-after", "no-retry-after"])
def test_chaos_every_drifted_key_converges(start_emulator: Any, tmp_path: Path, retry_after: bool) -> None:
    keys = fleet(510)
    desired, drifted = drift_every_third(keys)
    emulator = start_emulator(
        keys,
        rate_limit=40,  # below the client's default 100/s: the client must discover it
        rate_burst=4,  # the first 8 requests in flight meet 429s even from a client slowed by a loaded machine
        retry_after=retry_after,
        empty_429_body=not retry_after,
        fault_rate=0.10,
        fault_kinds=FAULT_KINDS,  # 500, 502, 503, 504, dropped connection, slower than the timeout
        fault_after_apply=0.5,  # half the failed updates were applied anyway
        slow_seconds=1.5,
        random_seed=7,
    )
    write_desired(tmp_path / "desired", desired)
    report_path = tmp_path / "report.json"
    result = run_process(  # a process: the client must outrun the server's limit (a core and a GIL of its own)
        ["apply", str(tmp_path / "desired"), "--report", str(report_path), "--timeout", "1", "--force"],
        cli_env(emulator),
        timeout=240,
    )
    assert result.code == 0, result.output[-3000:]

    report = load_report(report_path)
    by_id = {k["id"]: k for k in report["keys"]}
    assert len(by_id) == len(keys)
    assert {i for i, k in by_id.items() if k["outcome"] == "updated"} == drifted
    assert all(by_id[i]["outcome"] == "unchanged" and by_id[i]["attempts"] == 0 for i in set(by_id) - drifted)
    attempts = [by_id[i]["attempts"] for i in drifted]
    assert min(attempts) >= 1 and sum(attempts) > len(drifted)  # faults were met and retried
    statuses = report["requests"]["byStatus"]
    assert statuses.get("429", 0) > 0 and statuses.get("transport", 0) > 0
    assert any(statuses.get(code, 0) for code in ("500", "502", "503", "504"))
    # journal: every key the report calls updated, once
    journal = [line for line in journal_lines(tmp_path / "report.json.journal.jsonl") if line["type"] == "key"]
    assert Counter(line["id"] for line in journal) == Counter(drifted)

    # the server saw no update for an in-sync key, and ended exactly as desired
    updated_ids = {r.body["id"] for r in emulator.requests if r.path == UPDATE}
    assert updated_ids == drifted
    state = {k["id"]: k for k in emulator.store.all()}
    for wanted in desired:
        assert state[wanted["id"]]["name"] == wanted["name"]
        assert sorted(state[wanted["id"]]["roleNames"]) == sorted(wanted["roleNames"])

    emulator.config.fault_rate = 0.0
    again = run_cli(["plan", str(tmp_path / "desired")], cli_env(emulator), timeout=120)
    assert again.code == 0, again.output[-2000:]


def test_safety_threshold_refuses_before_any_write(start_emulator: Any, tmp_path: Path) -> None:
    keys = fleet(20)
    emulator = start_emulator(keys)
    desired = write_desired(tmp_path, [{**k, "name": k["name"] + "-x"} if i < 6 else k for i, k in enumerate(keys)])
    env = cli_env(emulator)

    refused = run_cli(["apply", str(desired), "--report", str(tmp_path / "r.json")], env)
    assert refused.code == 3, refused.output
    assert "changes 6 of 20 managed keys, over the limit of 5" in refused.stderr
    assert not [r for r in emulator.requests if r.path == UPDATE]
    assert load_report(tmp_path / "r.json")["summary"]["byOutcome"] == {"unchanged": 14, "update": 6}

    assert run_cli(["apply", str(desired), "--max-changes", "5"], env).code == 3
    assert run_cli(["apply", str(desired), "--max-changes", "30%"], env).code == 0
    assert len([r for r in emulator.requests if r.path == UPDATE]) == 6


def test_forced_apply_and_small_projects_have_no_default_threshold(start_emulator: Any, tmp_path: Path) -> None:
    keys = fleet(10)
    emulator = start_emulator(keys)
    desired = write_desired(tmp_path, [{**k, "name": "all-changed"} for k in keys])
    assert run_cli(["apply", str(desired)], cli_env(emulator)).code == 0  # 10 keys: no default limit


def test_auth_failure_mid_run_stops_everything(start_emulator: Any, tmp_path: Path) -> None:
    keys = fleet(30)
    emulator = start_emulator(keys, latency_ms=20)
    desired = write_desired(tmp_path, [{**k, "name": "new"} for k in keys])
    seen = [0]

    def revoke_after_five_updates(call: Call) -> Answer:
        seen[0] += 1
        if seen[0] > 5:
            return replace(call, headers={**call.headers, "authorization": "Bearer revoked"}).forward()
        return call.forward()

    emulator.intercept(UPDATE, revoke_after_five_updates)
    result = run_cli(
        ["apply", str(desired), "--force", "--concurrency", "2", "--report", str(tmp_path / "r.json")],
        cli_env(emulator),
    )
    assert result.code == 1
    assert "HTTP 401" in result.stderr and "nothing more was sent" in result.stderr
    report = load_report(tmp_path / "r.json")
    outcomes = Counter(k["outcome"] for k in report["keys"])
    assert outcomes["updated"] == 5 and outcomes["failed"] >= 1 and outcomes["interrupted"] >= 20
    assert seen[0] <= 5 + 2  # at most what was in flight when the first 401 came back
    assert all(k["attempts"] == 0 for k in report["keys"] if k["outcome"] == "interrupted")


def test_per_key_failures_do_not_stop_the_others(start_emulator: Any, tmp_path: Path) -> None:
    keys = fleet(12)
    emulator = start_emulator(keys)
    desired = write_desired(tmp_path, [{**k, "name": "renamed"} for k in keys])

    def always_fail_k0003(call: Call) -> Answer:
        key_id = call.body.get("id") if isinstance(call.body, dict) else None
        if key_id == "K0003":
            return call.forward({"id": "K0003", "name": 5})  # a 400, never retried
        if key_id == "K0004":
            return call.forward(fault="503")  # every attempt, and no other request
        return call.forward()

    emulator.intercept(UPDATE, always_fail_k0003)
    result = run_cli(
        ["apply", str(desired), "--force", "--max-attempts", "3", "--report", str(tmp_path / "r.json")],
        cli_env(emulator),
    )
    assert result.code == 1
    keys_out = {k["id"]: k for k in load_report(tmp_path / "r.json")["keys"]}
    assert keys_out["K0003"]["outcome"] == "failed" and keys_out["K0003"]["attempts"] == 1
    assert keys_out["K0003"]["error"]["status"] == 400 and keys_out["K0003"]["error"]["code"] == "E011003"
    assert keys_out["K0004"]["outcome"] == "failed" and keys_out["K0004"]["attempts"] == 3
    assert keys_out["K0004"]["error"]["status"] == 503
    assert sum(k["outcome"] == "updated" for k in keys_out.values()) == 10
    assert "K0004  [failed] after 3 attempt(s): HTTP 503" in result.stdout


def _start_apply(emulator: Any, desired: Path, report: Path, *extra: str) -> subprocess.Popen[str]:
    return start_process(["apply", str(desired), "--force", "--report", str(report), *extra], cli_env(emulator))


def _wait_for_journal(path: Path, keys: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and sum(1 for line in journal_lines(path) if line["type"] == "key") >= keys:
            return
        time.sleep(0.02)
    raise AssertionError(f"journal never reached {keys} keys")


@pytest.mark.slow
def test_sigkill_midway_loses_and_duplicates_nothing(start_emulator: Any, tmp_path: Path) -> None:
    keys = fleet(120)
    emulator = start_emulator(keys, latency_ms=30)
    desired = write_desired(tmp_path / "d", [{**k, "name": k["name"] + "-v2"} for k in keys])
    report = tmp_path / "first.json"
    process = _start_apply(emulator, desired, report, "--concurrency", "4")
    _wait_for_journal(tmp_path / "first.json.journal.jsonl", 20)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    assert not report.exists()  # killed before the end: no report, but the journal...

    journal = [line for line in journal_lines(tmp_path / "first.json.journal.jsonl") if line["type"] == "key"]
    state = {k["id"]: k["name"] for k in emulator.store.all()}
    assert len(journal) >= 20 and all(line["outcome"] == "updated" for line in journal)
    assert all(state[line["id"]].endswith("-v2") for line in journal)  # ...shows every update that completed
    sent_before = Counter(r.body["id"] for r in emulator.requests if r.path == UPDATE)
    assert len(sent_before) < len(keys)

    rerun = run_cli(["apply", str(desired), "--force", "--report", str(tmp_path / "second.json")], cli_env(emulator))
    assert rerun.code == 0, rerun.output[-2000:]
    sent = Counter(r.body["id"] for r in emulator.requests if r.path == UPDATE)
    assert set(sent) == {k["id"] for k in keys}
    assert max(sent.values()) == 1  # no change sent twice: applied keys were in sync on the rerun
    assert all(name.endswith("-v2") for name in (k["name"] for k in emulator.store.all()))


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_stops_sending_and_still_writes_the_report(
    start_emulator: Any, tmp_path: Path, signum: signal.Signals
) -> None:
    keys = fleet(150)
    emulator = start_emulator(keys, latency_ms=30)
    desired = write_desired(tmp_path / "d", [{**k, "name": "v2"} for k in keys])
    report = tmp_path / "r.json"
    process = _start_apply(emulator, desired, report, "--concurrency", "2")
    _wait_for_journal(tmp_path / "r.json.journal.jsonl", 10)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 1, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr

    data = load_report(report)
    assert data["run"]["interrupted"] is True
    outcomes = Counter(k["outcome"] for k in data["keys"])
    assert outcomes["updated"] >= 10 and outcomes["interrupted"] > 0
    assert outcomes["updated"] + outcomes["interrupted"] == len(keys)
    sent = {r.body["id"] for r in emulator.requests if r.path == UPDATE}
    updated = {k["id"] for k in data["keys"] if k["outcome"] == "updated"}
    # the updates in flight were cancelled: the report says they may have been made
    in_flight = {k["id"] for k in data["keys"] if k["outcome"] == "interrupted" and k["attempts"]}
    assert len(in_flight) <= 2
    assert all("interrupted in flight" in k["reason"] for k in data["keys"] if k["id"] in in_flight)
    assert updated <= sent <= updated | in_flight  # nothing was sent that the report does not account for
    time.sleep(0.2)
    assert {r.body["id"] for r in emulator.requests if r.path == UPDATE} == sent  # and nothing after


def test_progress_lines_when_not_a_terminal(start_emulator: Any, tmp_path: Path) -> None:
    keys = fleet(40)
    emulator = start_emulator(keys, latency_ms=20)
    desired = write_desired(tmp_path, [{**k, "name": "v2"} for k in keys])
    result = run_cli(
        ["apply", str(desired), "--force", "--concurrency", "1", "--progress-every", "0.2"], cli_env(emulator)
    )
    assert result.code == 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("progress: ")]
    assert len(lines) >= 2 and "/40 keys" in lines[0] and "ETA" in lines[0]
    quiet = run_cli(["apply", str(desired), "-q"], cli_env(emulator))
    assert quiet.code == 0 and quiet.stdout == "" and quiet.stderr == ""


def test_quiet_still_says_why_a_run_failed(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(fleet(3))
    missing = write_desired(tmp_path / "m", [*fleet(3), {"id": "K9999", "name": "gone"}])
    plan = run_cli(["plan", str(missing), "-q"], cli_env(emulator))
    assert plan.code == 1 and plan.stdout == ""
    assert "error: K9999: missing: not in the project" in plan.stderr

    def refuse_k0001(call: Call) -> Answer:
        if isinstance(call.body, dict) and call.body.get("id") == "K0001":
            return call.forward({"id": "K0001", "name": 5})  # a 400, never retried
        return call.forward()

    emulator.intercept(UPDATE, refuse_k0001)
    renamed = write_desired(tmp_path / "r", [{**key, "name": "renamed"} for key in fleet(3)])
    apply = run_cli(["apply", str(renamed), "-q"], cli_env(emulator))
    assert apply.code == 1 and apply.stdout == ""
    assert "error: K0001: failed: HTTP 400 E011003" in apply.stderr


def failing_search(emulator: Any, failures: int, status: int = 503) -> None:
    """The first `failures` searches answer `status`; the rest are served."""
    seen = [0]

    def answer(call: Call) -> Answer:
        if seen[0] < failures:
            seen[0] += 1
            return error(status, "E011001", "Server error", "busy")
        return call.forward()

    emulator.intercept(SEARCH, answer)


@pytest.mark.slow
def test_retries_show_at_v_with_cause_and_count_and_the_final_error_says_what_ended_them(
    start_emulator: Any, tmp_path: Path
) -> None:
    emulator = start_emulator(fleet(2))
    desired = write_desired(tmp_path, fleet(2))
    failing_search(emulator, 2)
    verbose = run_cli(["plan", str(desired), "-v"], cli_env(emulator))
    assert verbose.code == 0, verbose.output
    assert "search: attempt 1: HTTP 503 E011001: Server error: busy; retrying in" in verbose.stderr
    assert "search: attempt 2: HTTP 503" in verbose.stderr and "(2 of 6 failed attempts allowed)" in verbose.stderr
    failing_search(emulator, 2)
    plain = run_cli(["plan", str(desired)], cli_env(emulator))
    assert plain.code == 0 and "attempt 1" not in plain.stderr

    failing_search(emulator, 99)
    exhausted = run_cli(["plan", str(desired), "--max-attempts", "2"], cli_env(emulator))
    assert exhausted.code == 1
    assert "HTTP 503 E011001: Server error: busy; gave up after 2 attempt(s): --max-attempts 2" in exhausted.stderr


def test_a_request_that_times_out_names_the_timeout(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(fleet(1), fault_rate=1.0, fault_kinds=("slow",), slow_seconds=3)
    desired = write_desired(tmp_path, fleet(1))
    result = run_cli(["plan", str(desired), "--timeout", "0.3", "--max-attempts", "2"], cli_env(emulator))
    assert result.code == 1
    assert "gave up after 2 attempt(s): --max-attempts 2; each attempt times out after 0.3 s (--timeout)" in (
        result.stderr
    )


def test_phase_timings_are_shown_at_v_only(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(fleet(2))
    desired = write_desired(tmp_path, fleet(2))
    plain = run_cli(["plan", str(desired)], cli_env(emulator))
    assert plain.code == 0 and "timings:" not in plain.stderr
    verbose = run_cli(["plan", str(desired), "-v"], cli_env(emulator))
    assert verbose.code == 0 and "timings: load" in verbose.stderr
