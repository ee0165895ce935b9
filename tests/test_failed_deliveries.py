"""A secret whose delivery failed: the secrets file stays readable line by line (a full disk, a crash
mid-line), a secrets command that hangs is cut off, and a create that lands after its answer was lost
is flagged, never taken as settled."""

from __future__ import annotations

import json
import resource
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from reconcile.client.redact import scrub
from reconcile.emulator import Answer, Call
from reconcile.secrets.secret import Secret
from reconcile.secrets.sinks import DeliveryFailed, Issued, SecretsCommand
from tests.conftest import cli_env, load_report, run_cli, write_desired
from tests.lifecycle import exchange, secret_lines
from tests.support import CREATE, run_process

LIMIT = 8192  # bytes a process may write to one file (RLIMIT_FSIZE): a disk that fills up mid-line


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


@pytest.mark.slow
def test_a_secrets_file_that_fills_up_mid_line_keeps_every_later_line_whole(
    start_emulator: Any, tmp_path: Path
) -> None:
    emulator = start_emulator([])
    folder = write_desired(tmp_path / "d", [{"name": "full-1"}]).parent
    secrets, report = tmp_path / "secrets.jsonl", tmp_path / "report.json"
    padding = json.dumps({"pad": "x" * (LIMIT - 150)}) + "\n"  # room left for part of one line only
    secrets.write_text(padding, encoding="utf-8")
    secrets.chmod(0o600)
    args = ["apply", str(folder), "--report", str(report), "--secrets-out", str(secrets)]
    full = run_process(args, cli_env(emulator), preexec_fn=_limited)  # the limit is the process's
    assert full.code == 1, full.output
    [key] = [k for k in load_report(report)["keys"] if k["outcome"] == "undelivered"]
    assert secrets.read_text(encoding="utf-8") == padding  # no partial line (nor part of a cleartext) left behind

    # Space again: the recovery command's line is whole and parses, like every other line.
    recovered = run_cli(
        ["rotate", "--ids", key["id"], "--secrets-out", str(secrets), "--journal", str(report) + ".journal.jsonl"],
        cli_env(emulator),
    )
    assert recovered.code == 0, recovered.output
    lines = secret_lines(secrets)
    assert lines[0] == json.loads(padding) and lines[-1]["id"] == key["id"]
    assert exchange(emulator, lines[-1]["cleartext"]) == 200


@pytest.mark.slow
def test_a_create_that_lands_after_the_name_was_looked_for_is_flagged_by_the_next_run(
    start_emulator: Any, tmp_path: Path
) -> None:
    """The answer is lost (a timeout), the name is not there yet, and the server makes the key later
    (it was queued): the next run must not take the key as settled, its secret is with nobody."""
    emulator = start_emulator([])
    landed = threading.Event()

    def late(call: Call) -> Answer:
        time.sleep(2.5)  # past the client's --timeout 1 and its look for the name
        try:
            return call.forward()
        finally:
            landed.set()

    emulator.intercept(CREATE, late)
    folder = write_desired(tmp_path / "d", [{"name": "late-1"}]).parent
    report = tmp_path / "report.json"
    args = ["apply", str(folder), "--report", str(report), "--secrets-out", str(tmp_path / "s.jsonl")]
    first = run_cli([*args, "--timeout", "1"], cli_env(emulator))
    assert first.code == 1, first.output
    assert landed.wait(10)
    emulator.intercept(CREATE, None)
    [made] = [k for k in emulator.store.search({}) if k["name"] == "late-1"]

    again = run_cli(args, cli_env(emulator))
    assert again.code == 1, again.output  # not a silent "unchanged"
    assert f"rotate --ids {made['id']}" in again.output
    assert [u["id"] for u in load_report(report)["unsettledSecrets"]] == [made["id"]]


def test_the_secrets_command_timeout_holds_even_when_a_detached_child_keeps_its_stderr_open() -> None:
    """The process group is killed at the timeout; a descendant in another session (a daemon it
    started) still holding the stderr pipe must not keep the run waiting for it."""
    issued = Issued("K1", "ci", Secret("the-cleartext"), "r1", "2026-01-01T00:00:00Z")
    command = SecretsCommand("cat > /dev/null; setsid sleep 20 & sleep 30", "P1", scrub=scrub, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(DeliveryFailed, match=r"did not finish in 0\.5 s"):
        command.deliver(issued)
    assert time.monotonic() - started < 10


def test_a_secrets_file_left_mid_line_by_a_crash_gets_the_next_secret_on_a_line_of_its_own(
    start_emulator: Any, tmp_path: Path
) -> None:
    emulator = start_emulator([])
    folder = write_desired(tmp_path / "d", [{"name": "after-crash"}]).parent
    secrets = tmp_path / "secrets.jsonl"
    secrets.write_text('{"id": "K2old", "cleartext": "cut sh', encoding="utf-8")  # a power loss mid-write
    args = ["apply", str(folder), "--report", str(tmp_path / "r.json"), "--secrets-out", str(secrets)]
    applied = run_cli(args, cli_env(emulator))
    assert applied.code == 0, applied.output
    last = json.loads(secrets.read_text(encoding="utf-8").splitlines()[-1])
    assert last["name"] == "after-crash" and exchange(emulator, last["cleartext"]) == 200
