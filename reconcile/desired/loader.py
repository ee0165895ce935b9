"""Files → parsed YAML documents, and where each key of them is.

Values come from yaml-rs: YAML 1.2 (`yes` and `no` are strings, no merge keys), safe by
construction (no tag constructs an object), duplicate mapping keys an error, alias expansion
bounded, and 20x faster than PyYAML's C loader. Where yaml-rs strays from YAML 1.2's core schema
(it reads `1_000`, `0b1`, `0X1F`, `+0x1` and `.iNf` as numbers; the core schema reads them as
strings), the node graph says which scalars are plain strings, and they are given as such.

Structure and positions come from PyYAML read as YAML 1.2 (see yaml12): key lines from the
parse events of every file; nodes only where positions or node-level checks are needed: to
locate the problems in a file that has any, to check explicit tags (only in a text that contains
`!`, which every tag needs) and anchors (`&`), and where yaml-rs may have read a number that
YAML 1.2 reads as a string. Nothing is ever located by searching the text.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

# yaml-rs allocates through its own mimalloc, which by default keeps what it frees for later
# allocations of its own: 140 MiB after reading 100,000 keys, held through the rest of a plan (its
# peak 861 -> 743 MiB). Given back at once instead; read when the library loads.
os.environ.setdefault("MIMALLOC_PURGE_DELAY", "0")
import yaml_rs

from reconcile.desired import keyindex
from reconcile.errors import ConfigError

if TYPE_CHECKING:
    import yaml

    from reconcile.desired import yamlcheck

# PyYAML (yaml12, yamlcheck: the nodes, their marks) is imported only where a file needs its nodes:
# a valid file in the common layout never does, and `validate` starts 30 ms sooner without it.

DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024
YAML_SUFFIXES = (".yaml", ".yml")  # in any case: `keys.YAML` too
_ALIAS_LIMITS = yaml_rs.AliasLimits(max_total_replayed_events=1_000_000)
_POSITION = re.compile(r"line (\d+), column (\d+)")
# Plain scalars yaml-rs reads as numbers though the core schema reads them as strings: `1_000`,
# `_1`, `1e_3`, `0X1F`, `0O17`, `0b1`, `+0x1`, `.iNf` (and, as false alarms, core `0x1F`, `.inf`).
# Each search begins with a literal character (re skips to it quickly); a false alarm only costs time.
_NOT_CORE_NUMBERS = tuple(
    re.compile(pattern)
    for pattern in (
        r"_(?<![^\s\[{,:?+0-9._-]_)",
        r"_(?<=[0-9.][eE]_)",
        r"0(?<![^\s\[{,:?+-]0)[XxOoBb]",
        r"\.(?<![^\s\[{,:?+-]\.)[iInN]",
    )
)


class Unlocatable(Exception):
    """The keys' lines cannot be told: PyYAML, even as YAML 1.2, cannot read a file yaml-rs read."""


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


def _reason(error: BaseException) -> str:
    return " ".join(str(error).split())


@dataclass(frozen=True)
class ParsedFile:
    """One file read: its values as YAML 1.2 says, and (on demand) where each of them is."""

    path: str
    sha256: str
    data: Any
    text: str = field(repr=False)
    # Problems found by the node checks (a tag, an alias cycle): reported with the schema's.
    problems: tuple[Diagnostic, ...] = ()
    root: yaml.Node | None = field(default=None, repr=False)  # the node graph, when parsing composed it
    prescan: keyindex.Prescan | None = field(default=None, repr=False)  # the key index read from the text alone

    @cached_property
    def _tree(self) -> tuple[yaml.Node | None, str]:
        """The node graph, or why there is none (yaml-rs read the text, PyYAML even as YAML 1.2
        cannot: then no position is given as if it were known)."""
        if self.root is not None:
            return self.root, ""
        import yaml  # noqa: PLC0415 (PyYAML where nodes are needed only: see the imports)

        from reconcile.desired import yaml12  # noqa: PLC0415

        try:
            return yaml12.compose(self.text), ""
        except (yaml.YAMLError, RecursionError) as error:
            return None, _reason(error)

    @property
    def unlocatable(self) -> str:
        """Why positions in this file cannot be known ("" when they can)."""
        return self._tree[1]

    def locate(self, json_path: Iterable[object], *, key: bool = False) -> tuple[int, int]:
        from reconcile.desired import yamlcheck  # noqa: PLC0415 (PyYAML where nodes are needed only)

        return yamlcheck.locate(self._tree[0], json_path, key=key)

    def key_lines(self) -> list[tuple[int, int]]:
        """Line and column of each key item's `id` (of the item, when it has none), in order: from the
        text's proven index (keyindex), else the YAML structure; raises Unlocatable when it cannot
        be read. A file composed to locate a problem asks the structure, so the two never disagree
        on whether lines are known."""
        keys = self.data.get("keys") if isinstance(self.data, dict) else None
        count = len(keys) if isinstance(keys, list) else 0
        if self.root is None and "_tree" not in self.__dict__:
            indexed = keyindex.key_positions(self.text, keys if isinstance(keys, list) else [], self.prescan)
            if indexed is not None:
                return indexed
        import yaml  # noqa: PLC0415 (PyYAML where nodes are needed only: see the imports)

        from reconcile.desired import yamlcheck  # noqa: PLC0415

        try:
            if self.root is None:
                positions = yamlcheck.key_id_positions(self.text)  # cheaper than composing nodes
                if positions is not None and len(positions) == count:
                    return positions
            if self._tree[0] is None:
                raise Unlocatable(self.unlocatable)
            return [self.locate(["keys", index, "id"], key=True) for index in range(count)]
        except yaml.YAMLError as error:
            raise Unlocatable(str(error)) from error


def _is_yaml(path: Path) -> bool:
    return path.suffix.lower() in YAML_SUFFIXES


def discover(paths: Iterable[str]) -> list[Path]:
    """Every *.yaml / *.yml (in any case) under the given folders, recursively, and the files
    named, in sorted order: each file once, however often and by whatever path (or symlink) it
    was named. A named file without such a suffix is refused, not skipped."""
    found: dict[Path, Path] = {}  # real path → the path it was first named by
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            candidates = sorted(p for p in path.rglob("*") if _is_yaml(p) and p.is_file())
        elif path.is_file():
            if not _is_yaml(path):
                raise ConfigError(f"{raw}: not a desired file: their names end in .yaml or .yml")
            candidates = [path]
        else:  # a FIFO would block the run for ever, a device never end
            raise ConfigError(f"{raw}: {'not a regular file' if path.exists() else 'no such file or folder'}")
        for candidate in candidates:
            found.setdefault(candidate.resolve(), candidate)
    if not found:
        raise ConfigError(f"no *.yaml or *.yml files under {', '.join(paths)}")
    return sorted(found.values())


def _too_big(path: str, size: int, max_bytes: int) -> Diagnostic:
    return Diagnostic(path, 1, 1, f"file is {size:,} bytes, over the limit of {max_bytes:,} (--max-file-size)")


def _diagnostics(path: str, problems: Iterable[yamlcheck.Problem]) -> list[Diagnostic]:
    return [Diagnostic(path, p.line, p.column, p.message) for p in problems]


def _unreadable(path: str, text: str, reason: str) -> list[Diagnostic]:
    """yaml-rs refused the text: let PyYAML say where and why; else yaml-rs's own words."""
    from reconcile.desired import yamlcheck  # noqa: PLC0415 (PyYAML where nodes are needed only)

    located = _diagnostics(path, yamlcheck.read_nodes(text)[1])
    if located:
        return located
    position = _POSITION.search(reason)
    line, column = (int(position.group(1)), int(position.group(2))) if position else (1, 1)
    message = " ".join(reason.split("\n")[-1:]) if position else reason
    return [Diagnostic(path, line, column, f"YAML error: {message.strip()}")]


def _values(text: str) -> Any:
    """yaml-rs's reading of a text: YAML 1.2, but for a tab right after a `:` (see yaml12)."""
    try:
        return yaml_rs.loads(text, parse_datetime=False, alias_limits=_ALIAS_LIMITS)
    except yaml_rs.YAMLDecodeError as error:
        from reconcile.desired import yaml12  # noqa: PLC0415 (PyYAML where nodes are needed only)

        spaced = yaml12.space_tabs_after_colons(text) if "followed by a valid YAML whitespace" in str(error) else text
        if spaced == text:
            raise
        return yaml_rs.loads(spaced, parse_datetime=False, alias_limits=_ALIAS_LIMITS)


# A text this long is read on two cores (see `_Beside`); a shorter one is read sooner on one.
_BESIDE_CHARACTERS = 1 << 18


@dataclass(frozen=True)
class _TextFacts:
    """What the text alone tells: its checksum, whether its values need the node graph, and the
    key index (when they do not)."""

    sha256: str
    needs_nodes: bool
    prescan: keyindex.Prescan | None


def _text_facts(text: str, raw: bytes) -> _TextFacts:
    # Explicit tags need a `!` and anchors a `&`: only such texts, and those that may hold a number
    # YAML 1.2 reads as a string, pay for the nodes (yaml-rs drops unknown tags and reads a
    # self-referencing alias as null).
    needs_nodes = "!" in text or "&" in text or any(p.search(text) for p in _NOT_CORE_NUMBERS)
    prescan = None if needs_nodes else keyindex.prescan(text)
    return _TextFacts(hashlib.sha256(raw).hexdigest(), needs_nodes, prescan)


class _Beside(threading.Thread):
    """`_text_facts` on another thread while yaml-rs reads the same text: yaml-rs lets go of the
    interpreter while it scans (0.7 s of its 1.4 s for 100,000 keys), and these scans take 0.5 s."""

    def __init__(self, work: Callable[[], _TextFacts]) -> None:
        super().__init__(name="text-facts", daemon=True)
        self._work = work
        self._facts: _TextFacts | None = None
        self._error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self._facts = self._work()
        except BaseException as error:  # raised where the facts are asked for
            self._error = error

    def facts(self) -> _TextFacts:
        self.join()
        if self._error is not None:
            raise self._error
        assert self._facts is not None
        return self._facts


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
    beside = _Beside(lambda: _text_facts(text, raw)) if len(text) >= _BESIDE_CHARACTERS else None
    try:
        data = _values(text)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as error:
        return _unreadable(path, text, str(error))
    finally:
        if beside is not None:
            beside.join()  # (its text and bytes are let go with the file's)
    facts = beside.facts() if beside is not None else _text_facts(text, raw)
    if data is None:
        return [Diagnostic(path, 1, 1, f"file is empty: expected {expected}")]
    # Several documents come back as a list (PyYAML names that error); a single top-level list is
    # left to validation.
    if not (isinstance(data, list) or facts.needs_nodes):
        return ParsedFile(path, facts.sha256, data, text, prescan=facts.prescan)
    from reconcile.desired import yaml12, yamlcheck  # noqa: PLC0415 (PyYAML where nodes are needed only)

    root, found = yamlcheck.read_nodes(text)
    problems = _diagnostics(path, found)
    if problems and (isinstance(data, list) or any(problem.fatal for problem in found)):
        return problems
    if root is not None:  # (checked for alias bombs above: walking it is bounded)
        try:
            data = yaml12.core_values(root, data)
        except yaml12.Disagreement as error:  # (a `!!set`, say: the tag is the problem to name)
            line, column = error.position
            return problems or [Diagnostic(path, line, column, f"cannot read this value exactly as YAML 1.2: {error}")]
    return ParsedFile(path, facts.sha256, data, text, tuple(problems), root)


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
