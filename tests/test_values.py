"""YAML 1.2 as docs/desired-format.md promises it, from both readers: the values (yaml-rs, corrected where it
strays from the core schema) and the structure and positions (PyYAML read as YAML 1.2) agree on
every scalar, whichever path a file takes."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconcile.desired import yaml12
from reconcile.desired.loader import ParsedFile, parse_text
from tests.conftest import cli_env, run_cli

INF = math.inf
# (the scalar as written, the value YAML 1.2's core schema gives it)
SCALARS: list[tuple[str, Any]] = [
    # integers: decimal (leading zeros are decimal), 0o octal, 0x hex; nothing else
    ("12", 12),
    ("-0", 0),
    ("+12", 12),
    ("017", 17),
    ("0o17", 15),
    ("0x1F", 31),
    ("9007199254740993", 9007199254740993),
    ("1_000", "1_000"),  # YAML 1.1's digit separators: a string in YAML 1.2
    ("_1", "_1"),
    ("1e_3", "1e_3"),
    ("0X1F", "0X1F"),
    ("0O17", "0O17"),
    ("0b101", "0b101"),  # YAML 1.1's binary
    ("+0x1F", "+0x1F"),  # no sign before hex or octal
    ("-0o7", "-0o7"),
    ("1,000", "1,000"),
    # floats
    ("1.5", 1.5),
    (".5", 0.5),
    ("1.", 1.0),
    ("1e3", 1000.0),
    ("-1.5E-3", -0.0015),
    ("1_0.5", "1_0.5"),
    ("-.inf", -INF),
    (".Inf", INF),
    ("+.INF", INF),
    (".NaN", math.nan),
    (".nan", math.nan),
    (".iNf", ".iNf"),
    ("inf", "inf"),
    ("NaN", "NaN"),
    # booleans: true and false in three spellings, nothing else
    ("true", True),
    ("True", True),
    ("FALSE", False),
    ("tRue", "tRue"),
    ("yes", "yes"),
    ("no", "no"),
    ("on", "on"),
    ("off", "off"),
    ("y", "y"),
    # null
    ("~", None),
    ("null", None),
    ("Null", None),
    ("NULL", None),
    ("", None),
    ("nUll", "nUll"),
    # what YAML 1.1 reads as timestamps, sexagesimals, merge keys: strings
    ("2024-01-01", "2024-01-01"),
    ("2001-12-14t21:59:43.10-05:00", "2001-12-14t21:59:43.10-05:00"),
    ("12:30", "12:30"),
    ("190:20:30", "190:20:30"),
    ("<<", "<<"),
    ("=", "="),
    # quoted: always strings
    ("'12'", "12"),
    ('"true"', "true"),
    ("'~'", "~"),
    ('"1_000"', "1_000"),
    ("'0o17'", "0o17"),
    ('"\\t"', "\t"),
]
# Every path a file can take: the quick one; node checks for a `!` or a `&`; a text libyaml
# cannot read (a tab after a colon: both readers have to cope); a YAML 1.1 line break.
PATHS = {
    "quick": "",
    "tags checked": "# !\n",
    "anchors checked": "# &\n",
    "a tab after a colon": "t:\tx\n",
    "libyaml misreads": "t: [?x]\n",
}
TAG_TYPES = {yaml12.NULL: type(None), yaml12.BOOL: bool, yaml12.INT: int, yaml12.FLOAT: float, yaml12.STR: str}


def same(got: Any, wanted: Any) -> bool:
    if isinstance(wanted, float) and math.isnan(wanted):
        return isinstance(got, float) and math.isnan(got)
    return type(got) is type(wanted) and got == wanted


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("scalar", "value"), SCALARS, ids=[repr(s) for s, _ in SCALARS])
def test_both_readers_read_each_scalar_as_yaml_1_2(scalar: str, value: Any, path: str) -> None:
    text = f"{PATHS[path]}value: {scalar}\nlisted:\n  - {scalar}\n"
    parsed = parse_text("f.yaml", text.encode())
    assert isinstance(parsed, ParsedFile), parsed
    assert same(parsed.data["value"], value) and same(parsed.data["listed"][0], value), parsed.data
    root = yaml12.compose(text)
    assert isinstance(root, yaml.MappingNode)
    nodes = {key.value: node for key, node in root.value}
    assert TAG_TYPES[nodes["value"].tag] is type(value)  # the structure reader resolves alike
    assert TAG_TYPES[nodes["listed"].value[0].tag] is type(value)


STRINGS = [(s, v) for s, v in SCALARS if isinstance(v, str) and s not in ("", "<<")]  # `<<:` is refused


@pytest.mark.parametrize(("scalar", "value"), STRINGS)
def test_string_scalars_are_string_keys_too(scalar: str, value: str) -> None:
    parsed = parse_text("f.yaml", f"{scalar}: x\n# !\n".encode())
    assert isinstance(parsed, ParsedFile) and not parsed.problems, parsed
    assert list(parsed.data) == [value]


def test_explicit_core_tags_must_fit_their_type() -> None:
    parsed = parse_text("f.yaml", b"a: !!int 1_000\nb: !!str 12\nc: !!float 1\n")
    assert isinstance(parsed, ParsedFile)
    assert [(p.line, p.message) for p in parsed.problems] == [(1, "'1_000' is not a YAML 1.2 int")]
    assert parsed.data["b"] == "12" and parsed.data["c"] == 1.0


def test_tabs_separate_but_never_indent() -> None:
    parsed = parse_text("f.yaml", b"version: 1\nkeys:\n  - id:\tK1\n    name:\tci\t# a comment\n")
    assert isinstance(parsed, ParsedFile) and parsed.data["keys"] == [{"id": "K1", "name": "ci"}]
    assert parsed.key_lines() == [(3, 5)]
    refused = parse_text("f.yaml", b"version: 1\nkeys:\n  - id: K1\n\tname: x\n")
    assert isinstance(refused, list)
    assert (refused[0].line, refused[0].column) == (4, 1)
    assert "tabs are not allowed for indentation" in refused[0].message


def test_a_tab_after_a_colon_validates_and_keeps_locations(tmp_path: Path) -> None:
    path = tmp_path / "k.yaml"
    path.write_text("version: 1\nkeys:\n  - id:\tK1\n    name:\tci\n    description: 'a:\tb'\n")
    assert run_cli(["validate", str(path)], cli_env(None)).code == 0
    path.write_text("version: 1\nkeys:\n  - id:\tK1\n    name:\tci\n    roleNames:\tadmin\n")
    result = run_cli(["validate", str(path)], cli_env(None))
    assert result.code == 1
    assert f"{path}:5:16: error: `keys[0].roleNames` must be a list, got string 'admin'" in result.stderr


def test_yaml_1_1_line_breaks_are_text_and_do_not_move_lines() -> None:
    text = "version: 1\nkeys:\n  - id: K1\n    description: a\u2028b\n  - id: K2\n    nmae: x\n"
    parsed = parse_text("f.yaml", text.encode())
    assert isinstance(parsed, ParsedFile)
    assert parsed.data["keys"][0]["description"] == "a\u2028b"
    assert parsed.key_lines() == [(3, 5), (5, 5)]
    assert parsed.locate(["keys", 1, "nmae"], key=True) == (6, 5)
