"""PyYAML taught YAML 1.2, for structure and positions only (values come from yaml-rs, see loader).

Two things make PyYAML a YAML 1.1 reader, and both are fixed here:

- Resolution: plain scalars resolve by YAML 1.2's core schema (`CoreResolver`): `yes`, `on`,
  `1_000`, `0b1`, `2024-01-01` and `<<` are strings; `0o17` is 15 and `017` is 17.
- Syntax: libyaml (the C parser, tried first because it is fast) and PyYAML's own scanner refuse
  valid YAML 1.2: tabs as separation (`name:<TAB>x`), anchors with non-ASCII names, multi-line
  keys in flow mappings, plain scalars such as `:x` in flow collections, `"key":value`. When
  libyaml refuses a text, `Scanner12` (PyYAML's scanner with those rules fixed) reads it. It is
  lenient in ways that never change the structure of a valid document: yaml-rs, which reads
  every value, is the strict one, so a file is refused when either parser refuses it. Tabs used as
  indentation are still refused here, with a message that says so.

Besides, YAML 1.1 reads U+0085, U+2028 and U+2029 as line breaks, YAML 1.2 as text: a text with
any of them skips libyaml, and they are masked while Scanner12 reads it (positions stay exact).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import yaml
from yaml.error import Mark
from yaml.scanner import ScannerError

CORE = "tag:yaml.org,2002:"
STR, SEQ, MAP = CORE + "str", CORE + "seq", CORE + "map"
INT, FLOAT, BOOL, NULL = CORE + "int", CORE + "float", CORE + "bool", CORE + "null"
# YAML 1.2.2, 10.3.2 Tag Resolution (the core schema): the forms of each plain scalar type.
CORE_FORMS = {
    NULL: re.compile(r"~|null|Null|NULL|"),
    BOOL: re.compile(r"true|True|TRUE|false|False|FALSE"),
    INT: re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+"),
    FLOAT: re.compile(
        r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
    ),
}
_RESOLVE = re.compile("|".join(f"(?P<{tag[len(CORE) :]}>{form.pattern})" for tag, form in CORE_FORMS.items()))
_BREAKS = "\r\n"
_WHITE = " \t"
_END = "\0 \t\r\n"  # what ends a token in YAML 1.2 (YAML 1.1 adds U+0085, U+2028, U+2029)
_FLOW_INDICATORS = ",[]{}"
# YAML 1.1's extra line breaks, masked while Scanner12 reads (private-use stand-ins, one each).
_MASK = str.maketrans("\x85\u2028\u2029", "\ue085\ue028\ue029")
_UNMASK = str.maketrans("\ue085\ue028\ue029", "\x85\u2028\u2029")
_YAML11_BREAK = re.compile("[\x85\u2028\u2029]")
# Searches that begin with a literal character (Python's re skips to it quickly: a 40 MB file
# takes milliseconds), each narrowed by what may stand before it. A false alarm only costs time.
# What libyaml reads without an error, but not as YAML 1.2 does: `?x` starting a plain scalar,
# an anchor or alias name with a `:` in it, the non-specific tag `!`, YAML 1.1's extra breaks.
_LIBYAML_MISREADS = tuple(
    re.compile(pattern)
    for pattern in (
        r"\?(?<![^\s\[{,]\?)[^\s,\[\]{}]",
        r"&[\w-]+:",
        r"\*[\w-]+:",
        r"!(?<![^\s\[{,]!)(?=[\s,\]}]|\Z)",
        _YAML11_BREAK.pattern,
    )
)
T = TypeVar("T")


class CoreResolver(yaml.resolver.BaseResolver):
    """Implicit tags by the YAML 1.2 core schema, in one regular expression per scalar."""

    def resolve(self, kind: type[yaml.Node], value: Any, implicit: Any) -> str:
        if kind is yaml.ScalarNode:
            if implicit[0]:
                match = _RESOLVE.fullmatch(value)
                if match is not None and match.lastgroup:
                    return CORE + match.lastgroup
            return STR
        return SEQ if kind is yaml.SequenceNode else MAP


class Scanner12(yaml.scanner.Scanner):
    """PyYAML's scanner with YAML 1.2's rules where YAML 1.1's refuse valid documents."""

    buffer: str
    pointer: int
    index: int
    line: int
    column: int
    name: Any
    _json_node_end = -1  # token count just after the last quoted scalar or flow collection

    if TYPE_CHECKING:  # from yaml.reader.Reader, which comes first in the loader's bases

        def peek(self, index: int = 0) -> str: ...
        def get_mark(self) -> Mark: ...
        def forward(self, length: int = 1) -> None: ...
        def prefix(self, length: int = 1) -> str: ...
        def scan_line_break(self) -> str: ...

    def _token_count(self) -> int:
        return self.tokens_taken + len(self.tokens)

    def scan_to_next_token(self) -> None:
        """Tabs separate tokens like spaces do (indentation is checked by `add_indent`)."""
        if self.index == 0 and self.peek() == "\ufeff":
            self.forward()
        while True:
            while self.peek() in _WHITE:
                self.forward()
            if self.peek() == "#":
                while self.peek() not in "\0" + _BREAKS:
                    self.forward()
            if not self.scan_line_break():
                return
            if not self.flow_level:
                self.allow_simple_key = True

    def add_indent(self, column: int) -> bool:
        """A block collection opening at `column`: its indentation must be spaces only."""
        opens = super().add_indent(column)
        line_start = self.pointer - self.column
        tab = self.buffer.find("\t", line_start, line_start + column)
        if opens and tab >= 0:
            index = self.index - self.column + tab - line_start
            mark = Mark(self.name, index, self.line, tab - line_start, None, index)
            raise ScannerError(None, None, "found a tab character used as indentation", mark)
        return opens

    def stale_possible_simple_keys(self) -> None:
        """Keys in flow mappings may span lines (YAML 1.2); block keys stay on one line."""
        for level, key in list(self.possible_simple_keys.items()):
            if (level == 0 and key.line != self.line) or self.index - key.index > 1024:
                if key.required:
                    raise ScannerError(
                        "while scanning a simple key", key.mark, "could not find expected ':'", self.get_mark()
                    )
                del self.possible_simple_keys[level]

    def _ends_scalar(self, char: str) -> bool:
        """Whether `char`, after a `:`, `?` or `-`, makes it an indicator rather than text."""
        return char in _END or (self.flow_level > 0 and char in _FLOW_INDICATORS)

    def check_key(self) -> bool:
        """`?` is an indicator before a space (a flow indicator too, in flow): `?x` is text."""
        return self._ends_scalar(self.peek(1))

    def check_value(self) -> bool:
        """`:` is an indicator before a space (a flow indicator too, in flow) or right after a
        JSON-like key (`"key":value`); otherwise it starts or continues a plain scalar."""
        adjacent = self.flow_level > 0 and self._token_count() == self._json_node_end
        return adjacent or self._ends_scalar(self.peek(1))

    def check_plain(self) -> bool:
        """`-`, `?` and `:` start a plain scalar when a safe character follows, in flow too."""
        first = self.peek()
        if first not in _END + "-?:,[]{}#&*!|>'\"%@`":
            return True
        return first in "-?:" and not self._ends_scalar(self.peek(1))

    def fetch_flow_scalar(self, style: Any) -> None:
        super().fetch_flow_scalar(style)
        self._json_node_end = self._token_count()

    def fetch_flow_collection_end(self, TokenClass: Any) -> None:
        super().fetch_flow_collection_end(TokenClass)
        self._json_node_end = self._token_count()

    def scan_directive(self) -> Any:
        """`%YAML` and `%TAG` with tabs as separation too; other directives are ignored."""
        start_mark = self.get_mark()
        length = 0
        while self.peek(length) not in "\0" + _BREAKS:
            length += 1
        words = re.split(r"\s+#", self.prefix(length))[0][1:].split()
        self.forward(length)
        if not words:
            raise ScannerError("while scanning a directive", start_mark, "expected a name", self.get_mark())
        name, *arguments = words
        value: Any = None
        if name == "YAML":
            version = re.fullmatch(r"([0-9]+)\.([0-9]+)", arguments[0] if len(arguments) == 1 else "")
            if version is None:
                raise ScannerError("while scanning a directive", start_mark, "expected a version", self.get_mark())
            value = (int(version.group(1)), int(version.group(2)))
        elif name == "TAG" and len(arguments) == 2:
            value = tuple(arguments)
        return yaml.DirectiveToken(name, value, start_mark, self.get_mark())

    def scan_anchor(self, TokenClass: Any) -> Any:
        """Anchor names are any non-space characters but flow indicators (YAML 1.2)."""
        start_mark = self.get_mark()
        self.forward()
        length = 0
        while self.peek(length) not in _END + _FLOW_INDICATORS:
            length += 1
        if not length:
            kind = "alias" if TokenClass is yaml.AliasToken else "anchor"
            raise ScannerError(f"while scanning an {kind}", start_mark, "expected a name", self.get_mark())
        value = self.prefix(length)
        self.forward(length)
        return TokenClass(value, start_mark, self.get_mark())

    def scan_plain(self) -> Any:
        """As PyYAML's, but in flow only `,[]{}` and `: ` end a plain scalar (`?` does not)."""
        chunks: list[str] = []
        start_mark = end_mark = self.get_mark()
        indent = self.indent + 1
        spaces: list[str] = []
        while self.peek() != "#":
            length = 0
            while True:
                char = self.peek(length)
                if char in _END or (self.flow_level and char in _FLOW_INDICATORS):
                    break
                if char == ":" and self._ends_scalar(self.peek(length + 1)):
                    break
                length += 1
            if length == 0:
                break
            self.allow_simple_key = False
            chunks.extend(spaces)
            chunks.append(self.prefix(length))
            self.forward(length)
            end_mark = self.get_mark()
            spaces = self.scan_plain_spaces(indent, start_mark)
            if not spaces or self.peek() == "#" or (not self.flow_level and self.column < indent):
                break
        return yaml.ScalarToken("".join(chunks), True, start_mark, end_mark)

    def scan_plain_spaces(self, indent: int, start_mark: Any) -> Any:
        """Tabs are white space inside plain scalars and before continuation lines (YAML 1.2)."""
        length = 0
        while self.peek(length) in _WHITE:
            length += 1
        whitespaces = self.prefix(length)
        self.forward(length)
        if self.peek() not in _BREAKS:
            return [whitespaces] if whitespaces else []
        self.scan_line_break()
        self.allow_simple_key = True
        breaks = []
        while True:
            if self.column == 0 and self.prefix(3) in ("---", "...") and self.peek(3) in _END:
                return None  # a document marker ends the scalar
            if self.peek() in _WHITE:
                self.forward()
            elif self.peek() in _BREAKS:
                breaks.append(self.scan_line_break())
            else:
                return breaks or [" "]  # line folding: one break is a space


class Composer12(yaml.composer.Composer):
    """PyYAML's composer, but an anchor may be defined again (the later one counts) and the
    non-specific tag `!` makes a scalar a string (YAML 1.2)."""

    if TYPE_CHECKING:  # from yaml.parser.Parser

        def peek_event(self) -> Any: ...
        def get_event(self) -> Any: ...

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        if not isinstance(event, yaml.AliasEvent) and getattr(event, "anchor", None) is not None:
            self.anchors.pop(event.anchor, None)
        return super().compose_node(parent, index)

    def compose_scalar_node(self, anchor: Any) -> yaml.ScalarNode:
        if self.peek_event().tag == "!":
            event = self.get_event()
            node = yaml.ScalarNode(STR, event.value, event.start_mark, event.end_mark, style=event.style)
            if anchor is not None:
                self.anchors[anchor] = node
            return node
        return super().compose_scalar_node(anchor)


class Loader12(yaml.reader.Reader, Scanner12, yaml.parser.Parser, Composer12, CoreResolver):
    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        Scanner12.__init__(self)
        yaml.parser.Parser.__init__(self)
        Composer12.__init__(self)
        CoreResolver.__init__(self)


try:
    from yaml._yaml import CParser

    class CLoader12(CParser, CoreResolver):  # libyaml, with the core schema
        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            CoreResolver.__init__(self)

    _FAST: tuple[type[Any], ...] = (CLoader12,)
except ImportError:  # pragma: no cover (PyYAML without libyaml)
    _FAST = ()


def _any(patterns: tuple[re.Pattern[str], ...], text: str) -> bool:
    return any(pattern.search(text) for pattern in patterns)


def _position(error: yaml.YAMLError) -> tuple[int, int]:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    return (mark.line, mark.column) if mark is not None else (-1, -1)


def read(text: str, use: Callable[[Any], T]) -> T:
    """`use(loader)` with libyaml's loader, else with Loader12's. When neither can read the text,
    raises the error of the one that read further (libyaml's on a tie: its messages are better)."""
    masked = _YAML11_BREAK.search(text) is not None
    errors: list[yaml.YAMLError] = []
    for loader_class in (Loader12,) if _any(_LIBYAML_MISREADS, text) else (*_FAST, Loader12):
        loader = loader_class(text.translate(_MASK) if masked else text)
        try:
            return use(loader)
        except yaml.YAMLError as error:
            errors.append(error)
        finally:
            loader.dispose()
    raise max(errors, key=_position)  # max() keeps the first of equals


def compose(text: str) -> yaml.Node | None:
    """The node graph of a single-document text; raises yaml.YAMLError."""
    root: yaml.Node | None = read(text, lambda loader: loader.get_single_node())
    if root is not None and _YAML11_BREAK.search(text):
        _unmask(root)
    return root


def _unmask(root: yaml.Node) -> None:
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            node.value = node.value.translate(_UNMASK)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            stack.extend(item for pair in node.value for item in pair)


class Disagreement(ValueError):
    """yaml-rs and PyYAML read a document in different shapes (never seen: then say so)."""

    def __init__(self, node: yaml.Node) -> None:
        super().__init__("the two YAML readers see different structures here")
        self.position = (node.start_mark.line + 1, node.start_mark.column + 1)


def core_values(node: yaml.Node, value: Any) -> Any:
    """`value` (yaml-rs's reading of `node`) with each plain scalar that the core schema reads as
    a string given as that string (`1_000` stays `"1_000"`, where yaml-rs says 1000). Raises
    Disagreement when the two readings differ in shape."""
    if isinstance(node, yaml.ScalarNode):
        if node.tag == STR and isinstance(value, int | float) and not isinstance(value, bool):
            return node.value
        return value
    if isinstance(node, yaml.SequenceNode) and isinstance(value, list) and len(node.value) == len(value):
        return [core_values(child, item) for child, item in zip(node.value, value, strict=True)]
    if isinstance(node, yaml.MappingNode) and isinstance(value, dict) and len(node.value) == len(value):
        pairs = zip(node.value, value.items(), strict=True)
        return {core_values(kn, k): core_values(vn, v) for (kn, vn), (k, v) in pairs}
    raise Disagreement(node)


def _colons_before_tabs(loader: Any, text: str) -> list[int]:
    """Where a value indicator `:` has a tab right after it (offsets in characters, as both
    libyaml's and PyYAML's marks count)."""
    colons = []
    while loader.check_token():
        token = loader.get_token()
        if isinstance(token, yaml.ValueToken) and text.startswith(":\t", token.start_mark.index):
            colons.append(token.start_mark.index + 1)
    return colons


def space_tabs_after_colons(text: str) -> str:
    """The text with a space between each value indicator `:` and a tab right after it. yaml-rs
    refuses `name:<TAB>x`, which YAML 1.2 allows; a space there is separation as the tab is, so
    the values stay the same. The text as it is when it cannot be scanned."""
    try:
        colons = read(text, lambda loader: _colons_before_tabs(loader, text))
    except yaml.YAMLError:
        return text
    pieces = [text[start:end] for start, end in zip([0, *colons], [*colons, len(text)], strict=True)]
    return " ".join(pieces)
