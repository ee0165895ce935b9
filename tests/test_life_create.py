"""Keys identified by name and created, their secrets delivered only to the sinks the operator names."""

from __future__ import annotations

import os
import shlex
import signal
import stat
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconcile.emulator import Answer, Call
from reconcile.schemas.validators import CREATE_SCHEMA, validator
from tests.conftest import cli_env, load_report, run_cli, write_desired
from tests.lifecycle import exchange, journal, secret_lines, writes
from tests.support import start_process

CREATE = "/v1/mgmt/accesskey/create"
PROJECT = [{"id": "K1", "name": "ci-old", "roleNames": ["viewer"]}]
NEW = {
    "name": "ci-new",
    "description": "created from the files",
    "roleNames": ["deployer"],
    "customClaims": {"team": "platform"},
    "expireTime": 4102444800,
    "boundUserId": "U1",
}


def test_create_by_name_then_a_second_apply_creates_nothing(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(PROJECT)
    folder = write_desired(tmp_path / "d", [{"id": "K1", "name": "ci-old"}, NEW]).parent
    secrets, report = tmp_path / "out" / "secrets.jsonl", tmp_path / "report.json"

    planned = run_cli(["plan", str(folder)], cli_env(emulator))
    assert planned.code == 2, planned.output
    assert "+ (new) ci-new" in planned.stdout and "[create]" in planned.stdout
    for shown in ('+ roleNames: ["deployer"]', "+ expireTime: 4102444800", '+ boundUserId: "U1"'):
        assert shown in planned.stdout  # every field it will set

    applied = run_cli(["apply", str(folder), "--report", str(report), "--secrets-out", str(secrets)], cli_env(emulator))
    assert applied.code == 0, applied.output
    [line] = secret_lines(secrets)
    assert set(line) == {"id", "name", "projectId", "cleartext", "at", "runId"} and line["name"] == "ci-new"
    assert line["projectId"] == emulator.config.project_id
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert exchange(emulator, line["cleartext"]) == 200  # the delivered secret works
    created = emulator.store.load(line["id"])
    assert created["boundUserId"] == "U1" and created["expireTime"] == 4102444800
    assert created["roleNames"] == ["deployer"] and created["customClaims"] == {"team": "platform"}
    [body] = [r.body for r in emulator.recorded() if r.path == CREATE]
    assert body["userId"] == "U1" and not list(validator(CREATE_SCHEMA).iter_errors(body))
    record = load_report(report)
    assert record["summary"]["byOutcome"] == {"created": 1, "unchanged": 1}
    assert [k["id"] for k in record["keys"] if k["outcome"] == "created"] == [line["id"]]
    assert line["runId"] == record["run"]["id"] and line["id"] in applied.stdout
    events = [(r["event"], r["id"]) for r in journal(tmp_path / "report.json.journal.jsonl") if r["type"] == "secret"]
    assert events == [("requested", None), ("issued", line["id"]), ("delivered", line["id"])]

    before = len(writes(emulator))
    again = run_cli(["apply", str(folder), "--report", str(report), "--secrets-out", str(secrets)], cli_env(emulator))
    assert again.code == 0, again.output
    assert len(writes(emulator)) == before and len(secret_lines(secrets)) == 1  # the name is that key now
    assert run_cli(["plan", str(folder)], cli_env(emulator)).code == 0


def test_create_only_fields_of_an_existing_key_are_a_warning_not_a_change(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator([{"id": "K1", "name": "ci", "expireTime": 4102444800, "boundUserId": "U1"}])
    folder = write_desired(tmp_path / "d", [{"name": "ci", "expireTime": 4102444801, "boundUserId": "U1"}]).parent
    planned = run_cli(["plan", str(folder), "--report", str(tmp_path / "r.json")], cli_env(emulator))
    assert planned.code == 0, planned.output  # not a change
    assert "warning: expireTime is set only at creation" in planned.stdout and "boundUserId" not in planned.stdout
    [key] = load_report(tmp_path / "r.json")["keys"]
    assert key["outcome"] == "unchanged" and key["id"] == "K1" and len(key["warnings"]) == 1
    assert run_cli(["apply", str(folder)], cli_env(emulator)).code == 0
    assert writes(emulator) == []


def test_ambiguous_name_is_refused_with_no_writes(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator([{"id": "K1", "name": "dup"}, {"id": "K2", "name": "dup"}, {"id": "K3", "name": "x"}])
    folder = write_desired(tmp_path / "d", [{"name": "dup", "description": "d"}, {"id": "K3", "name": "y"}]).parent
    planned = run_cli(["plan", str(folder)], cli_env(emulator))
    assert planned.code == 1 and "[ambiguous]" in planned.stdout and "K1, K2" in planned.stdout
    args = ["apply", str(folder), "--secrets-out", str(tmp_path / "s"), "--report", str(tmp_path / "r.json")]
    applied = run_cli(args, cli_env(emulator))
    assert applied.code == 1 and "name(s) match several keys" in applied.stderr, applied.output
    assert writes(emulator) == [] and not (tmp_path / "s").exists()
    assert load_report(tmp_path / "r.json")["summary"]["byOutcome"] == {"ambiguous": 1, "update": 1}


def test_no_sink_is_refused_before_any_write(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(PROJECT)
    folder = write_desired(tmp_path / "d", [NEW, {"id": "K1", "name": "renamed"}]).parent
    refused = run_cli(["apply", str(folder), "--report", str(tmp_path / "r.json")], cli_env(emulator))
    assert refused.code == 64, refused.output
    assert "--secrets-out FILE" in refused.stderr and "--secrets-command CMD" in refused.stderr
    no_journal = run_cli(["apply", str(folder), "--secrets-out", str(tmp_path / "s")], cli_env(emulator))
    assert no_journal.code == 64 and "--journal FILE" in no_journal.stderr
    assert writes(emulator) == [] and not (tmp_path / "s").exists()


def test_both_sinks_get_the_same_secret_and_the_command_only_on_stdin(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(PROJECT)
    folder = write_desired(tmp_path / "d", [NEW, {**NEW, "name": "ci-two"}]).parent
    received = tmp_path / "received"
    received.mkdir()
    command = (
        f'cat > {received}/"$KEY_ID"; '
        f'printf "%s|%s|%s" "$KEY_NAME" "$*" "${{DESCOPE_MANAGEMENT_KEY:-none}}" > {received}/"$KEY_ID".env'
    )
    args = ["apply", str(folder), "--report", str(tmp_path / "r.json"), "--secrets-out", str(tmp_path / "s.jsonl")]
    result = run_cli([*args, "--secrets-command", command], cli_env(emulator))
    assert result.code == 0, result.output
    lines = secret_lines(tmp_path / "s.jsonl")
    assert sorted(line["name"] for line in lines) == ["ci-new", "ci-two"]
    for line in lines:
        assert (received / line["id"]).read_text() == line["cleartext"]  # stdin, no newline
        assert (received / f"{line['id']}.env").read_text() == f"{line['name']}||none"  # no argv, no management key
        assert exchange(emulator, line["cleartext"]) == 200


def test_a_failing_secrets_command_reports_the_key_created_and_how_to_recover(
    start_emulator: Any, tmp_path: Path
) -> None:
    emulator = start_emulator(PROJECT)
    folder = write_desired(tmp_path / "d", [NEW]).parent
    report, summary, secrets = tmp_path / "r.json", tmp_path / "s.md", tmp_path / "s.jsonl"
    leaky = 'read secret; echo "vault says no to $secret" >&2; exit 3'  # quotes the secret: it must be masked
    args = ["apply", str(folder), "--report", str(report), "--summary", str(summary), "--secrets-out", str(secrets)]
    result = run_cli([*args, "--secrets-command", leaky], cli_env(emulator))
    assert result.code == 1, result.output
    [line] = secret_lines(secrets)  # the file took it; the command did not
    [key] = load_report(report)["keys"]
    assert key["outcome"] == "undelivered" and key["id"] == line["id"]
    assert "exited with 3: vault says no to ***" in key["reason"] and "delivered to --secrets-out only" in key["reason"]
    assert "a partial delivery" in key["reason"] and "rotating would kill it" in key["reason"]
    recover = key["recover"]
    # A partial delivery: the file's copy is handed to the command (CMD, never repeated), not rotated away.
    assert recover.startswith(f"jq -js --arg id {line['id']} ") and f" {secrets} | " in recover
    assert "sh -c CMD" in recover and leaky not in recover and "rotate" not in recover
    assert f">> {report}.journal.jsonl" in recover
    assert recover in result.stdout and recover in summary.read_text()
    for text in (result.stdout, result.stderr, report.read_text(), summary.read_text()):
        assert line["cleartext"] not in text
    assert emulator.store.load(line["id"])["name"] == "ci-new"  # created: a rerun will not create it again

    rerun = run_cli([*args[:6]], cli_env(emulator))  # the journal flags it until it is handed over
    assert rerun.code == 1 and f"Recover: {recover}" in rerun.stderr
    vault = tmp_path / "vault"
    handed = subprocess.run(
        recover.replace("sh -c CMD", f"sh -c {shlex.quote(f'cat > {vault}')}"), check=False, shell=True
    )
    assert handed.returncode == 0 and vault.read_text() == line["cleartext"]
    assert exchange(emulator, line["cleartext"]) == 200  # the working copy was never killed
    assert run_cli([*args[:6]], cli_env(emulator)).code == 0  # settled


@pytest.mark.slow
def test_kill_between_create_and_delivery_is_flagged_by_the_next_run(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(PROJECT)
    folder = write_desired(tmp_path / "d", [NEW]).parent
    report, pid_file = tmp_path / "r.json", tmp_path / "sink.pid"
    slow_sink = f"echo $$ > {pid_file}; sleep 60; cat > {tmp_path}/late"
    process = start_process(
        ["apply", str(folder), "--report", str(report), "--secrets-command", slow_sink], cli_env(emulator)
    )
    trail = report.with_name("r.json.journal.jsonl")
    deadline = time.monotonic() + 60
    while not (pid_file.exists() and pid_file.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # the secret was issued; the sink holds it, not yet delivered
    process.wait(timeout=10)
    os.killpg(int(pid_file.read_text()), signal.SIGKILL)  # the sink runs in its own process group
    process.communicate(timeout=10)  # (its pipes: the sink may have held them too)
    [created] = [k for k in emulator.store.all() if k["name"] == "ci-new"]
    assert [r["event"] for r in journal(trail) if r["type"] == "secret"] == ["requested", "issued"]

    rerun = run_cli(["apply", str(folder), "--report", str(report), "-q"], cli_env(emulator))
    assert rerun.code == 1, rerun.output
    assert f"{created['id']} (ci-new): the run stopped before the secret was delivered" in rerun.stderr
    [flag] = load_report(report)["unsettledSecrets"]
    assert flag["id"] == created["id"] and flag["recover"] in rerun.stderr
    assert [k for k in emulator.store.all() if k["name"] == "ci-new"] == [created]  # not created twice
    assert not (tmp_path / "late").exists()

    out = tmp_path / "recovered.jsonl"
    rotated = run_cli(
        ["rotate", "--ids", created["id"], "--secrets-out", str(out), "--journal", str(trail)], cli_env(emulator)
    )
    assert rotated.code == 0, rotated.output
    assert exchange(emulator, secret_lines(out)[0]["cleartext"]) == 200
    assert run_cli(["apply", str(folder), "--report", str(report)], cli_env(emulator)).code == 0


def test_a_create_whose_answer_is_lost_is_never_sent_twice(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(PROJECT)

    def lose_create_answers(call: Call) -> Answer:
        answer = call.forward()  # made, then the connection drops: the secret is gone with the answer
        answer.drop = True
        return answer

    emulator.intercept(CREATE, lose_create_answers)
    folder = write_desired(tmp_path / "d", [NEW]).parent
    args = ["apply", str(folder), "--report", str(tmp_path / "r.json"), "--secrets-out", str(tmp_path / "s")]
    result = run_cli(args, cli_env(emulator))
    assert result.code == 1, result.output
    assert [r.path for r in emulator.recorded()].count(CREATE) == 1  # never retried blindly
    [created] = [k for k in emulator.store.all() if k["name"] == "ci-new"]
    [key] = load_report(tmp_path / "r.json")["keys"]
    assert key["outcome"] == "undelivered" and key["id"] == created["id"] and "its secret lost" in key["reason"]
    assert key["recover"] in result.stdout
    emulator.intercept(CREATE, None)
    assert run_cli(args, cli_env(emulator)).code == 1  # still flagged, still one key
    assert len([k for k in emulator.store.all() if k["name"] == "ci-new"]) == 1


def test_export_round_trip_with_create_only_fields(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator([{"id": "K1", "name": "ci", "expireTime": 4102444800, "boundUserId": "U1"}])
    out = tmp_path / "keys.yaml"
    assert run_cli(["export", "--out", str(out)], cli_env(emulator)).code == 0
    [key] = yaml.safe_load(out.read_text())["keys"]
    assert key["id"] == "K1" and "expireTime" not in key and "boundUserId" not in key  # comments only
    planned = run_cli(["plan", str(out)], cli_env(emulator))
    assert planned.code == 0 and "warning" not in planned.output, planned.output


def test_a_key_created_inactive_is_deactivated_once_its_secret_is_delivered(
    start_emulator: Any, tmp_path: Path
) -> None:
    emulator = start_emulator(PROJECT)
    folder = write_desired(tmp_path / "d", [{"name": "standby", "status": "inactive"}]).parent
    args = ["apply", str(folder), "--journal", str(tmp_path / "j"), "--secrets-out", str(tmp_path / "s")]
    assert run_cli(args, cli_env(emulator)).code == 0
    [line] = secret_lines(tmp_path / "s")
    assert emulator.store.load(line["id"])["status"] == "inactive" and exchange(emulator, line["cleartext"]) == 401
    assert [r.path.rsplit("/", 1)[-1] for r in writes(emulator)] == ["create", "deactivate"]
    assert run_cli(["plan", str(folder)], cli_env(emulator)).code == 0


@pytest.mark.slow
def test_a_create_cancelled_in_flight_by_a_signal_is_flagged_not_resent(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(PROJECT)
    made = threading.Event()

    def slow_create(call: Call) -> Answer:
        answer = call.forward()  # made at once, answered late: the signal comes while the answer is outstanding
        made.set()
        time.sleep(3)
        return answer

    emulator.intercept(CREATE, slow_create)
    folder = write_desired(tmp_path / "d", [NEW]).parent
    args = ["apply", str(folder), "--report", str(tmp_path / "r.json"), "--secrets-out", str(tmp_path / "s")]
    process = start_process(args, cli_env(emulator))
    assert made.wait(timeout=30)  # the key exists; its answer (and secret) is not back yet
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 1, stderr
    [created] = [k for k in emulator.store.all() if k["name"] == "ci-new"]  # made, its answer never read
    assert (tmp_path / "s").read_text() == ""  # opened before any write; no secret came
    [key] = load_report(tmp_path / "r.json")["keys"]
    assert key["outcome"] == "failed" and "the key may exist" in key["reason"]

    emulator.intercept(CREATE, None)
    rerun = run_cli(args, cli_env(emulator))
    assert rerun.code == 1 and f"{created['id']} (ci-new): the run stopped before the answer came" in rerun.stderr
    assert [k["id"] for k in emulator.store.all() if k["name"] == "ci-new"] == [created["id"]]  # not created twice
    assert CREATE not in [r.path for r in emulator.recorded()]  # (the cancelled one was never answered)
