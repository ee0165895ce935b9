"""Secret delivery that fails safe: what the secrets command is given and when it counts as delivered,
what of its standard error is shown, which secrets file is accepted, and the journal that says what
a run issued (torn lines, full disks, other projects), through the real CLI against the emulator."""

from __future__ import annotations

import base64
import json
import os
import resource
import shlex
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconcile.emulator import Emulator
from reconcile.output.recovery import Recovery
from tests.conftest import CliResult, cli_env, load_report, run_cli, write_desired
from tests.lifecycle import exchange, journal, secret_lines, writes
from tests.test_targets import DEV_KEY, PROD_KEY, Projects

PROJECT = [{"id": "K1", "name": "ci-old"}]
NEW = {"name": "ci-new", "roleNames": ["deployer"]}
BASICS = {"PATH", "HOME", "TMPDIR", "LANG", "LANGUAGE", "TZ", "PWD", "SHLVL", "_"}  # sh adds PWD, SHLVL, _


def apply(emulator: Emulator, tmp_path: Path, *extra: str, keys: Sequence[dict[str, Any]] = (NEW,)) -> CliResult:
    folder = write_desired(tmp_path / "d", list(keys)).parent
    args = ["apply", str(folder), "--report", str(tmp_path / "r.json"), *extra]
    return run_cli(args, cli_env(emulator))


def outputs(tmp_path: Path, result: CliResult) -> str:
    """Every byte the run wrote for people and machines (not the secrets file)."""
    files = [tmp_path / "r.json", tmp_path / "r.json.journal.jsonl", tmp_path / "s.md"]
    return result.output + "".join(path.read_text() for path in files if path.exists())


def test_a_journal_resumed_after_a_torn_line_keeps_every_record(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(PROJECT)
    trail = tmp_path / "r.json.journal.jsonl"
    trail.write_text('{"type": "start", "runId": "r0", "sinks": []}\n{"type": "secret", "event": "iss')  # kill -9
    result = apply(emulator, tmp_path, "--secrets-out", str(tmp_path / "s.jsonl"))
    assert result.code == 0, result.output
    lines = trail.read_text().splitlines()
    assert lines[1] == '{"type": "secret", "event": "iss'  # the fragment stays a line of its own
    records = [json.loads(line) for line in lines[2:]]  # every line after it is whole
    [run_id] = {record["runId"] for record in records if "runId" in record}
    assert [r["type"] for r in records] == ["start", "secret", "secret", "secret", "key"]
    assert records[0]["runId"] == run_id and records[0]["sinks"] == ["--secrets-out", str(tmp_path / "s.jsonl")]
    assert stat.S_IMODE(trail.stat().st_mode) == 0o600


def test_the_secrets_command_gets_an_allow_listed_environment(start_emulator: Any, tmp_path: Path) -> None:
    projects = Projects(start_emulator, tmp_path)
    seen = tmp_path / "seen.env"
    command = f"cat > /dev/null; env -0 > {seen}"
    args = ["rotate", "--target", "prod", "--ids", "K7", "--report", "reports/{target}.json", "--secrets-command"]
    environment = {"GH_TOKEN": "gh-token-1", "OTHER_TOKEN": "other-1", "DESCOPE_MANAGEMENT_KEY": DEV_KEY}

    def given() -> dict[str, str]:
        return dict(item.split("=", 1) for item in seen.read_text().split("\0") if item)

    result = projects.run([*args, command], **environment)  # dev's key variable is set too (Projects.env)
    assert result.code == 0, result.output
    assert given()["KEY_ID"] == "K7" and given()["KEY_NAME"] == "seven" and given()["KEY_PROJECT_ID"] == "P2prod"
    others = set(given()) - BASICS - {"KEY_ID", "KEY_NAME", "KEY_PROJECT_ID"}
    assert {name for name in others if not name.startswith("LC_")} == set()  # no DEV_MGMT_KEY, no OTHER_TOKEN
    assert DEV_KEY not in seen.read_text() and PROD_KEY not in seen.read_text()

    passed = projects.run([*args, command, "--secrets-command-env", "GH_TOKEN"], **environment)
    assert passed.code == 0, passed.output
    assert given()["GH_TOKEN"] == "gh-token-1" and "OTHER_TOKEN" not in given()
    for source in ("DEV_MGMT_KEY", "DESCOPE_MANAGEMENT_KEY"):  # a variable a target reads its key from
        before = len(projects.prod.recorded())
        refused = projects.run([*args, command, "--secrets-command-env", source], **environment)
        assert refused.code == 64 and f"--secrets-command-env {source}: " in refused.stderr, refused.output
        assert "never handed to the secrets command" in refused.stderr
        assert len(projects.prod.recorded()) == before  # refused before the first request


def test_a_command_that_never_reads_its_secret_is_not_delivered(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(PROJECT)
    result = apply(emulator, tmp_path, "--secrets-command", "exit 0")
    assert result.code == 1, result.output
    [key] = load_report(tmp_path / "r.json")["keys"]
    assert key["outcome"] == "undelivered" and "without reading the secret" in key["reason"]
    assert key["recover"].startswith(f"descope-reconcile rotate --ids {key['id']} --secrets-command CMD")
    partly = apply(emulator, tmp_path, "--secrets-command", "head -c 3 > /dev/null", keys=[{"name": "ci-two"}])
    assert partly.code == 1 and "bytes left unread" in partly.stdout, partly.output


def test_a_secret_echoed_in_any_encoding_by_the_command_never_leaks(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(PROJECT)
    management = emulator.config.management_key
    # `curl -v -u`: the secret as a Basic credential, then raw, URL-encoded, and the management key too
    command = (
        'read -r s; printf "> Authorization: Basic %s\\n" "$(printf "user:%s" "$s" | base64 -w0)" >&2; '
        f'printf "%s|%s|%s\\n" "$s" "$(printf %s "$s" | base64 -w0)" {shlex.quote(management)} >&2; exit 22'
    )
    out = tmp_path / "s.jsonl"
    args = ("--summary", str(tmp_path / "s.md"), "--secrets-out", str(out), "--secrets-command", command)
    result = apply(emulator, tmp_path, *args)
    assert result.code == 1, result.output
    [line] = secret_lines(out)
    cleartext = line["cleartext"]
    forms = [cleartext, base64.b64encode(cleartext.encode()).decode()[:-4], management]
    forms.append(base64.b64encode(f"user:{cleartext}".encode()).decode()[8:-4])
    everything = outputs(tmp_path, result)
    assert "exited with 22" in everything and "Authorization: Basic" in everything  # the excerpt is there
    for form in forms:
        assert form not in everything


def test_a_huge_stderr_is_read_bounded(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(PROJECT)
    folder = write_desired(tmp_path / "d", [NEW]).parent
    command = "cat > /dev/null; head -c 300000000 /dev/zero | tr '\\0' x >&2; echo the-end >&2; exit 1"
    argv = [sys.executable, "-m", "reconcile", "apply", str(folder), "--report", str(tmp_path / "r.json")]
    # A fresh parent, so that its children's peak memory is the CLI's alone.
    measure = (
        "import resource, subprocess, sys; done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); print(done.stdout)"
    )
    done = subprocess.run(
        [sys.executable, "-c", measure, *argv, "--secrets-command", command],
        env=cli_env(emulator),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    code, peak_kib = map(int, done.stdout.split("\n", 1)[0].split())
    assert code == 1, done.stdout
    assert peak_kib < 200 * 1024, peak_kib  # 928 MB before
    [key] = load_report(tmp_path / "r.json")["keys"]
    assert "the-end (a variable it needs" in key["reason"]
    assert len(key["reason"]) < 600


def test_a_sink_that_exits_while_a_detached_child_holds_its_stderr_is_delivered(
    start_emulator: Any, tmp_path: Path
) -> None:
    emulator = start_emulator(PROJECT)
    pid_file, received = tmp_path / "daemon.pid", tmp_path / "received"
    command = f"cat > {received}; (sleep 60 & echo $! > {pid_file}); exit 0"  # the daemon keeps stderr open
    try:
        started = time.monotonic()
        result = apply(emulator, tmp_path, "--secrets-command", command)
        took = time.monotonic() - started
    finally:
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
    assert result.code == 0, result.output
    assert took < 30, took  # not the 120 s timeout
    assert exchange(emulator, received.read_text()) == 200


def test_the_secrets_file_must_be_a_private_file_of_the_running_user(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(PROJECT)
    if os.geteuid() != 0:
        pytest.skip("making a file another user's needs root")
    theirs = tmp_path / "theirs.jsonl"
    theirs.write_text("")
    os.chown(theirs, 4242, 4242)
    refused = apply(emulator, tmp_path, "--secrets-out", str(theirs))
    assert refused.code != 0 and f"--secrets-out {theirs}: is owned by uid 4242" in refused.stderr, refused.output
    assert emulator.recorded() == []  # before the project is read
    linked = tmp_path / "linked.jsonl"
    linked.write_text("")
    os.link(linked, tmp_path / "second-name")
    refused = apply(emulator, tmp_path, "--secrets-out", str(linked))
    assert f"--secrets-out {linked}: has 2 links" in refused.stderr, refused.output
    assert emulator.recorded() == []

    folder = write_desired(tmp_path / "d", [NEW]).parent
    deep = tmp_path / "new" / "deeper" / "s.jsonl"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "reconcile",
            "apply",
            str(folder),
            "--report",
            str(tmp_path / "r.json"),
            "--secrets-out",
            str(deep),
        ],
        env=cli_env(emulator),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        preexec_fn=lambda: os.umask(0),  # a umask for the child only
    )
    assert done.returncode == 0, done.stderr
    for made in (tmp_path / "new", tmp_path / "new" / "deeper"):
        assert stat.S_IMODE(made.stat().st_mode) == 0o700
    assert stat.S_IMODE(deep.stat().st_mode) == 0o600


def test_a_secrets_file_that_cannot_be_made_private_is_named_before_any_request(
    start_emulator: Any, tmp_path: Path
) -> None:
    emulator = start_emulator(PROJECT)
    immutable = tmp_path / "immutable.jsonl"
    immutable.write_text("")
    immutable.chmod(0o644)
    if subprocess.run(["chattr", "+i", str(immutable)], capture_output=True, check=False).returncode != 0:
        pytest.skip("no immutable files here (chattr)")
    try:
        refused = apply(emulator, tmp_path, "--secrets-out", str(immutable))
    finally:
        subprocess.run(["chattr", "-i", str(immutable)], check=False)
    assert refused.code != 0 and f"--secrets-out {immutable}: cannot be made private" in refused.stderr, refused.output
    assert emulator.recorded() == []


def _limited(limit: int) -> Callable[[], None]:
    def apply_limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG), as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply_limit


def test_a_journal_that_fails_after_issue_delivers_first_then_fails_naming_it(
    start_emulator: Any, tmp_path: Path
) -> None:
    emulator = start_emulator(PROJECT)
    out = tmp_path / "s.jsonl"
    first = apply(emulator, tmp_path, "--secrets-out", str(out), keys=[{"name": "ci-aaa"}])  # lines to measure
    assert first.code == 0, first.output
    start, requested = (tmp_path / "r.json.journal.jsonl").read_text().splitlines()[:2]
    trail = tmp_path / "full.journal.jsonl"
    trail.write_text(json.dumps({"type": "padding", "pad": "x" * 1_000_000}) + "\n")
    room = len(start) + len(requested) + 2 + 10  # the `issued` line is cut short after 10 bytes
    folder = write_desired(tmp_path / "d", [{"name": "ci-aaa"}, {"name": "ci-bbb"}]).parent
    argv = ["apply", str(folder), "--report", str(tmp_path / "r.json"), "--secrets-out", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "reconcile", *argv, "--journal", str(trail)],
        env=cli_env(emulator),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        preexec_fn=_limited(trail.stat().st_size + room),
    )
    assert done.returncode == 1, done.stderr
    [line] = [line for line in secret_lines(out) if line["name"] == "ci-bbb"]  # delivered first
    assert exchange(emulator, line["cleartext"]) == 200
    assert f"the journal {trail} could not be written (File too large)" in done.stderr
    assert f"when key {line['id']} ('ci-bbb') got its new secret" in done.stderr
    assert f"descope-reconcile rotate --ids {line['id']}" in done.stderr and "--secrets-out" in done.stderr
    keys = {key["name"]: key["outcome"] for key in load_report(tmp_path / "r.json")["keys"]}  # written
    assert keys == {"ci-aaa": "unchanged", "ci-bbb": "created"}
    assert [json.loads(text)["type"] for text in trail.read_text().splitlines()] == ["padding", "start", "secret"]


def test_only_the_current_projects_journal_records_count(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator([{"id": "K1", "name": "ci-new"}])
    trail = tmp_path / "r.json.journal.jsonl"
    other = {"type": "start", "runId": "rA", "sinks": [], "projectId": "P2other", "baseUrl": emulator.url}
    lost = {"type": "secret", "event": "requested", "op": "create", "id": None, "name": "ci-new", "runId": "rA"}
    trail.write_text(json.dumps(other) + "\n" + json.dumps(lost) + "\n")  # killed mid-create against project A
    result = apply(emulator, tmp_path, keys=[{"name": "ci-new"}])
    assert result.code == 0, result.output  # B's healthy key is not flagged
    assert load_report(tmp_path / "r.json")["unsettledSecrets"] == []

    same = {**other, "runId": "rB", "projectId": emulator.config.project_id, "baseUrl": emulator.url + "/"}
    trail.write_text(json.dumps(same) + "\n" + json.dumps({**lost, "runId": "rB"}) + "\n")
    flagged = apply(emulator, tmp_path, keys=[{"name": "ci-new"}])
    assert flagged.code == 1 and "K1 (ci-new): the run stopped before the answer came" in flagged.stderr
    assert writes(emulator) == []


def test_the_secrets_file_escapes_line_and_bidi_separators(start_emulator: Any, tmp_path: Path) -> None:
    hostile = "ci\u2028x\u0085y\u202ez\u2029"
    emulator = start_emulator([{"id": "K1", "name": hostile}])
    out = tmp_path / "s.jsonl"
    result = run_cli(
        ["rotate", "--ids", "K1", "--secrets-out", str(out), "--journal", str(tmp_path / "j.jsonl")], cli_env(emulator)
    )
    assert result.code == 0, result.output
    raw = out.read_text(encoding="utf-8")
    for character in ("\u2028", "\u0085", "\u202e", "\u2029"):
        assert character not in raw
    [line] = secret_lines(out)
    assert line["name"] == hostile and len(raw.splitlines()) == 1  # reads back the same, one line


def test_core_dumps_are_off_while_secrets_exist(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(PROJECT)
    seen = tmp_path / "limits"
    command = f"cat > /dev/null; grep 'core file' /proc/$PPID/limits > {seen}"  # the tool is the shell's parent
    folder = write_desired(tmp_path / "d", [NEW]).parent
    argv = ["apply", str(folder), "--report", str(tmp_path / "r.json"), "--secrets-command", command]
    hard = resource.getrlimit(resource.RLIMIT_CORE)[1]
    if hard == 0:
        pytest.skip("core dumps are off for every process here")

    def core_dumps_on() -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))

    done = subprocess.run(
        [sys.executable, "-m", "reconcile", *argv],
        env=cli_env(emulator),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        preexec_fn=core_dumps_on,
    )
    assert done.returncode == 0, done.stderr
    assert seen.read_text().split()[-3] == "0"  # the soft limit: the one the kernel applies


def test_recovery_commands_are_absolute_and_never_repeat_an_inline_command(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(PROJECT)
    write_desired(tmp_path / "d", [NEW])
    command = "cat > /dev/null; curl -H 'Authorization: Bearer inline-token-123' https://vault.invalid; exit 7"
    args = ["apply", "d", "--report", "r.json", "--summary", "s.md", "--secrets-command", command]
    result = run_cli(args, cli_env(emulator), cwd=tmp_path)
    assert result.code == 1, result.output
    [key] = load_report(tmp_path / "r.json")["keys"]
    words = shlex.split(key["recover"])
    assert words[words.index("--secrets-command") + 1] == "CMD"
    assert words[words.index("--journal") + 1] == str(tmp_path / "r.json.journal.jsonl")
    starts = [r for r in journal(tmp_path / "r.json.journal.jsonl") if r["type"] == "start"]
    assert starts[0]["sinks"] == ["--secrets-command", "CMD"]
    for path in ("s.md", "r.json", "r.json.journal.jsonl"):
        assert "inline-token-123" not in (tmp_path / path).read_text()
    assert "inline-token-123" not in result.output


def test_the_example_apply_workflow_names_a_sink_and_keeps_the_journal() -> None:
    workflow = yaml.safe_load(Path(".github/workflows/apply.yml").read_text())
    steps = workflow["jobs"]["apply"]["steps"]
    [applied] = [step for step in steps if step.get("uses") == "./"]
    assert "--secrets-command" in applied["with"]["args"] or "--secrets-out" in applied["with"]["args"]
    journal_path = "apply-report.json.journal.jsonl"
    restored = [step for step in steps if step.get("uses", "").startswith("actions/cache/restore")]
    saved = [step for step in steps if step.get("uses", "").startswith("actions/cache/save")]
    assert restored and saved and steps.index(restored[0]) < steps.index(applied) < steps.index(saved[0])
    assert journal_path in restored[0]["with"]["path"] and journal_path in saved[0]["with"]["path"]
    assert saved[0]["if"].startswith("always()")  # a failed apply's journal above all


def test_a_recovery_from_an_older_journal_never_repeats_its_inline_command() -> None:
    older = ["--secrets-out", "/abs/s.jsonl", "--secrets-command", "curl -H 'Bearer inline-token-123' x"]
    command = Recovery((), "/abs/r.json.journal.jsonl").command("K1", older)
    assert command == (
        "descope-reconcile rotate --ids K1 --secrets-out /abs/s.jsonl --secrets-command CMD "
        "--journal /abs/r.json.journal.jsonl"
    )
