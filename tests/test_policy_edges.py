"""Attacks on policy as code (issue 22), through the real command line against the real emulator:
hostile policies (catastrophic patterns, schemas that reach outside), the other path to the same
result (saved plans), wrong shapes, SARIF outputs and `rotate --due` at its edges."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.lifecycle import writes
from tests.test_policy import COMPLIANT, SEEDED, _keys, cli, desired, policy_file

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


def _listening() -> tuple[socket.socket, list[str]]:
    """A port that records and hangs up on whoever calls it."""
    server, calls = socket.socket(), []
    server.bind(("127.0.0.1", 0))
    server.listen()

    def answer() -> None:
        with contextlib.suppress(OSError):
            while True:
                conversation, _ = server.accept()
                calls.append("called")
                conversation.close()

    threading.Thread(target=answer, daemon=True).start()
    return server, calls


@pytest.mark.parametrize("kind", ["http", "file", "dangling", "deep"])
def test_a_custom_schema_never_reaches_outside_itself(cli: Any, tmp_path: Path, kind: str) -> None:
    """A custom rule's `$ref` to a URL or a file is refused where it is written (nothing fetched, no
    traceback), as is one pointing nowhere, or a schema nested deep enough to exhaust the validator."""
    server, calls = _listening()
    elsewhere = tmp_path / "other.schema.json"
    elsewhere.write_text('{"type": "integer"}', encoding="utf-8")
    schema: Any = {
        "http": {"$ref": f"http://127.0.0.1:{server.getsockname()[1]}/rule.json"},
        "file": {"properties": {"name": {"$ref": elsewhere.as_uri()}}},
        "dangling": {"$defs": {"a": {}}, "properties": {"name": {"$ref": "#/$defs/b"}}},
        "deep": {},
    }[kind]
    policy = policy_file(tmp_path, custom=[{"id": "remote", "description": "d", "schema": schema}])
    if kind == "deep":  # written by hand: PyYAML's dumper recurses too
        policy.write_text("custom: [{id: deep, description: d, schema: " + '{"not": ' * 200 + "{}" + "}" * 200 + "}]")
    folder = str(desired(tmp_path, [COMPLIANT]).parent)
    try:
        result = cli(["validate", "--policy", str(policy), folder])
    finally:
        server.close()
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
