"""What the YAML structure can tell that plain values cannot: where things are (line and
column), duplicate or non-string mapping keys, explicit tags, and alias expansion beyond a bound.

Values never come from here (they come from yaml-rs, see loader). Nodes and events come from
PyYAML read as YAML 1.2 (see yaml12): libyaml's C parser when it can, else PyYAML's own scanner
taught YAML 1.2. Nodes are composed only for files that need them; the key lines of every file
come from the parse events, which are five times cheaper than nodes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from reconcile.desired import yaml12
from reconcile.desired.yaml12 import CORE_FORMS, STR, compose

# Expanded node count allowed per file: far above any real desired file (100,000 keys of ~10
# fields each is ~2.5 million nodes), far below what an alias bomb expands to.
MAX_EXPANDED_NODES = 20_000_000
# The core schema's tags: a plain document resolves to these by itself; any other tag was
# written out (`!!set`, `!!binary`, `!!timestamp`, `!local`), and yaml-rs would drop or obey it.
_PLAIN_TAGS = frozenset((*CORE_FORMS, yaml12.STR, yaml12.SEQ, yaml12.MAP))


@dataclass(frozen=True)
class Problem:
    """A problem the node checks found (an explicit tag, an alias cycle or bomb), located."""

    line: int  # 1-based
    column: int
    message: str
    fatal: bool = False  # the values cannot be trusted (an alias cycle or bomb): validate no further


def _at(mark: Any, message: str, *, fatal: bool = False) -> Problem:
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    return Problem(line, column, message, fatal)


def syntax_problem(error: yaml.YAMLError) -> Problem:
    if not isinstance(error, yaml.MarkedYAMLError):
        return Problem(1, 1, f"YAML error: {error}")
    mark = error.problem_mark or error.context_mark
    message = " ".join(part for part in (error.context, error.problem) if part)
    if error.context_mark is not None and mark is not None and error.context_mark.line != mark.line:
        message += f" (started at line {error.context_mark.line + 1})"
    if "tab" in message.lower():
        message += " (tabs are not allowed for indentation in YAML: use spaces)"
    return _at(mark, f"YAML syntax error: {message}")


class _TooLarge(Exception):
    def __init__(self, node: yaml.Node, reason: str) -> None:
        super().__init__(reason)
        self.node = node
        self.reason = reason


def _tag_problem(node: yaml.Node) -> str | None:
    if node.tag not in _PLAIN_TAGS:
        return f"tag {node.tag!r} is not allowed: desired files hold plain data"
    form = CORE_FORMS.get(node.tag)
    if form is not None and not form.fullmatch(node.value):  # `!!int 1_000`: yaml-rs says 1000
        return f"{node.value!r} is not a YAML 1.2 {node.tag.rsplit(':', 1)[-1]}"
    return None


def check_nodes(root: yaml.Node) -> list[Problem]:
    """Duplicate or non-string mapping keys, explicit tags, recursive or oversized alias expansion."""
    problems: list[Problem] = []
    expanded: dict[int, int] = {}
    in_progress: set[int] = set()

    def size(node: yaml.Node) -> int:
        ident = id(node)
        if ident in expanded:
            return expanded[ident]  # an alias: counted again, walked once
        if ident in in_progress:
            raise _TooLarge(node, "an alias refers to a node that contains it (recursive structure)")
        in_progress.add(ident)
        problem = _tag_problem(node)
        if problem:
            problems.append(_at(node.start_mark, problem))
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(item) for item in node.value)
        elif isinstance(node, yaml.MappingNode):
            seen: dict[str, yaml.Node] = {}
            for key_node, value_node in node.value:
                if key_node.tag == STR and key_node.value == "<<" and key_node.style is None:
                    problems.append(_at(key_node.start_mark, "merge keys (<<) are not supported (YAML 1.2)"))
                elif not isinstance(key_node, yaml.ScalarNode) or key_node.tag != STR:
                    problems.append(_at(key_node.start_mark, "mapping keys must be strings"))
                elif key_node.value in seen:
                    first = seen[key_node.value].start_mark.line + 1
                    message = f"duplicate key '{key_node.value}' (first at line {first})"
                    problems.append(_at(key_node.start_mark, message))
                else:
                    seen[key_node.value] = key_node
                total += 1 + size(value_node)
        if total > MAX_EXPANDED_NODES:
            raise _TooLarge(node, f"document expands to more than {MAX_EXPANDED_NODES:,} nodes (alias bomb?)")
        in_progress.discard(ident)
        expanded[ident] = total
        return total

    try:
        size(root)
    except _TooLarge as error:
        problems.append(_at(error.node.start_mark, error.reason, fatal=True))
    except RecursionError:
        problems.append(_at(root.start_mark, "nesting is too deep", fatal=True))
    return problems


def read_nodes(text: str) -> tuple[yaml.Node | None, list[Problem]]:
    """The node graph of a text and every problem found in it: syntax, several documents, the
    node checks. No graph when the text cannot be composed (the problem says why)."""
    try:
        root = compose(text)
    except yaml.YAMLError as error:
        return None, [syntax_problem(error)]
    except RecursionError:
        return None, [Problem(1, 1, "nesting is too deep")]
    return root, check_nodes(root) if root is not None else []


def locate(root: yaml.Node | None, json_path: Iterable[object], *, key: bool = False) -> tuple[int, int]:
    """Line and column of the value at `json_path` (of its key, with `key=True`); the deepest
    ancestor found when the path goes further than the document, so every error has a place."""
    if root is None:
        return 1, 1
    node, mark = root, root.start_mark
    for segment in json_path:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == segment:
                    child = value_node
                    mark = key_node.start_mark if key else value_node.start_mark
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(segment, int) and 0 <= segment < len(node.value):
            child = node.value[segment]
            mark = child.start_mark
        if child is None:
            break
        node = child
    return mark.line + 1, mark.column + 1


_DEPTH = {yaml.SequenceStartEvent: 1, yaml.MappingStartEvent: 1, yaml.SequenceEndEvent: -1, yaml.MappingEndEvent: -1}


def _skip(loader: Any, depth: int) -> None:
    """Consume parse events until `depth` open collections have closed (the hot loop of a big
    file: one dictionary look-up per event)."""
    get_event, step = loader.get_event, _DEPTH.get
    while depth:
        depth += step(type(get_event()), 0)


def _skip_node(loader: Any, first: yaml.Event) -> None:
    _skip(loader, 1 if isinstance(first, yaml.CollectionStartEvent) else 0)


def _find_key(loader: Any, name: str) -> yaml.Event | None:
    """Inside a mapping: consume up to the key `name` and return its event; None at the end."""
    while not isinstance(key := loader.get_event(), yaml.MappingEndEvent):
        if isinstance(key, yaml.ScalarEvent) and key.value == name:
            return key
        _skip_node(loader, key)
        _skip_node(loader, loader.get_event())
    return None


def _id_marks(loader: Any) -> list[Any] | None:
    """The start mark of each `keys` item's `id` key (of the item, when it has none), read from
    the parse events; None where an alias stands for an item (the node graph must say)."""
    for _ in range(2):  # stream start, document start
        loader.get_event()
    if not isinstance(loader.get_event(), yaml.MappingStartEvent) or _find_key(loader, "keys") is None:
        return []
    if not isinstance(loader.get_event(), yaml.SequenceStartEvent):
        return []
    marks = []
    while not isinstance(item := loader.get_event(), yaml.SequenceEndEvent):
        if isinstance(item, yaml.AliasEvent):
            return None
        key = _find_key(loader, "id") if isinstance(item, yaml.MappingStartEvent) else None
        marks.append((key or item).start_mark)
        if key is not None:
            _skip_node(loader, loader.get_event())  # the id's value
            _skip(loader, 1)  # the item's other fields
        elif not isinstance(item, yaml.MappingStartEvent):  # (a mapping without an id is consumed)
            _skip_node(loader, item)
    return marks


def key_id_positions(text: str) -> list[tuple[int, int]] | None:
    """Line and column of each `keys` item's `id` (of the item, when it has none), as `locate`
    with `key=True` says, from the parse events (five times cheaper than composing nodes);
    None when aliases make that impossible. Raises yaml.YAMLError."""
    marks = yaml12.read(text, _id_marks)
    return None if marks is None else [(mark.line + 1, mark.column + 1) for mark in marks]
