"""Attacks on policy as code (issue 22), through the real command line against the real emulator:
hostile policies (catastrophic patterns, schemas that reach outside), the other path to the same
result (saved plans), wrong shapes, SARIF outputs and `rotate --due` at its edges."""

from __future__ import annotations

import contextlib
import fcntl
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from reconcile.cli import main
from reconcile.job.lock import lock_dir, lock_path
from reconcile.plan.diff import digest
from tests.lifecycle import writes
from tests.test_policy import COMPLIANT, DAY, SARIF_SCHEMA, SEEDED, _keys, cli, desired, policy_file, write_yaml

__all__ = ["cli"]


def test_a_catastrophic_name_pattern_is_bounded_not_hung(cli: Any, tmp_path: Path) -> None:
    """`(a+)+$` against `aaa…!` backtracks for ages in Python's engine: the run gives up on the match
    in a bounded time and fails closed, saying why."""
    policy = str(policy_file(tmp_path, {"name-pattern": {"pattern": "(a+)+$"}}))
    folder = str(desired(tmp_path, [{**COMPLIANT, "name": "a" * 64 + "!"}, {**COMPLIANT, "id": "K2"}]).parent)
    started = time.monotonic()
    result = cli(["validate", "--policy", policy, "--format", "json", folder])
    assert time.monotonic() - started < 20
    assert result.code == 1
    messages = [item["message"] for item in json.loads(result.stdout)]
    assert len(messages) == 2 and all("backtracks without end" in message for message in messages)


@contextlib.contextmanager
def _listening() -> Iterator[tuple[int, list[str]]]:
    """A port that records and hangs up on whoever calls it, while the block runs. Its thread has
    ended before the socket is closed: a thread still in `accept` on a closed number could take
    the connections of the next socket given that number (an emulator's, in another test)."""
    server, calls = socket.socket(), []
    server.bind(("127.0.0.1", 0))
    server.listen()

    def answer() -> None:
        with contextlib.suppress(OSError):
            while True:
                conversation, _ = server.accept()
                calls.append("called")
                conversation.close()

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], calls
    finally:
        server.shutdown(socket.SHUT_RDWR)  # wakes the accept (Linux): the thread ends
        thread.join(timeout=10)
        server.close()


@pytest.mark.parametrize("kind", ["http", "file", "dangling", "deep"])
def test_a_custom_schema_never_reaches_outside_itself(cli: Any, tmp_path: Path, kind: str) -> None:
    """A custom rule's `$ref` to a URL or a file is refused where it is written (nothing fetched, no
    traceback), as is one pointing nowhere, or a schema nested deep enough to exhaust the validator."""
    elsewhere = tmp_path / "other.schema.json"
    elsewhere.write_text('{"type": "integer"}', encoding="utf-8")
    with _listening() as (port, calls):
        schema: Any = {
            "http": {"$ref": f"http://127.0.0.1:{port}/rule.json"},
            "file": {"properties": {"name": {"$ref": elsewhere.as_uri()}}},
            "dangling": {"$defs": {"a": {}}, "properties": {"name": {"$ref": "#/$defs/b"}}},
            "deep": {},
        }[kind]
        policy = policy_file(tmp_path, custom=[{"id": "remote", "description": "d", "schema": schema}])
        if kind == "deep":  # written by hand: PyYAML's dumper recurses too
            text = "custom: [{id: deep, description: d, schema: " + '{"not": ' * 200 + "{}" + "}" * 200 + "}]"
            policy.write_text(text)
        folder = str(desired(tmp_path, [COMPLIANT]).parent)
        result = cli(["validate", "--policy", str(policy), folder])
    assert calls == []
    assert result.code == 1, result.output
    assert "Traceback" not in result.output
    assert "policy.yaml:" in result.stderr and "[custom[0].schema]" in result.stderr


def test_a_saved_plan_is_judged_by_the_policy_at_apply_time_never_by_none(
    cli: Any, start_emulator: Any, tmp_path: Path
) -> None:
    """Between `plan --out` and `apply --plan` the policy may change: the one in force at the write
    decides (tightened: refused; loosened: applied), and a plan checked against a policy is not
    applied with none because `--policy` was forgotten."""
    emulator = start_emulator(SEEDED)
    strict = str(policy_file(tmp_path / "strict", {"forbidden-ips": True}))
    lax = str(policy_file(tmp_path / "lax", {"description-required": True}))
    saved = str(tmp_path / "plan.json")
    folder = str(desired(tmp_path, _keys(["0.0.0.0/0"])).parent)
    assert cli(["plan", "--policy", lax, "--out", saved, folder], emulator).code == 2
    tightened = cli(["apply", "--policy", strict, "--plan", saved], emulator)
    assert tightened.code == 1 and "would introduce error-level violations (K1)" in tightened.stderr
    forgotten = cli(["apply", "--plan", saved], emulator)
    assert forgotten.code == 1 and "checked against a policy, and this run has none" in forgotten.stderr
    assert writes(emulator) == []
    assert cli(["plan", "--policy", strict, "--out", saved, folder], emulator).code == 2
    loosened = cli(["apply", "--policy", lax, "--plan", saved], emulator)
    assert loosened.code == 0, loosened.output
    assert any(r.body.get("permittedIps") == ["0.0.0.0/0"] for r in writes(emulator))


def test_rotate_due_under_the_lock_stops_at_a_failing_sink_and_writes_no_secret(
    cli: Any, start_emulator: Any, tmp_path: Path
) -> None:
    """Two runs at once: the second is refused before any write. A sink that fails: the run stops
    issuing (one key rotated, its secret kept in the secrets file), and the cleartext is in no other
    byte written (stdout, stderr, report, journal). A key from the future (clock skew) or already
    expired is not due."""
    now = int(time.time())
    emulator = start_emulator(
        [
            {"id": "K1", "name": "oldest", "createdTime": now - 300 * DAY},
            {"id": "K2", "name": "old", "createdTime": now - 200 * DAY},
            {"id": "K3", "name": "skewed", "createdTime": now + 30 * DAY},
            {"id": "K4", "name": "expired", "createdTime": now - 300 * DAY, "expireTime": now - DAY},
        ]
    )
    policy = str(policy_file(tmp_path, {"max-key-age": {"days": 90}}))
    secrets, journal, report = tmp_path / "sinks" / "s.jsonl", tmp_path / "journal.jsonl", tmp_path / "r.json"
    base = ["rotate", "--due", "--policy", policy, "--journal", str(journal), "--report", str(report), "-vv"]
    sinks = ["--secrets-out", str(secrets), "--secrets-command", "cat >/dev/null; exit 3"]
    folder = lock_dir({"XDG_STATE_HOME": str(tmp_path / "state")})
    held = lock_path(folder, emulator.url, emulator.config.project_id)
    held.parent.mkdir(parents=True, exist_ok=True)
    with held.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        busy = cli([*base, *sinks], emulator)
    assert busy.code != 0 and writes(emulator) == [], busy.output
    result = cli([*base, *sinks], emulator)
    assert result.code == 1, result.output
    assert "2 key(s) past the rotation age" in result.stdout
    assert [r.body for r in writes(emulator)] == [{"id": "K1"}]  # stopped after the failing sink
    cleartexts = [json.loads(line)["cleartext"] for line in secrets.read_text(encoding="utf-8").splitlines()]
    assert len(cleartexts) == 1
    written = [result.stdout, result.stderr, report.read_text(encoding="utf-8"), journal.read_text(encoding="utf-8")]
    assert not [text for text in written if cleartexts[0] in text]


@pytest.mark.parametrize(
    ("fail_on", "codes"),
    [("none", (0, 0)), ("error", (1, 0)), ("warning", (1, 1)), ("error,warning", (1, 1))],
)
def test_audit_fail_on_exits_as_documented_and_never_passes_without_a_policy(
    cli: Any, start_emulator: Any, tmp_path: Path, fail_on: str, codes: tuple[int, int]
) -> None:
    """`--fail-on` against a project with an error and a warning, then with only the warning; without a
    policy (one that went missing from a scheduled run) `--fail-on` and `--sarif` are refused, not green."""
    emulator = start_emulator([{"id": "U1", "name": "stray", "permittedIps": ["0.0.0.0/0"]}])
    both = str(policy_file(tmp_path / "both", {"forbidden-ips": True, "description-required": {"severity": "warning"}}))
    warning = str(policy_file(tmp_path / "warning", {"description-required": {"severity": "warning"}}))
    got = tuple(cli(["audit", "--policy", policy, "--fail-on", fail_on], emulator).code for policy in (both, warning))
    assert got == codes
    for option in (["--fail-on", "error"], ["--sarif", str(tmp_path / "a.sarif")]):
        refused = cli(["audit", *option], emulator)
        assert refused.code == 64 and "need a policy" in refused.stderr
    assert not (tmp_path / "a.sarif").exists()
    with pytest.raises(SystemExit) as wrong:
        cli(["audit", "--policy", both, "--fail-on", "errors"], emulator)
    assert wrong.value.code == 64


def test_sarif_outputs_that_cannot_be_files_are_refused_before_any_request(
    cli: Any, start_emulator: Any, tmp_path: Path
) -> None:
    emulator = start_emulator([{"id": "U1", "name": "stray"}])
    policy = str(policy_file(tmp_path, {"description-required": True}))
    (tmp_path / "folder").mkdir()
    (tmp_path / "link.sarif").symlink_to(tmp_path / "elsewhere.sarif")
    for target in ("folder", "link.sarif"):
        result = cli(["audit", "--policy", policy, "--sarif", str(tmp_path / target)], emulator)
        assert result.code != 0 and "Traceback" not in result.output
        assert f"{target}: is a" in result.stderr
    assert not (tmp_path / "elsewhere.sarif").exists()
    assert emulator.recorded() == []


def test_sarif_stays_one_valid_log_with_several_targets_non_ascii_paths_and_no_results(
    cli: Any, tmp_path: Path
) -> None:
    """Every target a run (one without a policy, one with nothing to say, one with an unreadable file
    under a non-ASCII name), at -v too: stdout is only the log, valid against the OASIS schema; a file's
    problem names no key."""
    desired(tmp_path / "prød", [{"id": "K1", "name": "x"}])
    desired(tmp_path / "dev", [COMPLIANT])
    (tmp_path / "none" / "desired").mkdir(parents=True)
    (tmp_path / "none" / "desired" / "bad é.yaml").write_text("version: 1\nkeys: [{id: 3}]\n", encoding="utf-8")
    rules = {"policy": {"rules": {"description-required": True}}}
    config = {
        "version": 1,
        "targets": {
            "prod": {"projectId": "P1", "managementKeyEnv": "K", "paths": ["prød/desired"], **rules},
            "dev": {"projectId": "P2", "managementKeyEnv": "K", "paths": ["dev/desired"], **rules},
            "none": {"projectId": "P3", "managementKeyEnv": "K", "paths": ["none/desired"]},
        },
    }
    write_yaml(tmp_path / "descope-reconcile.yaml", config)
    result = cli(["validate", "--format", "sarif", "-v"])
    assert result.code == 1
    log = json.loads(result.stdout)
    jsonschema.validate(log, SARIF_SCHEMA)
    results = {run["automationDetails"]["id"]: run["results"] for run in log["runs"]}
    assert results["descope-reconcile/dev/"] == []
    [prod] = results["descope-reconcile/prod/"]
    assert prod["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "pr%C3%B8d/desired/keys.yaml"
    [broken] = results["descope-reconcile/none/"]
    assert broken["message"]["text"] == "`keys[0].id` must be a string, got number 3"
    assert "logicalLocations" not in broken["locations"][0]
    assert broken["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "none/desired/bad%20%C3%A9.yaml"


@pytest.mark.parametrize("until", ["2026-02-30", 20260101, None])
def test_a_saved_plan_with_a_forged_waiver_is_refused_not_a_traceback(
    cli: Any, start_emulator: Any, tmp_path: Path, until: Any
) -> None:
    """The checksum proves a plan unchanged, not who made it: a waiver rewritten (and the checksum
    recomputed) with a day that is none is refused like any incomplete plan, before any write."""
    emulator = start_emulator(SEEDED)
    policy = str(policy_file(tmp_path, {"forbidden-ips": True}))
    saved = tmp_path / "plan.json"
    folder = str(desired(tmp_path, _keys(["0.0.0.0/0"], waived=True)).parent)
    assert cli(["plan", "--policy", policy, "--out", str(saved), folder], emulator).code == 2
    document = json.loads(saved.read_text(encoding="utf-8"))
    document["changes"][0]["waivers"][0]["until"] = until
    document["checksum"] = digest({name: value for name, value in document.items() if name != "checksum"})
    saved.write_text(json.dumps(document), encoding="utf-8")
    result = cli(["apply", "--policy", policy, "--plan", str(saved)], emulator)
    assert result.code != 0 and "is not a complete saved plan" in result.stderr, result.output
    assert writes(emulator) == []


def test_times_beyond_the_calendar_are_reported_not_a_traceback(cli: Any, start_emulator: Any, tmp_path: Path) -> None:
    """An `expireTime` the schema allows but no calendar has (year 31 million), in a desired file and
    from the API, with a lifetime that lets the limit itself fall beyond the year 9999."""
    far = 10**15
    policy = str(policy_file(tmp_path, {"max-lifetime": {"days": 3_000_000}, "max-key-age": {"days": 1}}))
    folder = str(desired(tmp_path, [{**COMPLIANT, "expireTime": far}]).parent)
    result = cli(["validate", "--policy", policy, "--format", "json", folder])
    assert result.code == 1, result.output
    [finding] = json.loads(result.stdout)
    assert finding["rule"] == "max-lifetime" and "beyond the calendar" in finding["message"]
    emulator = start_emulator([{"id": "U1", "name": "far", "expireTime": far, "createdTime": 1}])
    audited = cli(["audit", "--policy", policy, "--fail-on", "error"], emulator)
    assert audited.code == 1 and "beyond the calendar" in audited.stdout, audited.output


def test_the_config_policy_and_a_policy_file_give_the_same_findings(cli: Any, tmp_path: Path) -> None:
    """The same section, as the config's `policy:` or as `--policy FILE` over the same files: the same
    violations at the same places (the config's run names its target)."""
    section = {
        "rules": {"description-required": {"severity": "warning"}, "forbidden-ips": True},
        "custom": [{"id": "has-owner", "description": "an owner", "schema": {"required": ["customAttributes"]}}],
    }
    keys = [{"id": "K1", "name": "a", "permittedIps": ["::/0"]}, COMPLIANT]
    desired(tmp_path / "prod", keys)
    write_yaml(tmp_path / "policy.yaml", section)
    config = {
        "version": 1,
        "policy": section,
        "targets": {"prod": {"projectId": "P", "managementKeyEnv": "K", "paths": ["prod/desired"]}},
    }
    write_yaml(tmp_path / "cfg" / "descope-reconcile.yaml", config)
    (tmp_path / "cfg" / "prod").symlink_to(tmp_path / "prod")
    by_file = cli(["validate", "--policy", "policy.yaml", "--format", "json", "prod/desired"])
    by_config = cli(["validate", "--format", "json"], cwd=tmp_path / "cfg")
    assert by_file.code == by_config.code == 1
    from_config = [{k: v for k, v in item.items() if k != "target"} for item in json.loads(by_config.stdout)]
    assert from_config == json.loads(by_file.stdout) and len(from_config) == 3


@pytest.mark.parametrize(
    ("command", "teaches"),
    [
        ("validate", ["with a policy", "no waiver covers", "sarif: SARIF 2.1.0"]),
        ("rotate", ["With --due", "keep --journal FILE between runs", "--max-keys N", "max-key-age"]),
        ("audit", ["needs a policy", "upload it as an artifact", "error,warning, or none"]),
        ("plan", ["--policy FILE", "docs/policy.md"]),
    ],
)
def test_help_teaches_the_policy_options(capsys: pytest.CaptureFixture[str], command: str, teaches: list[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert done.value.code == 0 and [words for words in teaches if words not in text] == []


def test_waivers_of_every_wrong_shape_are_said_where_written(cli: Any, tmp_path: Path) -> None:
    """Twice the same rule (the second waives nothing more), a rule the policy lacks, an expired one:
    each a finding at its waiver; the violation itself is waived once."""
    waivers = [
        {"rule": "forbidden-ips", "reason": "vendor, SEC-1", "until": "2999-01-01"},
        {"rule": "forbidden-ips", "reason": "vendor again", "until": "2999-06-30"},
        {"rule": "no-such-rule", "reason": "typo", "until": "2999-01-01"},
        {"rule": "description-required", "reason": "old", "until": "2000-01-01"},
    ]
    policy = str(policy_file(tmp_path, {"forbidden-ips": True}))
    folder = str(desired(tmp_path, [{**COMPLIANT, "permittedIps": ["0.0.0.0/0"], "waivers": waivers}]).parent)
    result = cli(["validate", "--policy", policy, "--format", "json", folder])
    assert result.code == 1  # the expired waiver
    got = sorted((item["field"], item["rule"], item.get("waived", "")) for item in json.loads(result.stdout))
    assert got == [
        ("keys[0].permittedIps[0]", "forbidden-ips", "vendor, SEC-1"),
        ("keys[0].waivers[1]", "waiver-unused", ""),
        ("keys[0].waivers[2]", "waiver-unused", ""),
        ("keys[0].waivers[3]", "waiver-expired", ""),
    ]
    messages = {item["field"]: item["message"] for item in json.loads(result.stdout)}
    assert "already waived by waiver 1" in messages["keys[0].waivers[1]"]
    assert "the policy has no such rule" in messages["keys[0].waivers[2]"]
