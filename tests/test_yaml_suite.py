"""The YAML project's own conformance cases (yaml-test-suite, MIT licence, in `shared/` beside the
clone: see its README): the YAML 1.2 promise of docs/desired-format.md, held to the standard.

- Every valid single-document case with an expected value (`in.json`) is read by the loader to
  exactly that value, or refused for one of the reasons listed in REFUSED_BY_DESIGN (and docs/desired-format.md).
- Every invalid case (`error`) is refused, with a located message.
- The structure reader that gives every position (PyYAML read as YAML 1.2: libyaml first, then
  Scanner12) reads every valid case in the same shape, and so does Scanner12 alone (the fallback),
  but for the cases in STRUCTURE_EXCEPTIONS.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconcile.desired import yaml12
from reconcile.desired.loader import ParsedFile, parse_text

SUITE = Path(__file__).resolve().parents[1].parent / "shared" / "yaml-test-suite"

_TAG = "an explicit tag: desired files hold plain data"
_EMPTY = "an empty document: a desired file is a mapping"
# Valid YAML that the loader refuses on purpose: case → (why, words of the message).
REFUSED_BY_DESIGN: dict[str, tuple[str, str]] = {
    "2XXW": (f"{_TAG} (`!!set`: a set is no JSON value)", "tag"),
    "565N": (f"{_TAG} (`!!binary`)", "tag"),
    "6CK3": (f"{_TAG} (`!local`, `!e!tag%21`)", "tag"),
    "7FWL": (f"{_TAG} (verbatim `!<!bar>`)", "tag"),
    "C4HZ": (f"{_TAG} (global `!shape`)", "tag"),
    "CC74": (f"{_TAG} (`!e!foo` by a %TAG handle)", "tag"),
    "CUP7": (f"{_TAG} (`!local`)", "tag"),
    "J7PZ": (f"{_TAG} (`!!omap`)", "tag"),
    "M5C3": (f"{_TAG} (`!foo`)", "tag"),
    "P76L": (f"{_TAG} (`!!int` redefined by %TAG)", "tag"),
    "UGM3": (f"{_TAG} (`!<tag:clarkevans.com,2002:invoice>`)", "tag"),
    "Z67P": (f"{_TAG} (`!foo`)", "tag"),
    "Z9M4": (f"{_TAG} (`!e!foo` under a global prefix)", "tag"),
    "DK95/07": (_EMPTY, "file is empty"),
    "MUS6/02": (_EMPTY, "file is empty"),
    "MUS6/03": (_EMPTY, "file is empty"),
    "MUS6/04": (_EMPTY, "file is empty"),
    "MUS6/05": (_EMPTY, "file is empty"),
    "MUS6/06": (_EMPTY, "file is empty"),
}
# Where the structure reader does not read a valid case as the suite says: case → (why it does
# no harm, which readers).
_TOP_BLOCK = "a block scalar at the top level, indented 0: never a desired file, whose problem is at line 1"
STRUCTURE_EXCEPTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "DK3J": (_TOP_BLOCK, ("Scanner12", "libyaml first")),
    "FP8R": (_TOP_BLOCK, ("Scanner12", "libyaml first")),
    "WZ62": ("`!!str,` in a flow mapping: Scanner12 reads the comma into the tag; libyaml reads it", ("Scanner12",)),
}


def _documents(text: str) -> list[Any]:
    decoder, documents, index = json.JSONDecoder(), [], 0
    text = text.strip()
    while index < len(text):
        value, index = decoder.raw_decode(text, index)
        documents.append(value)
        while index < len(text) and text[index].isspace():
            index += 1
    return documents


def _cases() -> tuple[list[Any], list[Any]]:
    if not SUITE.is_dir():
        return [], []
    valid, invalid = [], []
    for source in sorted(SUITE.rglob("in.yaml")):
        folder, case = source.parent, str(source.parent.relative_to(SUITE))
        if (folder / "error").exists():
            invalid.append(pytest.param(source, id=case))
        elif (folder / "in.json").exists() and len(expected := _documents((folder / "in.json").read_text())) == 1:
            valid.append(pytest.param(source, expected[0], id=case))
    return valid, invalid


VALID, INVALID = _cases()
needs_suite = pytest.mark.skipif(not SUITE.is_dir(), reason=f"the YAML test suite is not at {SUITE}")


def same(got: Any, wanted: Any) -> bool:
    """Equal, with the same JSON types (1 is not 1.0 is not true), NaN equal to NaN; `str` stands
    for any text (a block scalar the structure reader may read differently, see above)."""
    if got is str:
        return isinstance(wanted, str)
    if isinstance(wanted, float) and math.isnan(wanted):
        return isinstance(got, float) and math.isnan(got)
    if isinstance(wanted, dict):
        return isinstance(got, dict) and got.keys() == wanted.keys() and all(same(got[k], wanted[k]) for k in got)
    if isinstance(wanted, list):
        return isinstance(got, list) and len(got) == len(wanted) and all(map(same, got, wanted))
    if {type(got), type(wanted)} == {int, float}:
        return bool(got == wanted)  # JSON has one kind of number: `450.00` is 450 there
    return type(got) is type(wanted) and got == wanted


def shape(node: yaml.Node | None, *, key: bool = False) -> Any:
    """What the structure reader makes of a document, with the core schema's types. A block
    scalar's text counts as a key only: as a value it is `str` (values come from yaml-rs; PyYAML
    reads a last line of spaces without a line break differently, JEF9/02 and L24T/01)."""
    if node is None:
        return None
    if isinstance(node, yaml.SequenceNode):
        return [shape(item) for item in node.value]
    if isinstance(node, yaml.MappingNode):
        return {shape(k, key=True): shape(v) for k, v in node.value}
    if node.style in ("|", ">"):
        return node.value if key else str
    text = node.value
    if node.tag == yaml12.INT:
        return int(text[2:], 8) if text.startswith("0o") else int(text[2:], 16) if text.startswith("0x") else int(text)
    if node.tag == yaml12.FLOAT:
        return float(text.lower().replace(".inf", "inf").replace(".nan", "nan"))
    return {yaml12.NULL: None, yaml12.BOOL: text.lower() == "true"}.get(node.tag, text)


@needs_suite
@pytest.mark.parametrize(("source", "expected"), VALID)
def test_valid_documents_are_read_exactly_or_refused_by_design(source: Path, expected: Any) -> None:
    case = str(source.parent.relative_to(SUITE))
    result = parse_text("in.yaml", source.read_bytes())
    if case in REFUSED_BY_DESIGN:
        problems = list(result.problems) if isinstance(result, ParsedFile) else result
        assert problems and REFUSED_BY_DESIGN[case][1] in problems[0].message, problems
        return
    assert isinstance(result, ParsedFile) and not result.problems, result
    assert same(result.data, expected), result.data


@needs_suite
@pytest.mark.parametrize("reader", ["libyaml first", "Scanner12"])
@pytest.mark.parametrize(("source", "expected"), VALID)
def test_the_structure_reader_reads_every_valid_document_alike(source: Path, expected: Any, reader: str) -> None:
    case = str(source.parent.relative_to(SUITE))
    text = source.read_bytes().decode().removeprefix("\ufeff")
    try:
        root = yaml12.compose(text) if reader == "libyaml first" else yaml12.Loader12(text).get_single_node()
    except yaml.YAMLError:
        assert reader in STRUCTURE_EXCEPTIONS.get(case, ("", ()))[1]
        return
    if reader in STRUCTURE_EXCEPTIONS.get(case, ("", ()))[1]:
        assert not same(shape(root), expected)  # still an exception: else, take it off the list
        return
    assert same(shape(root), expected), shape(root)


@needs_suite
@pytest.mark.parametrize("source", INVALID)
def test_invalid_documents_are_refused_with_a_located_message(source: Path) -> None:
    result = parse_text("in.yaml", source.read_bytes())
    assert isinstance(result, list) and result, result
    assert all(problem.line >= 1 and problem.column >= 1 and problem.message for problem in result)


@needs_suite
def test_the_figures() -> None:
    """256 valid single-document cases, 94 invalid ones: the counts docs/desired-format.md quotes."""
    assert (len(VALID), len(INVALID), len(REFUSED_BY_DESIGN)) == (256, 94, 19)
    assert set(REFUSED_BY_DESIGN) | set(STRUCTURE_EXCEPTIONS) <= {param.id for param in VALID}
