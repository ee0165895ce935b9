"""Bad input: every problem, precisely located, one run; nothing sent when anything is wrong."""

from __future__ import annotations

import ipaddress
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconcile.desired import validation, yaml12
from reconcile.desired.loader import Diagnostic, ParsedFile, parse_text
from reconcile.desired.validation import build_desired_state
from reconcile.job.load import load_desired
from tests.conftest import cli_env, run_cli


def problems(text: str | bytes, **kwargs: Any) -> list[Diagnostic]:
    """All diagnostics for one file's content, as `validate` would report them."""
    raw = text.encode() if isinstance(text, str) else text
    parsed = parse_text("f.yaml", raw, **kwargs)
    if not isinstance(parsed, ParsedFile):
        return parsed
    return build_desired_state([parsed])[1]


def one(text: str | bytes, **kwargs: Any) -> Diagnostic:
    found = problems(text, **kwargs)
    assert len(found) == 1, [d.render() for d in found]
    return found[0]


HEAD = "version: 1\nkeys:\n"


@pytest.mark.parametrize(
    ("text", "line", "field", "needle"),
    [
        (HEAD + "  - id: K1\n    name: [unclosed\n", 5, "", "(started at line 4)"),
        (HEAD + "  - id: K1\n\tname: x\n", 4, "", "tabs are not allowed"),
        (HEAD + "  - id: K1\n    name: a\n    name: b\n", 5, "", "duplicate key 'name' (first at line 4"),
        ("keys: []\n", 1, "", "'version' is required"),
        ("version: 2\nkeys: []\n", 1, "version", "unsupported version 2: supported versions are 1"),
        ("- a\n- b\n", 1, "", "top level must be a mapping"),
        (HEAD + "  - id: K1\n    description: null\n", 4, "keys[0].description", "is null: remove the field"),
        (HEAD + "  - id: K1\n    roleNames: admin\n", 4, "keys[0].roleNames", "must be a list, got string 'admin'"),
        (HEAD + "  - id: K1\n    roleName: [admin]\n", 4, "keys[0].roleName", "did you mean `roleNames`?"),
        (
            HEAD + "  - id: K1\n    customClaims: {a: {b: 1}}\n",
            4,
            "keys[0].customClaims.a",
            "must be a string or number",
        ),
        (
            HEAD + "  - id: K1\n    roleNames: [a]\n    keyTenants: [{tenantId: T}]\n",
            5,
            "keys[0].keyTenants",
            "either global `roleNames` or `keyTenants`",
        ),
        (HEAD + "  - id: K1\n    permittedIps: [10.0.0.0/33]\n", 4, "keys[0].permittedIps[0]", "not an IP address"),
        (
            HEAD + "  - id: K1\n    permittedIps: [10.1.2.3/8]\n",
            4,
            "keys[0].permittedIps[0]",
            "did you mean `10.0.0.0/8`",
        ),
        (HEAD + "  - id: K1\n    permittedIps: ['999.1.1.1']\n", 4, "keys[0].permittedIps[0]", "not an IP address"),
        (HEAD + "  - id: ''\n", 3, "keys[0].id", "must not be empty"),
        (HEAD + '  - id: "K\\u0007"\n', 3, "keys[0].id", "control characters"),
        (HEAD + '  - id: K1\n    name: "a\\nb"\n', 4, "keys[0].name", "control characters"),
        ("", 1, "", "file is empty"),
        (HEAD + "  - !!python/object:os.system {id: K1}\n", 3, "", "python/object:os.system' is not allowed"),
        (HEAD + "  - id: K1\n    customClaims: {1: x}\n", 4, "keys[0].customClaims", "keys must be strings, got 1"),
        (
            HEAD + "  - id: K1\n    keyTenants: [{tenantId: T}, {tenantId: T}]\n",
            4,
            "keys[0].keyTenants[1].tenantId",
            "listed twice",
        ),
        (HEAD + "  - id: K1\n    roleNames: [a, a]\n", 4, "keys[0].roleNames", "more than once"),
        ("version: 1\nkeys: []\n---\nversion: 1\n", 3, "", "expected a single document"),
        # null where a value is required: no "leave it unmanaged" advice
        ("version: 1\nkeys:\n", 2, "keys", "`keys` is required, so it cannot be null"),
        ("version:\nkeys: []\n", 1, "version", "`version` is required, so it cannot be null"),
        (
            HEAD + "  - id:\n",
            3,
            "keys[0].id",
            "`id` is null: give the key's id, or remove it to identify the key by its name",
        ),
        (
            HEAD + "  - id: K1\n    keyTenants: [{tenantId: }]\n",
            4,
            "keys[0].keyTenants[0].tenantId",
            "`tenantId` is required, so it cannot be null",
        ),
        (HEAD + "  -\n", 3, "keys[0]", "`keys[0]` is null: give it a value, or remove it"),
        (
            HEAD + "  - id: K1\n    customClaims: {tier: }\n",
            4,
            "keys[0].customClaims.tier",
            "`keys[0].customClaims.tier` is null: give it a value, or remove it",
        ),
        # IPs: each refused for its own reason
        (HEAD + "  - id: K1\n    permittedIps: [10.0.0.0/08]\n", 4, "keys[0].permittedIps[0]", "prefix length `08`"),
        (HEAD + "  - id: K1\n    permittedIps: ['fe80::1%eth0']\n", 4, "keys[0].permittedIps[0]", "zone id"),
        (
            HEAD + "  - id: K1\n    permittedIps: ['2001:0db8::1', '2001:db8::1']\n",
            4,
            "keys[0].permittedIps[1]",
            "`2001:db8::1` is a duplicate of `2001:0db8::1`",
        ),
    ],
)
def test_each_problem_has_its_own_located_message(text: str, line: int, field: str, needle: str) -> None:
    diagnostic = one(text)
    assert needle in diagnostic.message
    assert (diagnostic.line, diagnostic.field) == (line, field)
    assert diagnostic.render().startswith(f"f.yaml:{line}:")


@pytest.mark.parametrize(
    "ip", ["2001:db8:0::/48", "2001:DB8::/32", "::ffff:10.0.0.0/104", "10.0.0.0/8", "0.0.0.0/0", "::1"]
)
def test_network_addresses_written_in_full_are_accepted(ip: str) -> None:
    assert problems(HEAD + f"  - id: K1\n    permittedIps: ['{ip}']\n") == []


def test_no_line_is_given_as_known_when_the_structure_cannot_be_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Should PyYAML (even taught YAML 1.2) fail where yaml-rs read the file, no line is made up."""
    parsed = parse_text("f.yaml", (HEAD + "  - id: K1\n    roleNames: admin\n").encode())
    assert isinstance(parsed, ParsedFile)

    def unreadable(text: str, use: Any) -> Any:
        raise yaml.YAMLError("unreadable")  # PyYAML fails where yaml-rs read the file

    monkeypatch.setattr(yaml12, "read", unreadable)
    rendered = [d.render() for d in build_desired_state([parsed])[1]]
    assert rendered == [
        "f.yaml:1:1: error: `keys[0].roleNames` must be a list, got string 'admin' (line unknown: PyYAML cannot "
        "read this file as YAML 1.2: unreadable) [keys[0].roleNames]",
        "f.yaml:1:1: error: cannot tell the keys' lines: PyYAML cannot read this file as YAML 1.2: unreadable",
    ]


def test_a_file_named_twice_or_through_a_symlink_is_read_once(tmp_path: Path) -> None:
    folder = tmp_path / "desired"
    folder.mkdir()
    (folder / "ci.yaml").write_text(HEAD + "  - id: K1\n")
    (folder / "link.yml").symlink_to(folder / "ci.yaml")
    (tmp_path / "outside.yaml").symlink_to(folder / "ci.yaml")
    named = [str(folder), str(folder / "ci.yaml"), f"{folder}/../desired/ci.yaml", str(tmp_path / "outside.yaml")]
    result = run_cli(["validate", *named], cli_env(None))
    assert result.code == 0, result.output


def test_yaml_suffixes_in_any_case_and_other_named_files_refused(tmp_path: Path) -> None:
    (tmp_path / "a.YAML").write_text(HEAD + "  - id: K1\n    nmae: x\n")
    (tmp_path / "b.Yml").write_text(HEAD + "  - id: K1\n")
    (tmp_path / "notes.txt").write_text("not yaml")
    result = run_cli(["validate", str(tmp_path)], cli_env(None))
    assert result.code == 1
    assert f"{tmp_path / 'a.YAML'}:4:5: error: unknown field `nmae`" in result.stderr
    assert (
        f"{tmp_path / 'b.Yml'}:3:5: error: key id `K1` is already defined at {tmp_path / 'a.YAML'}:3" in result.stderr
    )
    named = run_cli(["validate", str(tmp_path / "notes.txt")], cli_env(None))
    assert named.code == 1 and "notes.txt: not a desired file: their names end in .yaml or .yml" in named.stderr


def test_a_final_newline_is_a_control_character_too(tmp_path: Path) -> None:
    """`name: |` keeps a final newline. The schemas' pattern once ended in `$`, which Python's regexes
    (jsonschema) also match before a final newline: the compiled check refused such a file, jsonschema
    found nothing to explain, and `validate` passed it. The same rule holds in the config."""
    (tmp_path / "keys.yaml").write_text(HEAD + '  - id: "K1\\n"\n    name: |\n      ci-deployer\n')
    (tmp_path / "prune.yaml").write_text('version: 1\nkeys: []\nprune: {namePrefix: "ci-\\n"}\n')
    result = run_cli(["validate", "--format", "github", str(tmp_path)], cli_env(None))
    assert result.code == 1
    for where in ("keys[0].id", "keys[0].name", "prune.namePrefix"):
        assert f"`{where}` must not contain control characters [{where}]" in result.stdout, result.output
    config = tmp_path / "descope-reconcile.yaml"
    config.write_text(f'version: 1\ntargets:\n  dev:\n    projectId: "P1\\n"\n    paths: [{tmp_path}]\n')
    result = run_cli(["validate", "--config", str(config)], cli_env(None))
    assert result.code == 1 and "`targets.dev.projectId` must not contain control characters" in result.stderr


def test_not_utf8_names_the_byte_and_line() -> None:
    diagnostic = one(b"version: 1\nkeys:\n  - id: K\xff1\n")
    assert (diagnostic.line, diagnostic.column) == (3, 10)
    assert "not valid UTF-8" in diagnostic.message


def test_size_limit_is_configurable() -> None:
    assert "over the limit of 10" in one("version: 1\nkeys: []\n", max_bytes=10).message


def test_alias_bomb_fails_fast_with_little_memory() -> None:
    lines = ["version: 1", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    started = time.perf_counter()
    diagnostic = problems("\n".join(lines) + "\nkeys: []\n")[-1]
    assert "alias bomb" in diagnostic.message
    assert time.perf_counter() - started < 5  # a generous bound: expanding it would take hours


def test_recursive_alias_is_rejected() -> None:
    assert "recursive" in one("version: 1\nkeys: &k [*k]\n").message


def test_every_problem_in_every_file_in_one_run_sorted(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text(HEAD + "  - id: K1\n    roleNames: x\n  - id: K2\n    nmae: y\n")
    (tmp_path / "a.yaml").write_text(HEAD + "  - id: K2\n  - id: K3\n    permittedIps: [nope]\n")
    (tmp_path / "c.yml").write_text("version: 7\n")
    loaded = load_desired([str(tmp_path)])
    rendered = [d.render().replace(str(tmp_path) + "/", "") for d in loaded.diagnostics]
    assert rendered == [
        "a.yaml:5:20: error: `nope` is not an IP address or CIDR range [keys[1].permittedIps[0]]",
        "b.yaml:4:16: error: `keys[0].roleNames` must be a list, got string 'x' [keys[0].roleNames]",
        "b.yaml:5:5: error: key id `K2` is already defined at a.yaml:3 [keys[1].id]",
        "b.yaml:6:5: error: unknown field `nmae`: did you mean `name`? [keys[1].nmae]",
        "c.yml:1:1: error: 'keys' is required",
        "c.yml:1:10: error: unsupported version 7: supported versions are 1 [version]",
    ]


def test_validation_errors_mean_no_network_call_at_all(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator([{"id": "K1", "name": "a"}])
    (tmp_path / "k.yaml").write_text(HEAD + "  - id: K1\n    name: b\n    roleNames: admin\n")
    for command in ("plan", "apply"):
        result = run_cli([command, str(tmp_path)], cli_env(emulator))
        assert result.code == 1
        assert "k.yaml:5:16: error:" in result.stderr and "nothing was sent" in result.stderr
    assert emulator.requests == []


def test_output_formats_text_github_json(tmp_path: Path) -> None:
    path = tmp_path / "k.yaml"
    path.write_text(HEAD + "  - id: K1\n    roleName: [a]\n")
    env = cli_env(None)
    text = run_cli(["validate", str(path)], env)
    assert text.code == 1 and f"{path}:4:5: error: unknown field `roleName`" in text.stderr
    github = run_cli(["validate", "--format", "github", str(path)], env)
    assert github.code == 1
    assert github.stdout.startswith(f"::error file={path},line=4,col=5::unknown field `roleName`")
    as_json = run_cli(["validate", "--format", "json", str(path)], env)
    assert json.loads(as_json.stdout) == [
        {
            "path": str(path),
            "line": 4,
            "column": 5,
            "message": "unknown field `roleName`: did you mean `roleNames`?",
            "field": "keys[0].roleName",
        }
    ]
    (tmp_path / "k.yaml").write_text(HEAD + "  - id: K1\n")
    assert json.loads(run_cli(["validate", "--format", "json", str(path)], env).stdout) == []


def test_missing_path_and_folder_without_yaml_are_clear_errors(tmp_path: Path) -> None:
    missing = run_cli(["validate", str(tmp_path / "nope")], cli_env(None))
    assert missing.code == 1 and "no such file or folder" in missing.stderr
    empty = run_cli(["validate", str(tmp_path)], cli_env(None))
    assert empty.code == 1 and "no *.yaml or *.yml files" in empty.stderr


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=st.one_of(json_values, st.fixed_dictionaries({"version": st.just(1), "keys": st.lists(json_values)})))
def test_arbitrary_structures_never_crash(document: Any) -> None:
    text = json.dumps(document)  # JSON is YAML: arbitrary structures, parsed by the real loader
    for diagnostic in problems(text):
        assert diagnostic.line >= 1 and diagnostic.message


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_arbitrary_bytes_never_crash(raw: bytes) -> None:
    for diagnostic in problems(raw):
        assert diagnostic.line >= 1 and diagnostic.message


def test_fuzzed_cli_ends_with_exit_1_and_a_message_never_a_traceback(tmp_path: Path) -> None:
    samples = [b"\x00\x01", b"version: 1\nkeys: [{id: K, customClaims: [1]}]", b"{{{{", b"version: 1\nkeys: &a [*a]"]
    for index, raw in enumerate(samples):
        (tmp_path / f"f{index}.yaml").write_bytes(raw)
    result = run_cli(["validate", str(tmp_path)], cli_env(None))
    assert result.code == 1 and "Traceback" not in result.output
    assert {line.split(":")[0] for line in result.stderr.splitlines() if ": error: " in line} == {
        str(tmp_path / f"f{i}.yaml") for i in range(len(samples))
    }


@pytest.mark.slow
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.binary(max_size=300) | json_values.map(lambda value: json.dumps(value).encode()))
def test_the_command_line_always_ends_with_an_exit_code_never_a_traceback(raw: bytes) -> None:
    """Any bytes at all, through the real entry point: exit 0 (valid) or 1 (with a message)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzzed.yaml"
        path.write_bytes(raw)
        result = run_cli(["validate", str(path)], os.environ)  # (which puts back the logging it set up)
    assert result.code in (0, 1)
    if result.code == 1:
        assert f"{path}:" in result.stderr and "validation error" in result.stderr


@settings(max_examples=400, deadline=None)
@given(text=st.text(alphabet="0123456789.٣", max_size=16) | st.ip_addresses(v=4).map(str))
def test_the_ipv4_shortcut_accepts_exactly_what_ipaddress_accepts(text: str) -> None:
    try:
        expected: int | None = int(ipaddress.IPv4Address(text))
    except ValueError:
        expected = None
    assert validation._ipv4_value(text) == expected
