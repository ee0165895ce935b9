"""What PyYAML's node graph can tell that plain values cannot: where things are (line and
column), duplicate or non-string mapping keys, explicit tags, and alias expansion beyond a bound.

Values never come from here (they come from yaml-rs, see loader); this module only composes
nodes, with libyaml's C composer when present, and only for files that need it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

Composer: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Expanded node count allowed per file: far above any real desired file (100,000 keys of ~10
# fields each is ~2.5 million nodes), far below what an alias bomb expands to.
MAX_EXPANDED_NODES = 20_000_000
_CORE = "tag:yaml.org,2002:"
_STR_TAG = _CORE + "str"
_MERGE_TAG = _CORE + "merge"
# Tags a plain document resolves to by itself; anything else was written out explicitly.
_PLAIN_TAGS = frozenset(_CORE + name for name in ("str", "int", "float", "bool", "null", "seq", "map", "timestamp"))


@dataclass(frozen=True)
class Problem:
    line: int  # 1-based
    column: int
    message: str
    fatal: bool = False  # the values cannot be trusted (an alias cycle or bomb): validate no further


def _at(mark: Any, message: str, *, fatal: bool = False) -> Problem:
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    return Problem(line, column, message, fatal)


def compose(text: str) -> yaml.Node | None:
    """The node graph of a single-document text; raises yaml.YAMLError."""
    loader = Composer(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


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
        if node.tag not in _PLAIN_TAGS:
            problems.append(_at(node.start_mark, f"tag {node.tag!r} is not allowed: desired files hold plain data"))
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(item) for item in node.value)
        elif isinstance(node, yaml.MappingNode):
            seen: dict[str, yaml.Node] = {}
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG:
                    problems.append(_at(key_node.start_mark, "merge keys (<<) are not supported (YAML 1.2)"))
                elif not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR_TAG:
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


def problems_in(text: str) -> list[Problem]:
    """Every problem PyYAML can locate in a text: syntax, several documents, the node checks."""
    try:
        root = compose(text)
    except yaml.YAMLError as error:
        return [syntax_problem(error)]
    except RecursionError:
        return [Problem(1, 1, "nesting is too deep")]
    return check_nodes(root) if root is not None else []


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
                if key_node.value == segment and key_node.tag != _MERGE_TAG:
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
