"""Files → parsed YAML documents, and where each key of them is.

Values come from yaml-rs only: YAML 1.2 (`yes` and `no` are strings, no merge keys), safe by
construction (no tag constructs an object), duplicate mapping keys an error, alias expansion
bounded, and 20x faster than PyYAML's C loader. A file never changes meaning with the code path.

PyYAML composes nodes only where positions or node-level checks are needed: to locate the
problems in a file that has any, to check explicit tags (only in a text that contains `!`, which
every tag needs), and to find key lines when the quick scan below cannot prove its answer.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
import yaml_rs

from reconcile.desired import yamlcheck
from reconcile.errors import ConfigError

DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024
YAML_SUFFIXES = (".yaml", ".yml")
_ALIAS_LIMITS = yaml_rs.AliasLimits(max_total_replayed_events=1_000_000)
# A line that may hold a key item's `id` (block `- id: x`, `id: x`, or flow `- {id: x, ...`).
_ID_LINE = re.compile(r"^([ \t]*(?:-[ \t]+)*\{?[ \t]*)(?:id|\"id\"|'id')[ \t]*:[ \t]*(.*)$", re.MULTILINE)
_POSITION = re.compile(r"line (\d+), column (\d+)")


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
    text: str = field(repr=False)
    # Problems found by the node checks (a tag, an alias cycle): reported with the schema's.
    problems: tuple[Diagnostic, ...] = ()

    @cached_property
    def _root(self) -> yaml.Node | None:
        try:
            return yamlcheck.compose(self.text)
        except (yaml.YAMLError, RecursionError):
            return None  # yaml-rs read it, PyYAML cannot: errors are placed at the top

    def locate(self, json_path: Iterable[object], *, key: bool = False) -> tuple[int, int]:
        return yamlcheck.locate(self._root, json_path, key=key)

    def key_lines(self) -> list[tuple[int, int]]:
        """Line and column of each key item's `id`, in order: a text scan that must match every id
        in order, else PyYAML's node marks (slower, always right)."""
        keys = self.data.get("keys") if isinstance(self.data, dict) else None
        items = keys if isinstance(keys, list) else []
        scanned = _scan_id_lines(self.text, [item.get("id") if isinstance(item, dict) else None for item in items])
        if scanned is not None:
            return scanned
        return [self.locate(["keys", index, "id"], key=True) for index in range(len(items))]


def _unquote(raw: str) -> str:
    value = raw.strip()
    if value[:1] in ("'", '"'):
        end = value.find(value[0], 1)
        return value[1:end] if end > 0 else value
    return re.split(r"[,}]|[ \t]#", value, maxsplit=1)[0].strip()


def _scan_id_lines(text: str, ids: Sequence[object]) -> list[tuple[int, int]] | None:
    """Lines whose `id:` values equal the key ids, in order; None when that cannot be shown."""
    if not all(isinstance(key_id, str) and key_id and key_id == key_id.strip() for key_id in ids):
        return None
    starts: list[tuple[int, int]] = []  # (offset in text, column)
    matches = _ID_LINE.finditer(text)  # shared: each id is looked for after the previous one
    for key_id in ids:
        for match in matches:
            if _unquote(match.group(2)) == key_id:
                starts.append((match.start(), len(match.group(1)) + 1))
                break
        else:
            return None
    positions, line, offset = [], 1, 0
    for start, column in starts:
        line += text.count("\n", offset, start)  # one pass over the text in all
        offset = start
        positions.append((line, column))
    return positions


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


def _too_big(path: str, size: int, max_bytes: int) -> Diagnostic:
    return Diagnostic(path, 1, 1, f"file is {size:,} bytes, over the limit of {max_bytes:,} (--max-file-size)")


def _diagnostics(path: str, problems: Iterable[yamlcheck.Problem]) -> list[Diagnostic]:
    return [Diagnostic(path, p.line, p.column, p.message) for p in problems]


def _unreadable(path: str, text: str, reason: str) -> list[Diagnostic]:
    """yaml-rs refused the text: let PyYAML say where and why; else yaml-rs's own words."""
    located = _diagnostics(path, yamlcheck.problems_in(text))
    if located:
        return located
    position = _POSITION.search(reason)
    line, column = (int(position.group(1)), int(position.group(2))) if position else (1, 1)
    message = " ".join(reason.split("\n")[-1:]) if position else reason
    return [Diagnostic(path, line, column, f"YAML error: {message.strip()}")]


def parse_text(
    path: str,
    raw: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_FILE_BYTES,
    expected: str = "a mapping with `version` and `keys`",
) -> ParsedFile | list[Diagnostic]:
    """Bytes of one file → a parsed document, or the problems that stop it from being one.
    `expected` says what the file should hold (when it holds nothing)."""
    if len(raw) > max_bytes:
        return [_too_big(path, len(raw), max_bytes)]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        column = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
        return [Diagnostic(path, line, column, f"file is not valid UTF-8 (byte 0x{raw[error.start]:02x})")]
    text = text.removeprefix("\ufeff")
    try:
        data = yaml_rs.loads(text, parse_datetime=False, alias_limits=_ALIAS_LIMITS)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as error:
        return _unreadable(path, text, str(error))
    if data is None:
        return [Diagnostic(path, 1, 1, f"file is empty: expected {expected}")]
    # Several documents come back as a list (PyYAML names that error); a single top-level list is
    # left to validation. Explicit tags need a `!` and anchors a `&`: only such texts pay for the
    # PyYAML node checks (yaml-rs drops unknown tags and reads a self-referencing alias as null).
    needs_nodes = isinstance(data, list) or "!" in text or "&" in text
    found = yamlcheck.problems_in(text) if needs_nodes else []
    problems = _diagnostics(path, found)
    if problems and (isinstance(data, list) or any(problem.fatal for problem in found)):
        return problems
    return ParsedFile(path, hashlib.sha256(raw).hexdigest(), data, text, tuple(problems))


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
