"""The fast paths mean exactly what the slow ones mean: the compiled schema check agrees with
jsonschema, key lines read from parse events agree with the node marks, and values are YAML 1.2's,
whichever path a file takes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from reconcile.cli import build_parser
from reconcile.desired import keyindex, validation, yaml12, yamlcheck
from reconcile.desired.loader import ParsedFile, parse_text
from reconcile.job.load import load_desired
from reconcile.model import DESIRED_FIELDS
from reconcile.schemas import validators
from reconcile.schemas.validators import DESIRED_SCHEMA, is_valid, validator
from tests.conftest import cli_env, run_cli

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6)
scalars |= st.text(max_size=3).map(lambda text: text + "\n")  # `$` of a pattern: where regex dialects differ
anything = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
names = st.sampled_from(["a", "b", "10.0.0.0/8", "", "x\x07"])
plausible = {
    "id": st.text(min_size=0, max_size=4) | st.integers(),
    "name": names | st.integers(),
    "description": st.text(max_size=4) | st.none(),
    "roleNames": st.lists(names, max_size=3) | names,
    "keyTenants": st.lists(
        st.fixed_dictionaries({"tenantId": names}, optional={"roleNames": st.lists(names, max_size=2), "x": scalars}),
        max_size=2,
    ),
    "customClaims": st.dictionaries(st.text(max_size=3), scalars | st.lists(scalars, max_size=2), max_size=3),
    "customAttributes": st.dictionaries(
        st.text(max_size=3), scalars | st.lists(scalars | anything, max_size=2), max_size=3
    ),
    "permittedIps": st.lists(names, max_size=3, unique=False),
    "status": st.sampled_from(["active", "inactive", "paused"]),
    "roleName": anything,
}
key_items = st.fixed_dictionaries({}, optional=plausible) | anything
documents = (
    st.fixed_dictionaries({"version": st.sampled_from([1, 2, "1", True]), "keys": st.lists(key_items, max_size=3)})
    | anything
)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=documents)
def test_compiled_check_agrees_with_jsonschema(document: Any) -> None:
    assert quick_verdicts(DESIRED_SCHEMA, document) <= {validator(DESIRED_SCHEMA).is_valid(document)}


def quick_verdicts(schema: str, document: Any) -> set[bool]:
    """What the quick checks say: the compiled one (small documents) and jsonschema-rs (large ones,
    unless the document holds what JSON cannot: then the compiled one decides)."""
    verdicts = {is_valid(schema, document)}
    with contextlib.suppress(ValueError, TypeError):
        json.dumps(document, allow_nan=False)  # a large document is JSON (YAML's `.inf` is refused apart)
        verdicts.add(validators._native(schema)(document))
    return verdicts


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.fixed_dictionaries({}, optional=plausible))
def test_compiled_check_agrees_on_request_bodies(body: dict[str, Any]) -> None:
    """A key item is a request body (by `$ref`), plus the fields only a create sends."""
    document = {"version": 1, "keys": [{"id": "K1", **body}]}
    assert quick_verdicts(DESIRED_SCHEMA, document) <= {validator(DESIRED_SCHEMA).is_valid(document)}


def test_a_large_document_is_checked_natively_and_agrees(monkeypatch: pytest.MonkeyPatch) -> None:
    keys = [{"id": f"K{i}", "name": "n", "customClaims": {"big": 2**70, "tier": 1.5}} for i in range(3)]
    monkeypatch.setattr(validators, "LARGE_DOCUMENT_KEYS", 3)
    for document, valid in (
        ({"version": 1, "keys": keys}, True),
        ({"version": 1, "keys": [*keys[:2], {"id": "K\n"}]}, False),  # a control character
        ({"version": 1, "keys": [*keys[:2], {"id": "K9", 1: "x"}]}, False),  # JSON has no such key
    ):
        assert is_valid(DESIRED_SCHEMA, document) is valid
        assert validator(DESIRED_SCHEMA).is_valid(document) is valid


_IPS = ["10.0.0.0/8", "10.0.0.1/8", "10.0.0.1", "10.0.0.1/32", "010.0.0.1", "10.0.0.01", "::1", "0::1", "fe80::1%eth0"]
_IPS += ["1.2.3.4/033", "1.2.3.4/33", "", "x", "0.0.0.0/0", "::/0", "::1/129", "2001:db8::/32"]
ips = st.sampled_from(_IPS) | st.integers() | st.lists(st.sampled_from(_IPS), max_size=1)
numbers = (
    st.sampled_from([float("inf"), float("nan"), 1.5]) | st.integers() | st.booleans() | st.none() | st.text(max_size=2)
)
values = numbers | st.lists(
    numbers | st.lists(numbers, max_size=1) | st.dictionaries(st.text(max_size=1), numbers), max_size=2
)
maps = st.dictionaries(st.text(max_size=2), values, max_size=3) | st.dictionaries(
    st.integers() | st.booleans() | st.none() | st.floats(), values, max_size=2
)
semantic_items = st.fixed_dictionaries(
    {},
    optional={  # mostly as a key is written, so that what the quick look lets through is searched
        "keyTenants": st.one_of(
            *[st.lists(st.fixed_dictionaries({"tenantId": st.sampled_from(["t1", "t2"])}))] * 3, anything
        ),
        "roleNames": st.lists(st.sampled_from(["a", "b"]), max_size=2) | anything,
        "customClaims": st.one_of(*[maps] * 3, anything),
        "customAttributes": st.one_of(*[maps] * 3, anything),
        "permittedIps": st.one_of(*[st.lists(ips, max_size=3)] * 3, ips),
        "waivers": st.lists(st.fixed_dictionaries({"until": st.sampled_from(["2024-02-30", "2024-01-01", "x", 1])}))
        | anything,
        "name": names,
    },
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(item=semantic_items)
@example(item={"customClaims": {"a": [1, float("inf")]}})
@example(item={"customAttributes": {"a": float("nan")}})
@example(item={"customAttributes": {1: "x"}})
@example(item={"keyTenants": [{"tenantId": "t1"}, {"tenantId": "t1"}]})
@example(item={"keyTenants": [{"tenantId": "t1"}], "roleNames": ["a"]})
@example(item={"permittedIps": ["10.0.0.1", "10.0.0.1/32", "010.0.0.1"]})
@example(item={"permittedIps": ["::1", "0::1"]})
@example(item={"waivers": [{"rule": "r", "reason": "r", "until": "2024-02-30"}]})
def test_a_key_said_to_have_no_problem_has_none(item: dict[str, Any]) -> None:
    """The quick look at a key (_may_have_problems) says False only where the checks that explain
    find nothing: no IP written wrong or twice, no infinite number, no tenant twice, ..."""
    assert validation._may_have_problems(item) or not validation._semantic_problems(item, ["keys", 0])


def test_a_plain_key_is_not_looked_at_twice() -> None:
    """The quick look does answer False for the keys a project is made of (else it saves nothing)."""
    keys = [
        {"id": "K1", "roleNames": ["a"], "keyTenants": [], "customClaims": {"t": 1, "p": True, "s": "x"}},
        {"id": "K2", "keyTenants": [{"tenantId": "t1", "roleNames": ["a"]}], "permittedIps": ["10.0.0.0/8", "::1"]},
        {"id": "K3", "customAttributes": {"regions": ["eu", "us"], "n": None, "l": [[1]]}, "status": "active"},
    ]
    assert [validation._may_have_problems(key) for key in keys] == [False, False, False]


@settings(max_examples=300, deadline=None)
@given(
    names=st.permutations(["id", *DESIRED_FIELDS, "waivers", "x"]).flatmap(
        lambda order: st.lists(st.sampled_from(order), unique=True).map(
            lambda picked: [n for n in order if n in picked]
        )
    ),
    defaults=st.dictionaries(st.sampled_from(DESIRED_FIELDS), st.integers(), max_size=2),
)
def test_a_keys_fields_are_the_same_copied_or_picked(names: list[str], defaults: dict[str, Any]) -> None:
    """Fields in model order are the item copied without `id`; in any other order or with defaults,
    picked one by one: the same fields, in the same order, either way."""
    item = {name: index for index, name in enumerate(names)}
    merged = {**defaults, **item}
    expected = {name: merged[name] for name in DESIRED_FIELDS if name in merged}
    fields = validation._fields(item, defaults)
    assert list(fields.items()) == list(expected.items())
    assert item == {name: index for index, name in enumerate(names)}  # (the item itself is left alone)


ROOT = Path(__file__).resolve().parents[1]
LAYOUTS = [
    "version: 1\nkeys:\n  - id: K1\n    name: a\n  - id: K2\n",
    "version: 1\nkeys:\n- id: K1\n- name: b\n  id: K2\n",  # id not first
    'version: 1\nkeys:\n  - {id: K1, name: a}\n  - {name: b, id: "K2"}\n',  # flow style
    "version: 1\nkeys:\n  - id: 'K1'  # a comment\n    customAttributes: {id: K2}\n  - id: K2\n",  # nested id
    'version: 1\nkeys:\n  -   id:    K1\n  - "id": K2\n',
    "# header\nversion: 1\n\nkeys:\n\n  - id: K1\n    customAttributes:\n      id: K1\n  - id: K2\n",
    # Text that looks like a key's id: in a block scalar, a quoted string, a flow mapping
    "version: 1\nkeys:\n  - id: K1\n    description: |\n      id: K2\n  - id: K2\n",
    'version: 1\nkeys:\n  - id: K1\n    description: "x\n      id: K2"\n  - id: K2\n',
    "version: 1\nkeys:\n  - id: K1\n    customAttributes: {x: y,\n      id: K2}\n  - name: b\n    id: K2\n",
    "version: 1\nkeys:\n  - id: >-\n      K1\n  - id: K2\n",  # a folded id
    "version: 1\nkeys:\n  - {name: x}\n  - [a]\n  - id: K3\n",  # items without an id
    "version: 1\nkeys:\n  - id:\tK1\n  - id:   K2\n",  # a tab as separation: libyaml refuses it
    "version: 1\nother: {keys: [{id: K0}]}\nkeys:\n  - id: K1\n",
    # a `keys:` layout inside a flow value running down to column 0, the real `keys` in flow style
    'version: 1\ndefaults: {description: "\nkeys:\n  - id: K0\n"}\nkeys: [{id: K0, name: a}]\n',
    '{version: 1, defaults: {description: "\nkeys:\n  - id: K0\n"},\n keys: [{id: K0, name: a}]}\n',
    'version: 1\nnote: {a: "\nkeys:\n  - id: K0\n"}\n"keys":\n  - id: K0\n',
    "%YAML 1.2\n---  # a document start\nversion: 1\nkeys:\n  - id: K1\n  - id: K2\n",
    # an item's flow value down to column 0 (the list seems to end there), an item inside its text
    'version: 1\nkeys:\n  - name: n\n    customClaims: {a: "\n  - id: K0\nx"}\n  - id: K0\n    name: a\n',
    # an item inside a flow value's text, the real one opening with `-` alone or `- #`
    'version: 1\nkeys:\n  - name: n\n    customClaims: {a: "\n  - name: m\n  "}\n  -\n    name: m\n',
    'version: 1\nkeys:\n  - name: n\n    customClaims: {a: "\n  - name: m\n  "}\n  - # c\n    name: m\n',
]


@pytest.mark.parametrize(
    "text", ["---\nversion: 1\nkeys:\n  - id: K1\n", "# c\n%YAML 1.2\n---\n\nversion: 1\nkeys:\n  - id: K1\n"]
)
def test_the_key_index_reads_a_block_root_after_a_document_start(text: str) -> None:
    """Proving the root a block mapping must not send such files to the parse events."""
    parsed = parse_text("f.yaml", text.encode())
    assert isinstance(parsed, ParsedFile)
    assert keyindex.key_positions(text, parsed.data["keys"]) == [(text.count("\n"), 5)]  # the last line


@pytest.mark.parametrize("text", LAYOUTS)
def test_key_lines_match_node_marks(text: str) -> None:
    parsed = parse_text("f.yaml", text.encode())
    assert isinstance(parsed, ParsedFile)
    root = yaml12.compose(text)
    expected = [yamlcheck.locate(root, ["keys", i, "id"], key=True) for i in range(len(parsed.data["keys"]))]
    assert parsed.key_lines() == expected
    assert yamlcheck.key_id_positions(text) == expected


@pytest.mark.parametrize("text", LAYOUTS)
def test_the_key_index_gives_the_node_marks_or_nothing(text: str) -> None:
    parsed = parse_text("f.yaml", text.encode())
    assert isinstance(parsed, ParsedFile)
    root = yaml12.compose(text)
    expected = [yamlcheck.locate(root, ["keys", i, "id"], key=True) for i in range(len(parsed.data["keys"]))]
    assert keyindex.key_positions(text, parsed.data["keys"]) in (None, expected)


# Lines an item may hold besides its id: some look like an id line or an item line to a careless scan.
_FIELD_LINES = [
    "name: x",
    "description: |\n{deeper}id: {other}\n{deeper}- id: {other}",
    'description: "a\n{deeper}id: {other}"',
    "customAttributes: {{x: y,\n{deeper}id: {other}}}",
    "customAttributes:\n{deeper}id: {other}",
    "# id: {other}",
    "roleNames: [a, b]  # a comment",
    "description: >-\n{deeper}folded\n\n{deeper}- id: {other}",
    "permittedIps:\n{deeper}- 10.0.0.0/8",
]
_ID_SPELLINGS = ["id: {id}", 'id: "{id}"', "id: '{id}'", "id:   {id}  # the id", "id: >-\n{deeper}{id}", "id: {id}x"]


@st.composite
def block_layouts(draw: st.DrawFn) -> str:
    indent = draw(st.sampled_from([0, 2, 4]))
    gap = draw(st.sampled_from([1, 1, 3]))
    column = indent + 1 + gap
    deeper = " " * (column + draw(st.sampled_from([1, 2])))
    lines = [draw(st.sampled_from(["", "# header\n"])) + "version: 1", "keys:"]
    for index in range(draw(st.integers(min_value=1, max_value=4))):
        fields = [draw(st.sampled_from(_FIELD_LINES)) for _ in range(draw(st.integers(0, 3)))]
        if draw(st.booleans()):  # an item without an id is located at its first field
            fields.insert(draw(st.integers(0, len(fields))), draw(st.sampled_from(_ID_SPELLINGS)))
        fields = fields or ["name: n"]
        values = {"id": f"K{index}", "other": f"K{index + 1}", "deeper": deeper}
        text = "\n".join(field.format(**values) for field in fields).replace("\n", "\n" + " " * column)
        lines.append(" " * indent + "-" + " " * gap + text)
        lines += draw(st.lists(st.sampled_from(["", " " * indent + "# between"]), max_size=1))
    lines += draw(st.lists(st.sampled_from(["prune: {namePrefix: ci-}", "# trailer", "defaults:\n  description: d"])))
    return "\n".join(lines) + "\n"


def keys_and_node_marks(text: str) -> tuple[list[Any], list[tuple[int, int]]]:
    """The keys yaml-rs reads in a generated file, and each one's position by the node marks (the
    reference every key-line reading is held to); a text PyYAML or yaml-rs cannot read is skipped."""
    try:
        root = yaml12.compose(text)
    except yaml.YAMLError:
        assume(False)
    parsed = parse_text("f.yaml", text.encode())
    assume(isinstance(parsed, ParsedFile) and isinstance(parsed.data, dict))
    assert isinstance(parsed, ParsedFile)
    keys = parsed.data["keys"]
    return keys, [yamlcheck.locate(root, ["keys", i, "id"], key=True) for i in range(len(keys))]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=block_layouts())
def test_the_key_index_agrees_with_the_parse_events(text: str) -> None:
    """Wherever the index answers, it answers what the node marks say; and it answers for the plain
    layouts people write (else big files would quietly take the slow path)."""
    keys, expected = keys_and_node_marks(text)
    indexed = keyindex.key_positions(text, keys)
    assert indexed in (None, expected)
    assert keyindex.key_positions(text, keys, keyindex.prescan(text)) == indexed
    plain = all(isinstance(key, dict) and (key.get("id") is None or key["id"].startswith("K")) for key in keys)
    unusual = ("id: >-",)  # a folded id: what the index leaves to the events
    if plain and not any(part in text for part in unusual) and not re.search(r"^ *- +#", text, re.MULTILINE):
        assert indexed == expected


# Ways to write an item that opens with its id (or not): the quick scan must take the first three,
# and may take another only where it places the key as the parse events do.
_OPENING_IDS = [
    'id: "{id}"',
    "id: {id}",
    'id:   "{id}"  ',
    "id: {id}  ",
    "id: '{id}'",
    'id: "{id}"  # c',
    "id: {id} # c",
    'id: "{id}\n{deeper}"',
    'id: {id}"',
    'id: "{id}\n{deeper}x"',
    "id: {id}\n{deeper}x",
    "id: !!str {id}",
    "id: &a {id}",
    'id: "{id}\\t"',
    "id: 12",
    "id: ~",
    "id:\n{deeper}{id}",
    "id: {id}\n# id: {other}",
    "name: n{id}",  # no id: the item is placed at its first field
    "# id: {id}",  # no id, nor any field
]


@st.composite
def id_first_layouts(draw: st.DrawFn) -> tuple[str, bool]:
    """A `keys` list whose items open as `_OPENING_IDS` says (some with fields after it, some
    followed by a top-level section), and whether the quick scan must take it."""
    indent = draw(st.sampled_from([0, 2]))
    gap = draw(st.sampled_from([1, 3]))
    column = indent + 1 + gap
    deeper = " " * (column + 2)
    spellings = draw(st.lists(st.sampled_from(_OPENING_IDS), min_size=1, max_size=4))
    lines = ["version: 1", "keys:"]
    for index, spelling in enumerate(spellings):
        values = {"id": f"K{index}", "other": f"K{index + 1}", "deeper": deeper}
        more = draw(st.lists(st.sampled_from(["name: x", "roleNames: [a, b]  # a comment"]), unique=True))
        fields = [spelling.format(**values), *more]
        lines.append(" " * indent + "-" + " " * gap + "\n".join(fields).replace("\n", "\n" + " " * column))
    after = ["prune: {namePrefix: ci-}", "# trailer", "keys2: 1"]
    lines += draw(st.lists(st.sampled_from(after), max_size=2, unique=True))
    return "\n".join(lines) + "\n", all(spelling in _OPENING_IDS[:3] for spelling in spellings)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layout=id_first_layouts())
def test_the_quick_scan_of_an_exported_layout_agrees_with_the_parse_events(layout: tuple[str, bool]) -> None:
    """The quick scan answers only what the node marks say, and does answer for `export`'s layout;
    where it declines, the item-by-item reading still answers right or not at all."""
    text, quick = layout
    keys, expected = keys_and_node_marks(text)
    head = text.index("\nkeys:") + len("\nkeys:")
    first = re.compile(r"\n( *)-( +)").search(text, head)
    assert first is not None
    indent, gap = len(first.group(1)), len(first.group(2))
    marks, spelled, end = keyindex._the_id_first(text, first.start(), indent, gap)
    taken = len(marks) == len(keys) and None not in spelled and spelled == keyindex._ids(keys)
    assert taken or not quick
    if taken:
        assert keyindex._each_item(text, keys, first.start(), indent, indent + 1 + gap) == (marks, end)
    assert keyindex.key_positions(text, keys) in (None, expected)
    # The text-only half (read while yaml-rs reads the text) answers the same, or leaves it to the rest.
    scanned = keyindex.prescan(text)
    assert keyindex.key_positions(text, keys, scanned) in (None, expected)
    if quick:
        assert keyindex.key_positions(text, keys) == expected
        assert scanned is not None
        assert keyindex.key_positions(text, keys, scanned) == expected


def test_the_key_index_reads_an_export_of_many_keys() -> None:
    from reconcile.output.export import render_export  # noqa: PLC0415

    keys = [{"id": f"K{i}", "name": f"n{i}", "description": "id: K0\n- id: K1", "permittedIps": []} for i in range(50)]
    text = render_export(keys, source="a test")
    parsed = parse_text("f.yaml", text.encode())
    assert isinstance(parsed, ParsedFile)
    expected = [yamlcheck.locate(yaml12.compose(text), ["keys", i, "id"], key=True) for i in range(50)]
    assert keyindex.key_positions(text, parsed.data["keys"]) == expected


def test_a_block_scalar_that_mentions_an_id_does_not_move_the_key(start_emulator: Any, tmp_path: Path) -> None:
    """The report's source line of K2 is its own `id:` line, not a line of text that looks like it."""
    (tmp_path / "k.yaml").write_text(
        "version: 1\nkeys:\n  - id: K1\n    description: |\n      id: K2\n  - id: K2\n    name: x\n"
    )
    loaded = load_desired([str(tmp_path)])
    assert [(key.id, key.source.line, key.source.column) for key in loaded.state.keys] == [("K1", 3, 5), ("K2", 6, 5)]
    emulator = start_emulator([{"id": "K1", "description": "id: K2\n"}, {"id": "K2", "name": "y"}])
    report = tmp_path / "report.json"
    assert run_cli(["plan", str(tmp_path), "--report", str(report)], cli_env(emulator)).code == 2
    lines = {key["id"]: key["source"]["line"] for key in json.loads(report.read_text())["keys"]}
    assert lines == {"K1": 3, "K2": 6}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("yes", "yes"),  # YAML 1.2: not a boolean (PyYAML would say True)
        ("on", "on"),
        ("true", True),
        ("017", 17),
        ("0o17", 15),
        ("2024-01-01", "2024-01-01"),  # not a date object
        ("'007'", "007"),
        ("1.5", 1.5),
    ],
)
def test_values_follow_yaml_1_2_on_every_path(text: str, value: Any) -> None:
    for extra in ("", "# an ! makes the node checks run too\n", "# an & as well\n"):
        parsed = parse_text(
            "f.yaml", f"{extra}version: 1\nkeys:\n  - id: K1\n    customClaims: {{c: {text}}}\n".encode()
        )
        assert isinstance(parsed, ParsedFile)
        claim = parsed.data["keys"][0]["customClaims"]["c"]
        assert claim == value and type(claim) is type(value)


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(
    document=st.fixed_dictionaries(
        {
            "version": st.just(1),
            "keys": st.lists(
                st.fixed_dictionaries(
                    {"id": st.text(min_size=1, max_size=5)}, optional={k: v for k, v in plausible.items() if k != "id"}
                ),
                max_size=3,
            ),
        }
    )
)
def test_json_documents_read_the_same_as_json(document: dict[str, Any]) -> None:
    """JSON is YAML: any JSON document must come back unchanged (floats aside, which JSON rounds)."""
    try:
        text = json.dumps(document, allow_nan=False)
    except ValueError:
        assume(False)  # infinities are not JSON
    parsed = parse_text("f.json.yaml", text.encode())
    if isinstance(parsed, ParsedFile):
        assert parsed.data == json.loads(text)


def test_pyyaml_is_never_asked_for_values() -> None:
    # yaml-rs reads `yes` as a string; were PyYAML's constructor used anywhere, this would be True.
    text = "version: 1\nkeys:\n  - id: K1\n    customClaims: {c: yes}\n  - id: K1\n"
    parsed = parse_text("f.yaml", text.encode())
    assert isinstance(parsed, ParsedFile) and parsed.data["keys"][0]["customClaims"] == {"c": "yes"}
    assert yaml.safe_load(text)["keys"][0]["customClaims"] == {"c": True}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(alphabet=st.sampled_from(list("ab:-?[]{},#&*!|>'\"%@` \t\n\u2028.0_x")), max_size=60))
def test_the_yaml_1_2_scanner_fails_only_with_yaml_errors(text: str) -> None:
    """Scanner12 reads what libyaml refuses: on any text it gives nodes or a YAML error, never a crash."""
    try:
        yaml12.Loader12(text).get_single_node()
        yaml12.space_tabs_after_colons(text)
    except yaml.YAMLError:
        pass


# What `validate` of valid files must not import: the pre-commit hook starts it on every commit.
NOT_FOR_VALIDATE = (
    "jsonschema",  # only to explain errors
    "referencing",
    "fastjsonschema",  # its code was generated with the schemas (reconcile/schemas/compiled)
    "importlib.metadata",  # the version comes from reconcile/_version.py
    "importlib.resources",  # the schemas are read only to explain errors
    "asyncio",
    "httpx",
    "reconcile.client.descope",
    "reconcile.plan.diff",
    "reconcile.trail",
    "reconcile.config.targets",  # only with a config
    "reconcile.output.targets",
    "tempfile",  # only to write
    "uuid",
    # only with a policy (--policy FILE, or a config's `policy:`)
    "reconcile.policy",
    "reconcile.config.policy",
    "reconcile.job.policy",
    "reconcile.output.policy",
    "reconcile.output.sarif",
    # PyYAML: only where a file needs its nodes (a tag, an anchor, a number YAML 1.2 reads as text,
    # a layout the key index cannot prove, an error to locate)
    "yaml",
    "reconcile.desired.yaml12",
    "reconcile.desired.yamlcheck",
)


def test_validate_of_valid_files_imports_nothing_it_does_not_need(tmp_path: Path) -> None:
    """Through the real command line, as the hook runs it: a valid folder, then the same check on a
    file with an error proves the probe sees imports (jsonschema explains it)."""
    probe = (
        "import json, sys\n"
        "from reconcile.cli import main\n"
        "code = main(sys.argv[1:])\n"
        # imported: not a name marked absent (None), as reconcile/client/__init__.py marks httpx._main
        "print(json.dumps([code, sorted(name for name, module in sys.modules.items() if module)]))\n"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nkeys:\n  - id: K1\n    roleNames: admin\n", encoding="utf-8")
    imported = {}
    for name, folder in (("valid", str(ROOT / "desired")), ("invalid", str(bad))):
        done = subprocess.run(
            [sys.executable, "-c", probe, "validate", "-q", folder], capture_output=True, text=True, check=False
        )
        code, modules = json.loads(done.stdout.splitlines()[-1])
        imported[name] = (
            code,
            {m for m in modules for heavy in NOT_FOR_VALIDATE if m == heavy or m.startswith(heavy + ".")},
        )
    assert imported["valid"] == (0, set())
    assert imported["invalid"][0] == 1 and "jsonschema" in imported["invalid"][1]


def _shown_and_imported(*words: str) -> tuple[str, list[str]]:
    """What the command line prints for `words` in a process of its own, and the modules it imported
    (not a name marked absent: None)."""
    probe = (
        "import contextlib, io, json, sys\n"
        "from reconcile.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    try:\n"
        "        main(sys.argv[1:])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(json.dumps([out.getvalue(), sorted(name for name, module in sys.modules.items() if module)]))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, *words], capture_output=True, text=True, check=False)
    shown, modules = json.loads(done.stdout.splitlines()[-1])
    return shown, modules


def test_version_and_help_import_no_command_and_help_still_lists_every_command() -> None:
    """`--version` and the top-level `--help` start lighter than `validate` (no command, no network
    stack); the help, which lists the commands, still has every one of them."""
    seen = {words: _shown_and_imported(words) for words in ("--version", "--help")}
    commands = ("validate", "plan", "apply", "rotate", "export", "audit", "doctor")
    for words, (_, modules) in seen.items():
        heavy = {m for m in modules if m.split(".")[0] in ("httpx", "asyncio", "yaml", "logging")}
        assert not heavy | {m for m in modules if m.removeprefix("reconcile.cli.") in commands}, words
    assert seen["--version"][0].startswith("descope-reconcile ")
    assert all(command in seen["--help"][0] for command in commands)


def test_a_commands_help_starts_without_the_network_stack() -> None:
    """`plan --help` (any command's) builds the command's parser only: its use case, and with it
    httpx and asyncio, is imported once the command line is parsed to run, not to show its help."""
    for command in ("validate", "plan", "apply", "rotate", "export", "audit", "doctor"):
        shown, modules = _shown_and_imported(command, "--help")
        assert shown.startswith(f"usage: descope-reconcile {command}"), (command, shown[:200])
        heavy = {m for m in modules if m.split(".")[0] in ("httpx", "asyncio") or m == "reconcile.client.descope"}
        assert not heavy, (command, sorted(heavy)[:5])


def test_the_listed_help_is_the_help_of_every_command_assembled() -> None:
    """The top-level `--help` lists the commands by their summaries only (none imported): the same
    text as with every command's parser assembled."""
    assert build_parser(listed=True).format_help() == build_parser().format_help()


# Strings a report or an answer may carry: controls, direction marks, separators, lone surrogates, `##[`.
hostile_text = st.text(alphabet=st.sampled_from(list('a\n\x07\x1b\x85\u2028\u202e\ud800\udc80\ufeff\uffff#[é"\\')))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | hostile_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=12,
)


def _joined_document(value: Any, depth: int = 2, prefix: str = "") -> str:
    """The reference json_chunks is held to: each level joined, then the whole escaped, line breaks aside."""
    inner = prefix + "  "
    if depth > 0 and isinstance(value, dict) and value:
        items = (
            f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {_joined_document(v, depth - 1, inner)}"
            for k, v in value.items()
        )
        return "{\n" + ",\n".join(items) + f"\n{prefix}}}"
    if depth > 0 and isinstance(value, list) and value:
        return "[\n" + ",\n".join(inner + _joined_document(item, depth - 1, inner) for item in value) + f"\n{prefix}]"
    return json.dumps(value, ensure_ascii=False)


@settings(max_examples=300, deadline=None)
@given(value=json_values, chunk=st.sampled_from([1, 7, 1 << 20]))
def test_json_documents_are_written_as_each_level_joined_then_escaped(value: Any, chunk: int) -> None:
    """json_chunks writes pieces, escaping all but the indentation's line breaks, in chunks of any
    size: together the same text as joining each level and escaping every control character but
    `\\n` (and `##[`); every chunk but the last at least the chunk size."""
    from reconcile.output import escape  # noqa: PLC0415

    def escaped(match: re.Match[str]) -> str:
        found = match.group()
        return found if found in ("\n", "##[") else f"\\u{ord(found):04x}"

    expected = re.sub(f"{escape._CONTROLS}|##\\[", escaped, _joined_document(value)) + "\n"
    saved = escape.CHUNK_CHARACTERS
    escape.CHUNK_CHARACTERS = chunk
    try:
        chunks = list(escape.json_chunks(value))
    finally:
        escape.CHUNK_CHARACTERS = saved
    assert "".join(chunks) == expected
    assert all(len(text) >= chunk for text in chunks[:-1])


@given(value=json_values, encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32-be"]))
def test_an_answer_is_read_as_json_reads_bytes(value: Any, encoding: str) -> None:
    """answers.decode reads its buffer as text itself (to release it before parsing): as json.loads(bytes)."""
    from reconcile.client import answers  # noqa: PLC0415
    from reconcile.errors import ProtocolError  # noqa: PLC0415

    try:
        raw = json.dumps({"keys": [value]}).encode(encoding)
    except UnicodeEncodeError:
        assume(False)
    buffer = bytearray(raw)
    try:
        decoded = answers.decode("POST", "/p", buffer, "application/json")
    except ProtocolError:
        decoded = ProtocolError
    assert buffer == bytearray() or decoded is ProtocolError
    try:
        expected = json.loads(raw)
        json.dumps(expected, ensure_ascii=False).encode("utf-8")  # no lone surrogate: else refused
    except (ValueError, UnicodeEncodeError):
        expected = ProtocolError
    assert decoded == expected


def _big_export(count: int) -> str:
    from reconcile.output.export import render_export  # noqa: PLC0415

    keys = [{"id": f"K{i}", "name": f"n{i}", "permittedIps": ["10.0.0.1"]} for i in range(count)]
    return render_export(keys, source="t")


def test_a_big_file_is_read_on_two_threads_to_the_same_result() -> None:
    """A text over the threshold has its checksum and key index read beside yaml-rs: the same file
    as one read on one thread (its lines proven by the parse events)."""
    from reconcile.desired import loader  # noqa: PLC0415

    text = _big_export(3000)
    assert len(text) >= loader._BESIDE_CHARACTERS
    parsed = parse_text("f.yaml", text.encode())
    assert isinstance(parsed, ParsedFile)
    assert parsed.prescan is not None
    assert parsed.sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert parsed.key_lines() == yamlcheck.key_id_positions(text)
    # a text that needs its nodes (an anchor) is not indexed from its text, on either path
    anchored = text.replace('name: "n1"', "name: &a n1", 1)
    again = parse_text("f.yaml", anchored.encode())
    assert isinstance(again, ParsedFile)
    assert again.prescan is None
    assert again.root is not None


def test_a_failure_beside_yaml_rs_is_raised_not_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(text: str) -> None:
        raise MemoryError("the scan failed")

    monkeypatch.setattr(keyindex, "prescan", broken)
    with pytest.raises(MemoryError, match="the scan failed"):
        parse_text("f.yaml", _big_export(3000).encode())


def test_quick_init_keeps_the_dataclass_contract() -> None:
    """The quick `__init__` of the model's per-key records: the same signature, defaults and
    frozenness as the generated one; a class it cannot build the same way is refused."""
    import dataclasses  # noqa: PLC0415

    from reconcile.model import DesiredKey, SourceLocation, quick_init  # noqa: PLC0415
    from reconcile.plan.diff import KeyPlan, Outcome  # noqa: PLC0415

    where = SourceLocation("f.yaml", 3)
    assert (where.path, where.line, where.column) == ("f.yaml", 3, 1)
    assert SourceLocation(column=2, line=3, path="f.yaml") == dataclasses.replace(where, column=2)
    key = DesiredKey("K1", {"name": "n"}, where)
    plan = KeyPlan(key, Outcome.UNCHANGED, "in sync", "n", status="active")
    assert [getattr(plan, f.name) for f in dataclasses.fields(plan)] == [
        key,
        Outcome.UNCHANGED,
        "in sync",
        "n",
        (),
        None,
        "active",
        None,
        (),
        None,
    ]
    assert hash(where) == hash(SourceLocation("f.yaml", 3, 1))
    with pytest.raises(dataclasses.FrozenInstanceError):
        key.id = "K2"  # type: ignore[misc]
    with pytest.raises(TypeError):
        SourceLocation("f.yaml")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        SourceLocation("f.yaml", 1, 1, 1)  # type: ignore[call-arg]
    assert not hasattr(key, "__dict__")  # slots: a third of the memory per key

    @dataclasses.dataclass(frozen=True)
    class WithDict:
        a: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class WithFactory:
        a: list[int] = dataclasses.field(default_factory=list)

    for refused in (WithDict, WithFactory):
        with pytest.raises(TypeError, match="quick_init"):
            quick_init(refused)


@settings(max_examples=200, deadline=None)
@given(
    names=st.lists(st.sampled_from([*DESIRED_FIELDS, "id", "waivers", 7]), unique=True),
    defaults=st.dictionaries(st.sampled_from(DESIRED_FIELDS), st.just("default"), max_size=2),
)
def test_a_keys_fields_are_the_model_fields_it_gives_in_model_order(names: list[Any], defaults: dict[str, Any]) -> None:
    """The fast path (the model's names updated with the key's values) gives what the comprehension
    over the model's fields gives, order included, and its names are the model's own strings."""
    item = {name: f"value of {name}" for name in names}
    merged = {**defaults, **item}
    expected = {name: merged[name] for name in DESIRED_FIELDS if name in merged}
    fields = validation._fields(item, defaults)
    assert list(fields.items()) == list(expected.items())
    if not defaults and fields:
        assert all(any(name is model for model in DESIRED_FIELDS) for name in fields)
