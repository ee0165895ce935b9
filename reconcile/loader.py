"""Files → parsed YAML documents that remember where every value came from.

Parsing is safe-only (libyaml's C parser when present, the safe constructor always). On top of
PyYAML we reject what it silently accepts: duplicate mapping keys, non-string mapping keys, and
alias expansion beyond a bound (a "billion laughs" document is tiny as a node graph but huge once
expanded by anything that walks it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from reconcile.errors import ConfigError

SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024
# Expanded node count allowed per file: far above any real desired file (100,000 keys of ~10
# fields each is ~2.5 million nodes), far below what an alias bomb expands to.
MAX_EXPANDED_NODES = 20_000_000
_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
YAML_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One problem in one file, located to the line and column (1-based)."""

    path: str
    line: int
    column: int
    message: str
    field: str = ""

    def render(self) -> str:
        where = f" [{self.field}]" if self.field else ""
        return f"{self.path}:{self.line}:{self.column}: error: {self.message}{where}"


@dataclass(frozen=True)
class ParsedFile:
    path: str
    sha256: str
    data: Any
    root: yaml.Node
    # Problems found while parsing that do not stop validation (duplicate or non-string keys).
    problems: tuple[Diagnostic, ...] = ()

    def locate(self, json_path: Iterable[str | int], *, key: bool = False) -> tuple[int, int]:
        """Line and column of the value at `json_path` (of its key, with `key=True`).

        Falls back to the deepest ancestor found, so every error has a useful place.
        """
        node = self.root
        mark = node.start_mark
        for segment in json_path:
            child: yaml.Node | None = None
            if isinstance(node, yaml.MappingNode) and isinstance(segment, str):
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


def discover(paths: Iterable[str]) -> list[Path]:
    """Every *.yaml / *.yml under the given files or folders, recursively, in sorted order."""
    found: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.update(p for p in path.rglob("*") if p.suffix in YAML_SUFFIXES and p.is_file())
        elif path.is_file():
            found.add(path)
        else:
            raise ConfigError(f"{raw}: no such file or folder")
    if not found:
        raise ConfigError(f"no *.yaml or *.yml files under {', '.join(paths)}")
    return sorted(found)


def _problem(path: str, mark: Any, message: str) -> Diagnostic:
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    return Diagnostic(path, line, column, message)


def _check_nodes(path: str, root: yaml.Node) -> tuple[list[Diagnostic], Diagnostic | None]:
    """Duplicate or non-string mapping keys; and, fatal, recursive or oversized alias expansion."""
    problems: list[Diagnostic] = []
    expanded: dict[int, int] = {}
    in_progress: set[int] = set()

    def size(node: yaml.Node) -> int:
        ident = id(node)
        if ident in expanded:
            return expanded[ident]  # an alias: counted again, walked once
        if ident in in_progress:
            raise _AliasError(node, "an alias refers to a node that contains it (recursive structure)")
        in_progress.add(ident)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(item) for item in node.value)
        elif isinstance(node, yaml.MappingNode):
            seen: dict[str, yaml.Node] = {}
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG:
                    total += size(value_node)
                    continue
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR_TAG:
                    problems.append(_problem(path, key_node.start_mark, "mapping keys must be strings"))
                elif key_node.value in seen:
                    first = seen[key_node.value].start_mark.line + 1
                    problems.append(
                        _problem(
                            path,
                            key_node.start_mark,
                            f"duplicate key '{key_node.value}' (first at line {first}; YAML keeps only the last)",
                        )
                    )
                else:
                    seen[key_node.value] = key_node
                total += 1 + size(value_node)
        if total > MAX_EXPANDED_NODES:
            raise _AliasError(node, f"document expands to more than {MAX_EXPANDED_NODES:,} nodes (alias bomb?)")
        in_progress.discard(ident)
        expanded[ident] = total
        return total

    try:
        size(root)
    except _AliasError as error:
        return problems, _problem(path, error.node.start_mark, error.reason)
    except RecursionError:
        return problems, _problem(path, root.start_mark, "nesting is too deep")
    return problems, None


class _AliasError(Exception):
    def __init__(self, node: yaml.Node, reason: str) -> None:
        super().__init__(reason)
        self.node = node
        self.reason = reason


def _too_big(path: str, size: int, max_bytes: int) -> Diagnostic:
    return Diagnostic(path, 1, 1, f"file is {size:,} bytes, over the limit of {max_bytes:,} (--max-file-size)")


def parse_text(path: str, raw: bytes, *, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> ParsedFile | list[Diagnostic]:
    """Bytes of one file → a parsed document, or the problems that stop it from being one."""
    if len(raw) > max_bytes:
        return [_too_big(path, len(raw), max_bytes)]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        column = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
        return [Diagnostic(path, line, column, f"file is not valid UTF-8 (byte 0x{raw[error.start]:02x})")]
    if text.startswith("\ufeff"):
        text = text[1:]
    loader = SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return [Diagnostic(path, 1, 1, "file is empty: expected a mapping with `version` and `keys`")]
        problems, fatal = _check_nodes(path, root)
        if fatal is not None:
            return [*problems, fatal]
        data = loader.construct_document(root)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        message = " ".join(part for part in (error.context, error.problem) if part)
        if error.context_mark is not None and mark is not None and error.context_mark.line != mark.line:
            message += f" (started at line {error.context_mark.line + 1})"
        if "tab" in message.lower() or "\\t" in message:
            message += " (tabs are not allowed for indentation in YAML: use spaces)"
        return [_problem(path, mark, f"YAML syntax error: {message}")]
    except yaml.YAMLError as error:
        return [Diagnostic(path, 1, 1, f"YAML error: {error}")]
    except RecursionError:
        return [Diagnostic(path, 1, 1, "nesting is too deep")]
    finally:
        loader.dispose()
    return ParsedFile(path, hashlib.sha256(raw).hexdigest(), data, root, tuple(problems))


def load_files(
    paths: Iterable[str], *, max_bytes: int = DEFAULT_MAX_FILE_BYTES
) -> Iterator[ParsedFile | list[Diagnostic]]:
    for path in discover(paths):
        try:
            size = path.stat().st_size
            if size > max_bytes:  # don't read a huge file only to refuse it
                yield [_too_big(str(path), size, max_bytes)]
                continue
            raw = path.read_bytes()
        except OSError as error:
            yield [Diagnostic(str(path), 1, 1, f"cannot read file: {error.strerror}")]
            continue
        yield parse_text(str(path), raw, max_bytes=max_bytes)
