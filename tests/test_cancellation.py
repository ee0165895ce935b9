"""Stopping a run: signals cancel requests in flight, a second signal exits at once, and no wait
outlasts the key deadline. Each drives the real command line against the real local server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from reconcile.emulator import Answer, Call, Emulator, Window
from tests.conftest import cli_env, load_report, run_cli, write_desired
from tests.support import SEARCH, UPDATE, start_process

KEYS = [{"id": f"K{i:03d}", "name": f"key-{i}", "roleNames": ["reader"]} for i in range(6)]
pytestmark = pytest.mark.slow  # processes and signals, or waits of seconds
HELD_SECONDS = 8.0  # how long the server sits on the held request (the defect: the CLI waited it out)


@dataclass
class Held:
    """The first request to one path, held HELD_SECONDS by the server; every request's arrival,
    timed (the requests recorded are the answered ones: the held one comes later, if at all)."""

    path: str
    arrived: threading.Event = field(default_factory=threading.Event)
    arrivals: list[tuple[float, str]] = field(default_factory=list)

    def __call__(self, call: Call) -> Answer:
        self.arrivals.append((time.monotonic(), call.path))
        if call.path == self.path and not self.arrived.is_set():
            self.arrived.set()
            time.sleep(HELD_SECONDS)
        return call.forward()

    def after(self, moment: float) -> list[str]:
        return [path for at, path in self.arrivals if at >= moment]


def hold(emulator: Emulator, path: str) -> Held:
    """Make the server sit on the first request to `path` for HELD_SECONDS."""
    held = Held(path)
    emulator.intercept("/v1/*", held)
    return held


def start(args: list[str], emulator: Emulator, **extra: str) -> subprocess.Popen[str]:
    return start_process(args, cli_env(emulator, **extra))


def stopped_by(process: subprocess.Popen[str], signum: int, held: Held) -> tuple[int, str, float, float]:
    """Signal once the held request is in flight: exit code, stderr, seconds it took to exit, and
    when the signal was sent."""
    try:
        assert held.arrived.wait(30), "the request never reached the server"
        time.sleep(0.2)  # let the client settle into waiting for the answer
        process.send_signal(signum)
        began = time.monotonic()
        _, stderr = process.communicate(timeout=HELD_SECONDS + 10)
        return process.returncode, stderr, time.monotonic() - began, began
    finally:
        process.kill()


def _plan(tmp: Path, desired: Path) -> list[str]:
    return ["plan", str(desired), "--report", str(tmp / "report.json")]


def _apply(tmp: Path, desired: Path) -> list[str]:
    return ["apply", str(desired), "--force", "--concurrency", "1", "--report", str(tmp / "report.json")]


def _export(tmp: Path, desired: Path) -> list[str]:
    return ["export", "--out", str(tmp / "export.yaml")]


def _audit(tmp: Path, desired: Path) -> list[str]:
    return ["audit", str(desired), "--out", str(tmp / "audit.json")]


COMMANDS: dict[str, tuple[Callable[[Path, Path], list[str]], str]] = {
    "plan": (_plan, SEARCH),
    "apply": (_apply, UPDATE),  # an update in flight, after the search
    "export": (_export, SEARCH),
    "audit": (_audit, SEARCH),
}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_the_first_signal_cancels_the_request_in_flight(
    start_emulator: Any, tmp_path: Path, command: str, signum: int
) -> None:
    emulator = start_emulator(KEYS)
    desired = write_desired(tmp_path / "d", [{**key, "name": key["name"] + "-v2"} for key in KEYS])
    args, held = COMMANDS[command]
    holding = hold(emulator, held)
    code, stderr, took, signalled = stopped_by(start(args(tmp_path, desired), emulator), signum, holding)

    assert code == 1, stderr
    assert took < HELD_SECONDS / 2, f"waited {took:.1f}s for the answer instead of cancelling"
    assert "interrupted" in stderr and "Traceback" not in stderr
    # One account of the requests in flight, and the true one: cancelled, not "finished".
    assert stderr.count("interrupted: ") <= 1 and "finished" not in stderr, stderr
    if command in ("plan", "apply"):
        report = load_report(tmp_path / "report.json")
        assert report["run"]["interrupted"] is True
        outcomes = {key["id"]: key["outcome"] for key in report["keys"]}
        assert set(outcomes.values()) == {"interrupted"}
    if command == "apply":  # the update in flight may have landed: the report says so
        first = next(key for key in report["keys"] if key["attempts"])
        assert "interrupted in flight" in first["reason"] and "may have been made" in first["reason"]
    # The process has exited: every request it sent has arrived. None came after the signal.
    assert holding.after(signalled) == []
    assert [path for _, path in holding.arrivals].count(held) == 1  # the held one, in flight at the signal
    if command == "export":
        assert not (tmp_path / "export.yaml").exists()
    if command == "audit":
        assert not (tmp_path / "audit.json").exists()


def test_the_second_signal_exits_at_once_whatever_the_run_is_stuck_in(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(KEYS)
    desired = write_desired(tmp_path / "d", KEYS)  # in sync: the search is the only request
    stuck = tmp_path / "bin"
    stuck.mkdir()
    (stuck / "git").write_text("#!/bin/sh\nexec sleep 20\n")  # the report's `git rev-parse`: a stuck filesystem
    (stuck / "git").chmod(0o755)
    process = start(["plan", str(desired)], emulator, PATH=f"{stuck}{os.pathsep}{os.environ['PATH']}")
    try:
        deadline = time.monotonic() + 30
        while SEARCH not in [r.path for r in emulator.recorded()] and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # the search is answered; the report's call to git is blocking the event loop now
        process.send_signal(signal.SIGINT)
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(timeout=1)  # the first signal cannot get through a blocked call
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=5)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGINT, stderr
    assert "interrupted again: exiting at once" in stderr
    assert [r.path for r in emulator.recorded()] == [SEARCH]


def test_a_stopped_apply_does_not_wait_for_a_git_that_hangs(start_emulator: Any, tmp_path: Path) -> None:
    """apply asks git beside its writes: after a signal, the run ends at once, its report written
    (naming no commit), without waiting for git (here stuck for 20 s; git_state's own timeout is 10 s)."""
    emulator = start_emulator(KEYS)
    desired = write_desired(tmp_path / "d", [{**key, "name": key["name"] + "-x"} for key in KEYS])
    held = hold(emulator, UPDATE)  # the writes are under way when the signal comes
    stuck = tmp_path / "bin"
    stuck.mkdir()
    (stuck / "git").write_text("#!/bin/sh\nexec sleep 20\n")
    (stuck / "git").chmod(0o755)
    report = tmp_path / "report.json"
    args = ["apply", str(desired), "--force", "--no-attribution", "--no-audit-event", "--report", str(report)]
    process = start(args, emulator, PATH=f"{stuck}{os.pathsep}{os.environ['PATH']}", XDG_STATE_HOME=str(tmp_path))
    try:
        assert held.arrived.wait(30)
        signalled = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
        ended = time.monotonic() - signalled
    finally:
        process.kill()
    assert process.returncode == 1 and "interrupted" in stderr, stderr
    assert ended < 8, f"the run waited {ended:.1f} s for git after the signal"
    written = load_report(report)
    assert written["run"]["interrupted"] is True and written.get("git") is None


def test_a_retry_after_past_the_key_deadline_fails_the_key_at_once(start_emulator: Any, tmp_path: Path) -> None:
    # One request per 120 s: the search passes, the update is told to wait 120 s.
    emulator = start_emulator(KEYS[:1], rate_window=Window(1, 120.0, 120.0))
    desired = write_desired(tmp_path / "d", [{**KEYS[0], "name": "v2"}])
    began = time.monotonic()
    result = run_cli(
        ["apply", str(desired), "--key-deadline", "5", "--report", str(tmp_path / "r.json")],
        cli_env(emulator),
        timeout=60,
    )
    assert time.monotonic() - began < 15
    assert result.code == 1, result.output
    reason = "the server asked to wait 120 s, past the key deadline of 5 s"
    assert reason in result.stderr  # said even though -q was not needed to hide anything
    key = load_report(tmp_path / "r.json")["keys"][0]
    assert key["outcome"] == "failed" and reason in key["error"]["message"] and key["error"]["status"] == 429


def test_a_retry_after_past_the_deadline_fails_a_read_at_once(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(KEYS[:1], rate_window=Window(1, 120.0, 120.0))
    desired = write_desired(tmp_path / "d", KEYS[:1])
    assert run_cli(["plan", str(desired)], cli_env(emulator)).code == 0  # uses the window's one request
    began = time.monotonic()
    result = run_cli(["plan", str(desired), "--key-deadline", "5", "-q"], cli_env(emulator), timeout=60)
    assert time.monotonic() - began < 15
    assert result.code == 1 and result.stdout == ""
    assert "the server asked to wait 120 s, past the key deadline of 5 s" in result.stderr


def test_a_signal_while_a_big_file_is_read_on_two_threads_ends_the_run_cleanly(tmp_path: Path) -> None:
    """A file over the threshold is read by yaml-rs while another thread scans its text: a signal
    then ends the run as at any other moment (exit 1, "interrupted", no traceback), and no thread
    holds the process open. (A run the signal came too late for is valid; one of them is stopped.)"""
    from reconcile.output.export import render_export  # noqa: PLC0415

    keys = [{"id": f"K2{i:08d}x", "name": f"service-{i}", "permittedIps": ["10.0.0.1"]} for i in range(40_000)]
    path = tmp_path / "keys.yaml"
    path.write_text(render_export(keys, source="a test"), encoding="utf-8")
    ends = []
    for delay in (0.2, 0.4):
        process = start_process(["validate", str(path)], dict(os.environ))
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
        assert "Traceback" not in stdout + stderr
        ends.append((process.returncode, stderr))
    assert set(ends) <= {(1, "interrupted\n"), (0, "1 file(s), 40000 key(s): valid\n")}, ends
    assert (1, "interrupted\n") in ends, ends


@pytest.mark.parametrize(
    "interrupt",
    [
        # while the command's own modules load (build_parser imports them): in run_command
        "import sys, reconcile.cli\ndef boom(*a, **k): raise KeyboardInterrupt\n"
        "sys.modules['reconcile.cli.main'].run_command = boom\n",
        # while the command line's modules load, in the entry point (the console script's and -m's)
        "import builtins\nreal = builtins.__import__\n"
        "def boom(name, *a, **k):\n    if name == 'reconcile.cli.main': raise KeyboardInterrupt\n"
        "    return real(name, *a, **k)\nbuiltins.__import__ = boom\n",
    ],
)
def test_a_ctrl_c_while_the_command_line_loads_is_an_interrupted_run(interrupt: str) -> None:
    """Before the run's own handling exists, a Ctrl-C still ends the process as an interrupted run
    does: "interrupted", exit 1, no traceback."""
    run = "import sys\nsys.argv = ['descope-reconcile', 'validate']\nimport reconcile.__main__ as e\ne.main()\n"
    probe = interrupt + run
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False, timeout=60)
    assert (done.returncode, done.stderr) == (1, "interrupted\n"), done
