"""Hostile text from the server and from the desired files never acts on a terminal, a CI log or a
Markdown page: the real CLI, every command and format, every byte it prints or writes, checked.

The server is the emulator seeded with hostile names, descriptions, claims, tenant ids and ids (and
an error text, for the keys whose update fails); the files have a hostile name and hostile values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconcile.emulator import Answer, Call
from tests.conftest import cli_env, run_cli, write_desired
from tests.support import SEARCH, UPDATE

# Erases a line, moves up, returns the cursor, starts a workflow command; then Markdown and HTML,
# the legacy `##[` command, a bidi override, a line separator, a C1 line break (NEL) and DEL.
EVIL = "evil\u001b[2K\u001b[1A\rfake\n::error file=x::injected"
HOSTILE = (
    EVIL + " | `tick` <img src=x onerror=alert(1)> [link](https://x.test) ##[warning]old \u202egnp.exe\u2028\x85\x7f"
)
FILE_NAME = "k\x1b[2K\n::error file=f,line=1::pwn\r##[group]g\u202e.yaml"  # a file name may hold all that
# What no output line may hold: controls (but the newline ending it), direction and line separators.
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
ANNOTATION = re.compile(r"::error file=[^:,]*,line=\d+,col=\d+::[^\r]*")

SERVER: list[dict[str, Any]] = [
    {
        "id": "K1",
        "name": HOSTILE,
        "description": HOSTILE,
        "customClaims": {HOSTILE: HOSTILE},
        "keyTenants": [{"tenantId": HOSTILE, "roleNames": [HOSTILE]}],
        "createdBy": "x\n  - id: INJECTED\n    name: pwned",  # a comment in an export must stay one
    },
    {"id": "K3", "name": "fails", "description": "server"},
    {"id": HOSTILE, "name": HOSTILE, "description": HOSTILE, "boundUserId": HOSTILE},
]
DESIRED: list[dict[str, Any]] = [
    {
        "id": "K1",
        "name": "calm\u202e\u2028\x85",  # names refuse C0 controls and DEL, not these
        "description": "d\x1b[31m\r\n::error::desc ##[error]x",
        "customClaims": {"c\x1b[1A": "v\r\n::warning::x"},
        "keyTenants": [{"tenantId": "T\x1b[2K", "roleNames": ["r\r::error::y"]}],
    },
    {"id": "K3", "name": "fails", "description": "desired"},
]


def assert_inert(text: str, what: str, *, annotations: bool = False, stream: bool = True) -> None:
    """No control, direction or separator character; no line that starts a workflow command (except,
    in --format github, lines that are exactly one annotation of ours); in what is printed (`stream`:
    GitHub reads stdout and stderr for commands, not files), no legacy `##[` command either."""
    found = UNSAFE.search(text)
    assert found is None, f"{what}: {found.group()!r} in {text!r}"
    assert "##[" not in text or not stream, f"{what}: {text!r}"
    for line in text.split("\n"):
        if annotations and line:
            assert ANNOTATION.fullmatch(line), f"{what}: {line!r}"
        else:
            assert not line.lstrip().startswith("::"), f"{what}: {line!r}"


def assert_markdown_inert(text: str, what: str, *, stream: bool) -> None:
    """Tables keep their columns, code spans close, no HTML or link comes from the data, and what is
    inside a fenced block (values, as JSON: literal there) cannot close it."""
    assert_inert(text, what, stream=stream)
    fenced, columns = False, 0
    for line in text.split("\n"):
        pipes = len(re.findall(r"(?<!\\)\|", line)) if line.startswith("|") else 0
        assert columns in (0, pipes) or not pipes, f"{what}: {line!r} has other columns than its table"
        columns = pipes  # a table's rows have as many cells as its header row
        if line.startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            assert line[:2] in ("- ", "+ "), f"{what}: {line!r}"
            continue
        assert not re.search(r"(?<!\\)<img|(?<!\\)\[link(?<!\\)\]", line), f"{what}: {line!r}"
        assert len(re.findall(r"(?<!\\)`", line)) % 2 == 0, f"{what}: {line!r}"


def failing_with_hostile_text(emulator: Any, failing: set[str]) -> None:
    """The update of each key in `failing` (and the search, when "search" is in it) answers 400 with
    a hostile error text."""

    def answer(call: Call) -> Answer:
        result = call.forward()
        key_id = call.body.get("id") if isinstance(call.body, dict) else None
        if (call.path == UPDATE and key_id in failing) or (call.path == SEARCH and "search" in failing):
            result.status, result.body = 400, {"errorCode": "E011003", "errorDescription": HOSTILE}
        return result

    emulator.intercept(UPDATE, answer)
    emulator.intercept(SEARCH, answer)


@pytest.fixture
def hostile(start_emulator: Callable[..., Any], tmp_path: Path) -> tuple[Any, Path]:
    emulator = start_emulator(SERVER, tenant_names={HOSTILE: HOSTILE})
    failing_with_hostile_text(emulator, {"K3"})
    return emulator, write_desired(tmp_path / "desired", DESIRED, name=FILE_NAME)


def test_plan_apply_and_their_files_show_hostile_text_inert(hostile: tuple[Any, Path], tmp_path: Path) -> None:
    emulator, desired = hostile
    env = cli_env(emulator)
    plan = run_cli(["plan", str(desired.parent), "-v", "--summary", str(tmp_path / "plan.md")], env)
    assert plan.code == 2, plan.output
    assert "unmanaged: evil\\x1b[2K\\x1b[1A\\rfake\\n::error" in plan.stdout  # shown, escaped
    apply = run_cli(["apply", str(desired.parent), "-v", "--force", "--summary", str(tmp_path / "apply.md")], env)
    assert apply.code == 1 and "! K3  [failed]" in apply.stdout and "fake\\n::error" in apply.stdout, apply.output
    for name, result in (("plan", plan), ("apply", apply)):
        assert_inert(result.stdout, f"{name} stdout")
        assert_inert(result.stderr, f"{name} stderr")
    for summary in ("plan.md", "apply.md"):
        assert_markdown_inert((tmp_path / summary).read_text(encoding="utf-8"), summary, stream=False)


def test_audit_and_export_show_hostile_text_inert(hostile: tuple[Any, Path], tmp_path: Path) -> None:
    emulator, desired = hostile
    env = cli_env(emulator)
    audit = run_cli(["audit", str(desired.parent), "--summary", str(tmp_path / "audit.md")], env)
    assert audit.code == 0, audit.output
    assert_markdown_inert(audit.stdout, "audit stdout", stream=True)
    assert_inert(audit.stderr, "audit stderr")
    assert_markdown_inert((tmp_path / "audit.md").read_text(encoding="utf-8"), "audit.md", stream=True)

    exported = tmp_path / "exported.yaml"
    export = run_cli(["export", "--out", str(exported)], env)
    assert export.code == 1, export.output  # the project holds an id the desired format refuses: said so
    assert_inert(export.stderr, "export stderr")
    text = exported.read_text(encoding="utf-8")
    assert_inert(text, "exported file", stream=False)
    keys = {key["id"]: key for key in yaml.safe_load(text)["keys"]}  # one key per server key, no more
    assert set(keys) == {"K1", "K3", HOSTILE}
    assert keys["K1"]["description"] == HOSTILE and keys["K1"]["customClaims"] == {HOSTILE: HOSTILE}


def test_an_error_text_from_the_server_is_one_inert_log_line(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(SERVER)
    failing_with_hostile_text(emulator, {"search"})
    result = run_cli(["plan", str(write_desired(tmp_path / "d", DESIRED))], cli_env(emulator))
    assert result.code == 1 and result.stderr.startswith("error: HTTP 400 E011003: evil\\x1b"), result.output
    assert result.stderr.count("\n") == 1
    assert_inert(result.stderr, "stderr")


@pytest.mark.parametrize("output_format", ["text", "github", "json"])
def test_validate_shows_hostile_file_names_and_values_inert(tmp_path: Path, output_format: str) -> None:
    broken = [
        {"id": "K1\x1b[2K", "name": "ok"},
        {"id": "K2", "roleNames": HOSTILE},
        {"id": "K3", HOSTILE: 1},
        {"id": "K4", "name": "n", "permittedIps": [HOSTILE]},
    ]
    desired = write_desired(tmp_path / "d", broken, name=FILE_NAME)
    result = run_cli(["validate", str(desired.parent), "--format", output_format], cli_env(None))
    assert result.code == 1, result.output
    assert_inert(result.stderr, "stderr")
    if output_format == "json":
        found = json.loads(result.stdout)
        assert len(found) >= 4 and {item["path"] for item in found} == {str(desired)}  # JSON keeps the exact name
    else:
        assert_inert(result.stdout, "stdout", annotations=output_format == "github")
    if output_format == "github":
        annotations = result.stdout.splitlines()
        assert len(annotations) >= 4
        assert all("file=" + str(tmp_path).replace(":", "%3A") in line for line in annotations)


def test_several_targets_show_hostile_text_inert(start_emulator: Any, tmp_path: Path) -> None:
    """The combined summaries (text and Markdown) quote each target's error, here a hostile server text."""
    failing, hostile = start_emulator(SERVER, project_id="P2dev"), start_emulator(SERVER, project_id="P2prod")
    failing_with_hostile_text(failing, {"search"})
    write_desired(tmp_path / "desired", DESIRED, name=FILE_NAME)
    target = {"managementKeyEnv": "KEY", "paths": ["desired"]}
    config = {
        "version": 1,
        "targets": {
            "dev": {**target, "projectId": "P2dev", "baseUrl": failing.url},
            "prod": {**target, "projectId": "P2prod", "baseUrl": hostile.url},
        },
    }
    (tmp_path / "descope-reconcile.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    env = cli_env(None, KEY=failing.config.management_key)
    result = run_cli(["plan", "-v", "--summary", "plan.md"], env, cwd=tmp_path)
    assert result.code == 1 and "  dev   exit 1  failed  HTTP 400 E011003: evil\\x1b" in result.stdout, result.output
    assert_inert(result.stdout, "stdout")
    assert_inert(result.stderr, "stderr")
    assert_markdown_inert((tmp_path / "plan.md").read_text(encoding="utf-8"), "plan.md", stream=False)


def test_the_json_files_hold_hostile_text_as_escapes(hostile: tuple[Any, Path], tmp_path: Path) -> None:
    """The report, the saved plan (a file people review) and the audit: a bidi override, a line
    separator or a C1 control from the server is a `\\u` escape in the file, as in an export, and each
    file reads back to the same values (a saved plan so written still applies)."""
    emulator, desired = hostile
    env = cli_env(emulator)
    files = {name: tmp_path / f"{name}.json" for name in ("plan-report", "saved-plan", "audit", "apply-report")}
    plan = ["plan", str(desired.parent), "--report", str(files["plan-report"]), "--out", str(files["saved-plan"])]
    assert run_cli(plan, env).code == 2
    assert run_cli(["audit", str(desired.parent), "--out", str(files["audit"])], env).code == 0
    apply = ["apply", "--plan", str(files["saved-plan"]), "--force", "--report", str(files["apply-report"])]
    assert run_cli(apply, env).code == 1  # K3 fails, on purpose
    for name, path in files.items():
        text = path.read_text(encoding="utf-8")
        assert_inert(text, name, stream=False)
        assert HOSTILE in _strings(json.loads(text)), name  # read back exactly
    assert emulator.store.load("K1")["name"] == DESIRED[0]["name"]


def _strings(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value).union(*(_strings(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(_strings(item) for item in value))
    return {value} if isinstance(value, str) else set()
