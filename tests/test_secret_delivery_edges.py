"""Secret delivery attacked as a hostile operator would: a secrets command that echoes what it was
given in encodings no mask list names, one that needs a variable it was not handed or dies of a
signal, and a secrets file in a folder someone else can change; through the real CLI against the
emulator."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import resource
import shlex
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from reconcile.emulator import Answer, Call
from tests.conftest import load_report, write_desired
from tests.support import SEARCH, cli_env, run_cli, run_process, start_process
from tests.test_secret_delivery import NEW, PROJECT, _limited, apply, outputs


def _forms(value: str) -> list[str]:
    """`value` in every encoding a tool's trace may print it in."""
    raw = value.encode()
    forms = [value, raw.hex(), raw.hex().upper(), "".join(f"\\u{ord(c):04x}" for c in value)]
    forms += ["".join(f"%{b:02x}" for b in raw), "".join(f"\\x{b:02x}" for b in raw)]
    for shift in range(3):
        encoded = base64.b64encode(bytes(shift) + raw).decode()
        fragment = encoded[-(-8 * shift // 6) : 8 * (shift + len(raw)) // 6]
        forms += [fragment, fragment.replace("+", "-").replace("/", "_")]
    return forms


def test_a_secret_echoed_in_an_encoding_no_mask_names_is_withheld(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(PROJECT)
    management = emulator.config.management_key
    # xxd -p wraps hex at 60 columns, base64 wraps at 76, od spaces bytes, a NUL and invalid UTF-8 in between
    command = (
        f'read -r s; printf "%s" {shlex.quote(management)} | od -An -v -tx1 -w4096 >&2; '
        'printf "%s" "$s" | od -An -v -tx1 -w4096 | tr -d " \\n" >&2; '
        "printf '\\0\\377 partial' >&2; exit 7"
    )
    out = tmp_path / "s.jsonl"
    args = ("--summary", str(tmp_path / "s.md"), "--secrets-out", str(out), "--secrets-command", command)
    result = apply(emulator, tmp_path, *args)
    assert result.code == 1, result.output
    cleartext = json.loads(out.read_text())["cleartext"]
    everything = outputs(tmp_path, result)
    assert "exited with 7" in everything
    compact = "".join(everything.split())
    for form in [*_forms(cleartext), *_forms(management)]:
        assert form not in compact, form
    assert "withheld" in everything


def test_a_command_that_fails_is_told_how_to_hand_it_a_variable(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(PROJECT)
    command = 'cat > /dev/null; test -n "$VAULT_TOKEN" || { echo "VAULT_TOKEN: unset" >&2; exit 3; }'
    folder = tmp_path / "d"
    write_desired(folder, [NEW])
    argv = ["apply", str(folder), "--report", str(tmp_path / "r.json"), "--secrets-command", command]
    result = run_cli(argv, cli_env(emulator, VAULT_TOKEN="t0ken"))
    assert result.code == 1, result.output
    [key] = load_report(tmp_path / "r.json")["keys"]
    assert "exited with 3" in key["reason"] and "--secrets-command-env" in key["reason"], key["reason"]
    assert "t0ken" not in result.output

    killed = apply(emulator, tmp_path, "--secrets-command", "kill -9 $$", keys=[{"name": "ci-two"}])
    assert killed.code == 1 and "killed by signal SIGKILL" in killed.output, killed.output


@pytest.mark.parametrize("shape", ["world-writable", "symlink"])
def test_a_secrets_file_in_a_folder_others_can_change_is_refused(
    start_emulator: Any, tmp_path: Path, shape: str
) -> None:
    emulator = start_emulator(PROJECT)
    real = tmp_path / "real"
    real.mkdir()
    folder = real
    if shape == "world-writable":
        real.chmod(0o777)  # another user can rename our file away and put theirs in its place
    else:
        folder = tmp_path / "link"
        folder.symlink_to(real)  # whoever controls the link chooses where secrets go
    target = folder / "s.jsonl"
    refused = apply(emulator, tmp_path, "--secrets-out", str(target))
    assert refused.code != 0, refused.output
    assert f"--secrets-out {target}" in refused.stderr and str(folder) in refused.stderr, refused.output
    assert emulator.recorded() == []  # before the first request
    assert not (real / "s.jsonl").exists()


@pytest.mark.slow
def test_a_stop_signal_while_the_sink_holds_the_secret_ends_the_run_promptly_and_flags_it(
    start_emulator: Any, tmp_path: Path
) -> None:
    emulator = start_emulator(PROJECT)
    folder = write_desired(tmp_path / "d", [NEW]).parent
    report, pid_file = tmp_path / "r.json", tmp_path / "sink.pid"
    token = "inline-token-0451"
    hanging = f"cat > /dev/null; echo $$ > {pid_file}; sleep 60 # {token}"  # read it, then hangs storing it
    process = start_process(
        ["apply", str(folder), "--report", str(report), "--secrets-command", hanging], cli_env(emulator), cwd=tmp_path
    )
    deadline = time.monotonic() + 60
    while not (pid_file.exists() and pid_file.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        stdout, stderr = process.communicate(timeout=40)
        took = time.monotonic() - started
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)
    assert took < 15, (took, stderr)  # not the sink's 60 s, nor the 120 s timeout: CI kills 10 s after cancelling
    assert process.returncode != 0
    [created] = [k for k in emulator.store.all() if k["name"] == "ci-new"]
    [key] = load_report(report)["keys"]
    assert key["outcome"] == "undelivered" and key["id"] == created["id"], key
    assert key["recover"].startswith(f"descope-reconcile rotate --ids {created['id']} --secrets-command CMD")
    assert token not in stdout + stderr + report.read_text()
    assert str(tmp_path) in key["recover"]  # absolute paths (the report beside the journal)

    rerun = run_cli(["apply", str(folder), "--report", str(report), "-q"], cli_env(emulator))
    assert rerun.code == 1 and created["id"] in rerun.stderr, rerun.output
    assert [k for k in emulator.store.all() if k["name"] == "ci-new"] == [created]  # never created twice


def test_part_of_a_secret_echoed_by_the_command_is_withheld(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(PROJECT)
    # a partial line: the first 20 characters of the secret, cut where a buffer ended, no newline
    out = tmp_path / "s.jsonl"
    command = "read -r s; printf 'stored: %.20s' \"$s\" >&2; exit 5"
    result = apply(
        emulator, tmp_path, "--summary", str(tmp_path / "s.md"), "--secrets-out", str(out), "--secrets-command", command
    )
    assert result.code == 1, result.output
    cleartext = json.loads(out.read_text())["cleartext"]
    everything = outputs(tmp_path, result)
    assert "exited with 5" in everything and cleartext[:16] not in everything and "withheld" in everything


@pytest.mark.parametrize(
    ("command", "said"),
    [
        ("no-such-vault-cli put", "no-such-vault-cli is not found in PATH="),
        ("{noexec} --store", "noexec is not an executable file"),
        ("cat > 'unclosed", "the shell cannot parse it"),
    ],
)
def test_a_secrets_command_that_cannot_run_is_refused_before_any_write(
    start_emulator: Any, tmp_path: Path, command: str, said: str
) -> None:
    emulator = start_emulator(PROJECT)
    noexec = tmp_path / "noexec"
    noexec.write_text("#!/bin/sh\ncat > /dev/null\n")  # mode 0644: 126 at run time
    result = apply(emulator, tmp_path, "--secrets-command", command.format(noexec=noexec))
    assert result.code == 64 and said in result.stderr and "nothing was sent" in result.stderr, result.output
    assert not [k for k in emulator.store.all() if k["name"] == "ci-new"]  # no key made whose secret goes nowhere


def test_a_full_disk_under_the_secrets_file_loses_no_secret_silently(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(PROJECT)
    out = tmp_path / "s.jsonl"
    out.write_text("x" * 200_000 + "\n")  # the file is at the limit; the report and journal are far below it
    folder = write_desired(tmp_path / "d", [{"name": "ci-aaa"}, {"name": "ci-bbb"}]).parent
    argv = ["apply", str(folder), "--report", str(tmp_path / "r.json"), "--secrets-out", str(out)]
    done = run_process(argv, cli_env(emulator), preexec_fn=_limited(200_010), timeout=60)
    assert done.code == 1, done.stderr
    assert out.read_text() == "x" * 200_000 + "\n"  # no line cut short left behind
    keys = {key["name"]: key for key in load_report(tmp_path / "r.json")["keys"]}
    created = [k for k in emulator.store.all() if k["name"] in ("ci-aaa", "ci-bbb")]
    assert len(created) == 1  # the second secret is not issued into a sink that cannot take it
    [made] = [key for key in keys.values() if key["outcome"] == "undelivered"]
    assert "File too large" in made["reason"] and made["recover"] in done.stdout + done.stderr
    assert str(out) in made["reason"]


def test_core_dumps_are_off_once_the_management_key_is_held(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(PROJECT)
    hard = resource.getrlimit(resource.RLIMIT_CORE)[1]
    if hard == 0:
        pytest.skip("core dumps are off for every process here")
    seen: list[str] = []

    def look_at_the_client(call: Call) -> Answer:  # while the run holds the key, no secret issued yet
        seen.append(Path(f"/proc/{process.pid}/limits").read_text())
        return call.forward()

    emulator.intercept(SEARCH, look_at_the_client)
    folder = write_desired(tmp_path / "d", [NEW]).parent
    process = start_process(
        ["plan", str(folder)],
        cli_env(emulator),
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_CORE, (hard, hard)),
    )
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2, stderr  # changes to make
    [limits] = seen
    [core] = [line for line in limits.splitlines() if line.startswith("Max core file size")]
    assert core.split()[4] == "0", core  # the soft limit: the one the kernel applies
