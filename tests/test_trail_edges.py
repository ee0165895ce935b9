"""Issue 20's feature attacked from outside: hostile audit records, the saved-plan and rotate paths,
lock identity, config edges. Through the real CLI against the emulator (in-process)."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from reconcile.emulator.answers import Answer
from reconcile.emulator.server import Call, Emulator
from reconcile.errors import ExitCode
from reconcile.job.lock import lock_dir, lock_path
from reconcile.trail.records import PAGE_SIZE
from tests.conftest import cli_env, load_report, run_cli, write_desired
from tests.support.process import start_process
from tests.test_action import run_action_step

AUDIT_SEARCH = "/v1/mgmt/audit/search"
HOSTILE = "\x1b[2K\r::error::pwned\n##[error]x\u202e"


def serve_records(emulator: Emulator, records: list[Any], total: Any = None) -> None:
    def answer(call: Call) -> Any:
        real = call.forward()
        if real.status == 200:
            real.body = {"audits": records, "total": len(records) if total is None else total}
        return real

    emulator.intercept(AUDIT_SEARCH, answer)


def record(key: str, **fields: Any) -> dict[str, Any]:
    base = {"ID": "r1", "action": "AccessKeyModified", "actorId": "U2bob", "occurred": "0", "data": {"id": key}}
    base.update(fields)
    return base


def plan_with(emulator: Emulator, tmp_path: Path) -> tuple[Any, dict[str, Any], str]:
    desired = write_desired(tmp_path / "desired", [{"id": "K1", "name": "new"}]).parent
    report, summary = tmp_path / "r.json", tmp_path / "s.md"
    result = run_cli(["plan", str(desired), "--report", str(report), "--summary", str(summary)], cli_env(emulator))
    assert result.code == 2, result.output
    return result, load_report(report), summary.read_text(encoding="utf-8")


def test_a_huge_string_from_the_trail_is_shown_cut_with_its_length(start_emulator: Any, tmp_path: Path) -> None:
    """A 1 MB actor id (anyone with a management key writes records) was printed, reported and
    summarised whole: a megabyte line in the CI log and the step summary."""
    emulator = start_emulator([{"id": "K1", "name": "old"}])
    now = int(time.time() * 1000)
    huge = "A" * 1_000_000
    event = {"changedKeyIds": ["K1"], "writesFrom": now - 5000, "writesTo": now, "runId": huge, "commit": huge}
    tool = {"ID": "e", "action": "DescopeReconcileApply", "actorId": "descope-reconcile", "occurred": now}
    serve_records(
        emulator, [{**tool, "data": event}, record("K1", actorId=huge, remoteAddress=huge, occurred=now - 10)]
    )
    result, report, summary = plan_with(emulator, tmp_path)
    for written in (result.output, summary, json.dumps(report)):
        assert "A" * 201 not in written and len(written) < 20_000
    change = report["keys"][0]["attribution"]["change"]
    assert change["actorId"].endswith("… (1000000 characters)") and change["run"]["id"].startswith("A" * 200)


def test_hostile_actor_text_never_acts_on_a_terminal_or_ci_log(start_emulator: Any, tmp_path: Path) -> None:
    """Controls, `::error::` and `##[` in an actor id and an address: shown escaped (no defect)."""
    emulator = start_emulator([{"id": "K1", "name": "old"}])
    now = int(time.time() * 1000)
    serve_records(emulator, [record("K1", actorId=HOSTILE, remoteAddress=HOSTILE, occurred=str(now - 10))])
    result, report, summary = plan_with(emulator, tmp_path)
    for written in (result.output, summary):
        assert "\x1b" not in written and "\r" not in written and "\u202e" not in written and "##[" not in written
        assert not any(line.lstrip().startswith("::") for line in written.splitlines())
    assert report["keys"][0]["attribution"]["change"]["actorId"] == HOSTILE


@pytest.mark.parametrize(
    ("occurred", "says"),
    [
        (2_000_000_000_000, "outside the window searched"),  # 2033: stood as the latest change
        ("2800000000000", "outside the window searched"),  # 2058, as a string of digits
        (1_000, "outside the window searched"),  # 1970: older than the 30 days asked for
        (-5, "not a time since 1970"),
        ("abc", "not milliseconds"),
        (None, "not milliseconds"),
        (1.5, "not milliseconds"),
    ],
)
def test_a_record_dated_outside_the_search_is_never_a_change(
    start_emulator: Any, tmp_path: Path, occurred: Any, says: str
) -> None:
    """A record dated in 2058 (or later) stood as the key's latest change, hiding the real one: a
    record the search's window cannot hold makes attribution unavailable, said, exit code unchanged."""
    emulator = start_emulator([{"id": "K1", "name": "old"}])
    now = int(time.time() * 1000)
    serve_records(emulator, [record("K1", occurred=occurred), record("K1", ID="r2", occurred=now - 10)])
    result, report, summary = plan_with(emulator, tmp_path)
    assert (
        report["trail"]["attribution"]["status"] == "unavailable" and says in report["trail"]["attribution"]["reason"]
    )
    assert "attribution unavailable" in result.stdout and "Traceback" not in result.output
    assert "attribution unavailable" in summary


def test_a_report_input_with_a_line_break_never_forges_a_step_output(tmp_path: Path) -> None:
    """The action's run step wrote `report=$REPORT` to $GITHUB_OUTPUT: a report input holding a line
    break added outputs of its own (`exit-code=0` after a failed apply). Refused before the tool runs."""
    tool_bin = tmp_path / "stub"
    tool_bin.mkdir()
    ran = tmp_path / "ran"
    stub = tool_bin / "descope-reconcile"
    stub.write_text(
        f"#!{sys.executable}\nimport sys\nopen({str(ran)!r}, 'w').write('ran')\n"
        "path = sys.argv[sys.argv.index('--report') + 1]\n"
        "open(path, 'w').write('{\"summary\": {\"changes\": 1}}')\nsys.exit(4)\n"
    )
    stub.chmod(0o755)
    (tool_bin / "python").symlink_to(sys.executable)
    for forged in ("r.json\nexit-code=0", "r.json\rexit-code=0"):
        inputs = {"command": "apply", "paths": "desired/", "report": forged}
        run = run_action_step("run", inputs, tmp_path, tmp_path / "runner", tool_bin=tool_bin)
        assert run.code != 0 and "report input" in run.output, run.output
        lines = (tmp_path / "runner" / "github_output").read_text()
        assert "exit-code=0" not in lines and not ran.exists()


def key_file_config(folder: Path) -> None:
    write_desired(folder / "desired", [{"id": "K1", "name": "one"}])
    (folder / "descope-reconcile.yaml").write_text(
        "version: 1\ntargets:\n  dev:\n    projectId: P2dev\n    managementKeyFile: dev.key\n    paths: [desired]\n"
    )


@pytest.mark.parametrize("shape", ["loop", "directory", "mode-0640-two-links"])
def test_a_key_file_that_cannot_be_a_private_key_is_refused_located(tmp_path: Path, shape: str) -> None:
    """A managementKeyFile that is a loop of symbolic links ended `validate` with a traceback
    (pathlib raises RuntimeError for a loop on Python 3.11 and 3.12, not OSError)."""
    key_file_config(tmp_path)
    key = tmp_path / "dev.key"
    if shape == "loop":
        key.symlink_to(tmp_path / "other.key")
        (tmp_path / "other.key").symlink_to(key)
    elif shape == "directory":
        key.mkdir()
    else:
        (tmp_path / "real.key").write_text("K2-secret\n")
        (tmp_path / "real.key").chmod(0o640)
        (tmp_path / "middle.key").symlink_to(tmp_path / "real.key")
        key.symlink_to(tmp_path / "middle.key")
    result = run_cli(["validate"], cli_env(None), cwd=tmp_path)
    assert result.code == ExitCode.FAILURE and "Traceback" not in result.output, result.output
    assert "descope-reconcile.yaml:5:24: error: `managementKeyFile` dev.key" in result.stderr
    assert "[targets.dev.managementKeyFile]" in result.stderr and "K2-secret" not in result.output


def test_no_secret_in_any_byte_the_trail_features_write(start_emulator: Any, tmp_path: Path) -> None:
    """The management key and every cleartext issued (a create, a rotation) are in none of: stdout,
    stderr, the report, the Markdown summary, the apply events sent to the server (no defect)."""
    emulator = start_emulator([{"id": "K1", "name": "one"}])
    sent: list[str] = []

    def keep_the_event(call: Call) -> Any:
        sent.append(json.dumps(call.body))
        return call.forward()

    emulator.intercept("/v1/mgmt/audit/event", keep_the_event)
    desired = write_desired(tmp_path / "desired", [{"id": "K1", "name": "two"}, {"name": "fresh"}]).parent
    env = cli_env(emulator)
    written: list[str] = []
    for n, args in enumerate(
        (["apply", "--audit-tenant", "T0", str(desired)], ["rotate", "--audit-tenant", "T0", "--ids", "K1"])
    ):
        report, summary = tmp_path / f"r{n}.json", tmp_path / f"s{n}.md"
        sinks = ["--secrets-out", str(tmp_path / "secrets.jsonl"), "--report", str(report), "--summary", str(summary)]
        result = run_cli([*args, *sinks], env)
        assert result.code == 0, result.output
        written += [result.stdout, result.stderr, report.read_text(), summary.read_text()]
    assert len(sent) == 2
    issued = [json.loads(line)["cleartext"] for line in (tmp_path / "secrets.jsonl").read_text().splitlines()]
    secrets = [emulator.config.management_key, *issued]
    assert len(issued) == 2 and all(len(secret) > 8 for secret in secrets)
    for text in [*written, *sent]:
        for secret in secrets:
            assert secret not in text and json.dumps(secret)[1:-1] not in text


def test_a_saved_plan_applied_reports_an_overwrite_as_a_direct_apply_does(start_emulator: Any, tmp_path: Path) -> None:
    """`plan --out` + `apply --plan`: U2bob changes the key just after apply's own re-read of it and
    before its write: `overwritten` (exit 4), named in text and report, the event written with the
    write's window, U2bob never recorded as the tool's writer (no defect: the same as direct apply)."""
    emulator = start_emulator([{"id": "K1", "name": "old"}])
    desired = write_desired(tmp_path / "desired", [{"id": "K1", "name": "new"}]).parent
    env = cli_env(emulator)
    assert run_cli(["plan", str(desired), "--out", str(tmp_path / "plan.json")], env).code == 2

    def bob_after_the_reread(call: Call) -> Any:
        answer = call.forward()
        if call.method == "GET":
            body = {"id": "K1", "actorId": "U2bob", "remoteAddress": "203.0.113.7", "changes": {"description": "bob"}}
            assert Emulator.answer(emulator, "POST", "/_emulator/console", "", {}, body).status == 200
            time.sleep(0.8)  # the write goes out past the clock allowance
        return answer

    emulator.intercept("/v1/mgmt/accesskey", bob_after_the_reread)
    apply = run_cli(
        ["apply", "--audit-tenant", "T0", "--plan", str(tmp_path / "plan.json"), "--report", str(tmp_path / "r.json")],
        env,
    )
    assert apply.code == 4, apply.output
    assert "! K1  [overwritten] changed" in apply.stdout and "by U2bob from 203.0.113.7" in apply.stdout
    key = load_report(tmp_path / "r.json")["keys"][0]
    assert key["overwritten"][0]["actorId"] == "U2bob"
    event = [r for r in emulator.audit.all(occurred_as_string=False) if r["action"] == "DescopeReconcileApply"][-1]
    assert [w[0] for w in event["data"]["writes"]["K1"]] == ["update"]
    assert event["data"].get("writerActorId") != "U2bob" and event["data"]["overwritten"] == 1


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("https://127.0.0.1:8443", "https://127.1:8443"),  # the resolver's shorthand
        ("https://127.0.0.1:8443", "https://0x7f.0.0.1:8443"),
        ("https://127.0.0.1:8443", "https://2130706433:8443"),
        ("https://localhost:8443", "https://[::ffff:127.0.0.1]:8443"),  # IPv4 mapped in IPv6
        ("https://10.0.0.1", "https://10.1:443"),
        ("https://[2001:db8::1]", "https://[2001:0DB8:0:0::1]:443"),
    ],
)
def test_one_address_spelled_as_ip_shorthand_is_one_project(tmp_path: Path, one: str, other: str) -> None:
    """The lock and the duplicate-target check took `127.1`, `0x7f.0.0.1`, `::ffff:127.0.0.1` or an
    uncompressed IPv6 for another host than 127.0.0.1: two targets, two locks, one project."""
    write_desired(tmp_path / "desired", [{"id": "K1", "name": "one"}])
    target = "    projectId: P2dev\n    managementKeyEnv: KEY\n    paths: [desired]\n    baseUrl: {}\n"
    config = f"version: 1\ntargets:\n  a:\n{target.format(one)}  b:\n{target.format(other)}"
    (tmp_path / "descope-reconcile.yaml").write_text(config)
    result = run_cli(["validate"], cli_env(None), cwd=tmp_path)
    assert result.code == ExitCode.FAILURE, result.output
    assert "targets `a` (line 3) and `b` name one project" in result.stderr
    assert lock_path(tmp_path, one, "P2dev") == lock_path(tmp_path, other, "P2dev")


def test_a_total_smaller_than_the_records_sent_is_never_taken_for_the_end(start_emulator: Any, tmp_path: Path) -> None:
    """A full page answered with `total: 3` ended the reading as complete: a key whose change was on
    the next page read "no change found in the last 30 days", a silent clean. A total below what the
    answer itself holds is a lie: the reading goes on as if there were none."""
    emulator = start_emulator([{"id": "K1", "name": "old"}])
    now = int(time.time() * 1000)
    filler = [record("KX", ID=f"f{n}", occurred=now - 1000 - n) for n in range(PAGE_SIZE)]
    older = [record("K1", ID="bob", occurred=now - 10 * 60_000)]

    def two_pages(call: Call) -> Any:
        answer = call.forward()
        if answer.status == 200:
            answer.body = {"audits": filler if call.body["page"] == 0 else older, "total": 3}
        return answer

    emulator.intercept(AUDIT_SEARCH, two_pages)
    result, report, _ = plan_with(emulator, tmp_path)
    change = report["keys"][0]["attribution"]["change"]
    assert change is not None and change["actorId"] == "U2bob", report["keys"][0]["attribution"]
    assert "no change found in the last 30 days" not in result.stdout


@pytest.mark.parametrize("path", [AUDIT_SEARCH, "/v1/mgmt/audit/event"])
def test_sigint_while_the_trail_hangs_ends_the_run_and_frees_the_lock(
    start_emulator: Any, tmp_path: Path, path: str
) -> None:
    """SIGINT while an audit search or the apply event hangs: the run ends at once, says so, writes
    its report, and the project's lock is free (no defect). A process: a signal is the point."""
    emulator = start_emulator([{"id": "K1", "name": "old"}])
    arrived, release = threading.Event(), threading.Event()

    def hang(call: Call) -> Any:
        arrived.set()
        release.wait(30)
        return call.forward()

    emulator.intercept(path, hang)
    desired = write_desired(tmp_path / "desired", [{"id": "K1", "name": "new"}]).parent
    env = cli_env(emulator, XDG_STATE_HOME=str(tmp_path / "state"))
    process = start_process(["apply", "--audit-tenant", "T0", str(desired), "--report", str(tmp_path / "r.json")], env)
    try:
        assert arrived.wait(60), "the request never came"
        process.send_signal(signal.SIGINT)
        started = time.monotonic()
        out, err = process.communicate(timeout=30)
        took = time.monotonic() - started
    finally:
        release.set()
        if process.poll() is None:
            process.kill()
    assert took < 5 and process.returncode == ExitCode.FAILURE, (took, out, err)
    assert "Traceback" not in err and "interrupted" in err
    trail = load_report(tmp_path / "r.json")["trail"]
    step = trail["event"] if path != AUDIT_SEARCH else trail["attribution"]
    assert step["status"] in ("failed", "unavailable") and "interrupted" in step["reason"]
    held = lock_path(lock_dir(env), emulator.url, emulator.config.project_id)
    fd = os.open(held, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if the lock were still held
    finally:
        os.close(fd)


@pytest.mark.parametrize(("status", "path"), [(429, AUDIT_SEARCH), (503, AUDIT_SEARCH), (503, "/v1/mgmt/audit/event")])
def test_a_retry_after_past_the_deadline_never_holds_the_run(
    start_emulator: Any, tmp_path: Path, status: int, path: str
) -> None:
    """`Retry-After: 100` on the audit search or the event, with `--key-deadline 3`: the step gives
    up at once, said, and the run ends with its own exit code (no defect)."""
    emulator = start_emulator([{"id": "K1", "name": "old"}])
    busy = {"errorCode": "E130429", "errorDescription": "busy"}
    emulator.intercept(path, lambda call: Answer(status, busy, headers={"Retry-After": "100"}))
    desired = write_desired(tmp_path / "desired", [{"id": "K1", "name": "new"}]).parent
    started = time.monotonic()
    args = ["apply", "--audit-tenant", "T0", str(desired), "--report", str(tmp_path / "r.json"), "--key-deadline", "3"]
    result = run_cli(args, cli_env(emulator), timeout=60)
    assert result.code == ExitCode.OK and time.monotonic() - started < 12, result.output
    trail = load_report(tmp_path / "r.json")["trail"]
    step = trail["event"] if path != AUDIT_SEARCH else trail["attribution"]
    assert step["status"] in ("failed", "unavailable") and str(status) in step["reason"]
