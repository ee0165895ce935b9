"""Where each key item's `id` is, from regular-expression scans of the text: the cheap index that
spares a big file a second parse (PyYAML's events cost 3x yaml-rs's whole reading).

It reads only the block layout that desired files are written in (`keys:` at the top level, its
items `- ` at one indentation, each item's fields at one column after the dash) and proves every
position against the values yaml-rs read: each item's `id:` line must spell that item's id, and
there must be exactly one item line per key. Anything else (flow style, a folded or escaped id,
tabs, `\r` line breaks, an item with two `id:` lines at its column) gives None, and the caller asks
the parse events: a position is never guessed from text that merely looks like a key.

The layout `export` writes (every item opening with its id, quoted or plain, nothing after it) is
proven by two scans and a comparison of lists, with no step per key in Python; other layouts are
proven item by item.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import accumulate, repeat
from typing import Any

# Each pattern that scans the text starts with a line break: the regex engine then skips from one
# line break to the next, where `^` with MULTILINE would try every character.
_KEYS_LINE = re.compile(r"keys[ \t]*:[ \t]*(?:#.*)?(?=\n|\Z)")
_FIRST_ITEM = re.compile(r"(?:[ \t]*(?:#.*)?\n)*( *)-( +)(?=[^\s#])")
_COMMENT = re.compile(r"[ \t]+#.*")
# The root is a block mapping: its first line (after blank lines, comments, directives and a bare
# `---`) is a plain key at column 0. Else (`{...}`, a tag, an anchor) a `keys:` line may be text
# inside a flow value.
_BLOCK_ROOT = re.compile(r"(?:(?:[ \t]*(?:#.*)?|---[ \t]*(?:#.*)?|%.*)\n)*[^\s#{\[!&*\"'?%|>@`,\]}-]")
# A root key that could be `keys` written otherwise than as the `keys:` line proven here (quoted,
# complex, a tag, an alias, a merge, a flow value on its line): then a `keys:` line found may be
# text inside a flow value that runs over lines down to column 0 (yaml-rs reads those).
_OTHER_ROOT_KEY = re.compile(r"\n(?:[\"'?!&*{\[<]|keys[ \t]*:[ \t]*[^\s#])")


def _end(indent: int) -> str:
    """The first line after a `keys` list at `indent` (after its line break): a top-level line."""
    return r"(?!- |-$)[^ \t\n#]" if indent == 0 else r"[^ \t\n#]"


@cache
def _lines(indent: int, column: int) -> re.Pattern[str]:
    """An item line of a `keys` list at `indent` (`item`, and `same` when the id is its first field),
    an `id:` line at `column` (`own`), and the first top-level line after the list (`end`)."""
    return re.compile(
        rf"\n(?:(?P<item> {{{indent}}}-(?P<gap> +)(?=[^\s#]))(?P<same>id[ \t]*:)?"
        rf"|(?P<own> {{{column}}})id[ \t]*:|(?P<end>{_end(indent)}))"
    )


@cache
def _item_line(indent: int) -> re.Pattern[str]:
    return re.compile(rf"\n {{{indent}}}-")


@cache
def _ids_first(indent: int, gap: int, column: int) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """The first line after a `keys` list at `indent`; and its item lines and `id:` lines at `column`,
    the id being the group of an item line that opens with it, written plain without quotes,
    backslashes or trailing blanks, or in double quotes without escapes (a quote consumed only when
    its closing one ends the line), with nothing after it. (Not a lazy group: it would cost three
    times as much.)"""
    spelled = r"""[ \t]*(?:(?:"(?=[^"\\\n]*"[ \t]*(?:\n|\Z)))?([^"'\\\n]*)"?[ \t]*(?=\n|\Z))?"""
    return (
        re.compile(rf"\n{_end(indent)}"),
        re.compile(rf"\n(?: {{{indent}}}-(?:{' ' * gap}id[ \t]*:{spelled})?| {{{column}}}id[ \t]*:)"),
    )


def _spells(rest: str, value: Any) -> bool:
    """Whether the text after `id:` is `value` plain, or in quotes that need no escape, with at
    most a comment after it."""
    if not isinstance(value, str) or "\\" in value or '"' in value or "'" in value:
        return False
    rest = rest.strip(" \t")
    for spelled in (value, f'"{value}"', f"'{value}'"):
        if rest == spelled or (rest.startswith(spelled) and _COMMENT.fullmatch(rest, len(spelled))):
            return True
    return False


def _keys_lines(text: str, start: int = 0) -> Iterator[int]:
    """Where each top-level `keys:` line from `start` on begins."""
    if start == 0 and _KEYS_LINE.match(text):
        yield 0
    at = text.find("\nkeys", start)
    while at >= 0:
        if _KEYS_LINE.match(text, at + 1):
            yield at + 1
        at = text.find("\nkeys", at + 1)


def _the_id_first(text: str, start: int, indent: int, gap: int) -> tuple[list[int], list[str | None], int]:
    """The marks, the ids they spell and the list's end for the layout `export` writes (see
    `_ids_first`): the caller compares the ids with the keys' (a None: not that layout)."""
    column = indent + 1 + gap
    end_line, lines = _ids_first(indent, gap, column)
    found = end_line.search(text, start)
    end = len(text) if found is None else found.start()
    items = list(lines.finditer(text, start, end))
    return [item.start() + 1 + column for item in items], list(map(re.Match.group, items, repeat(1))), end


def _each_item(text: str, keys: Sequence[Any], start: int, indent: int, column: int) -> tuple[list[int], int] | None:
    """The marks and the list's end, item by item."""
    marks: list[int] = []
    ids: list[int] = []  # `id:` lines of the current item
    for line in _lines(indent, column).finditer(text, start):
        if line.group("own") is not None:
            ids.append(line.start() + 1 + column)
            continue
        if marks and not _proves(text, keys, len(marks) - 1, marks, ids):
            return None
        if line.group("end") is not None:
            return marks, line.start()
        if len(line.group("gap")) != column - indent - 1 or len(marks) == len(keys):
            return None
        marks.append(line.start() + 1 + column)
        ids = [marks[-1]] if line.group("same") is not None else []
    if marks and not _proves(text, keys, len(marks) - 1, marks, ids):
        return None
    return marks, len(text)


def _proves(text: str, keys: Sequence[Any], index: int, marks: list[int], ids: list[int]) -> bool:
    """Item `index` is where `marks` says: its id is spelled on its only `id:` line (then the mark
    moves there), or it has no id and no `id:` line."""
    key_id = keys[index].get("id") if isinstance(keys[index], dict) else None
    if key_id is None:
        return not ids
    if len(ids) != 1:
        return False
    value_at = text.index(":", ids[0]) + 1
    line_end = text.find("\n", value_at)
    if not _spells(text[value_at : len(text) if line_end < 0 else line_end], key_id):
        return False
    marks[index] = ids[0]
    return True


@dataclass(frozen=True)
class _Layout:
    head: int  # where the `keys:` line begins
    start: int  # the line break before the first item
    indent: int  # the items' dashes' column (0-based)
    gap: int  # blanks between a dash and its item's first field

    @property
    def column(self) -> int:
        return self.indent + 1 + self.gap


def _layout(text: str) -> _Layout | None:
    """Where the `keys` list is and how its items are indented."""
    if "\r" in text or not _BLOCK_ROOT.match(text):
        return None
    head = next(_keys_lines(text), None)
    after = None if head is None else _KEYS_LINE.match(text, head)
    first = None if after is None else _FIRST_ITEM.match(text, after.end() + 1)
    if head is None or first is None:
        return None
    return _Layout(head, first.start(1) - 1, len(first.group(1)), len(first.group(2)))


def _alone(text: str, layout: _Layout, end: int) -> bool:
    """Only blank lines and comments come between the `keys:` line and the first item, and no line
    of the list is a top-level one: another `keys:` line, or another way to write the root's `keys`,
    can only be before or after the list (a scan of the list's lines would cost 10%). No item line
    after the list's end: else that "end" was a flow value's line run down to column 0 inside an
    item, and items counted before it may be that value's text."""
    if _OTHER_ROOT_KEY.search(text, 0, layout.head) or _OTHER_ROOT_KEY.search(text, end):
        return False
    if _item_line(layout.indent).search(text, end):
        return False
    return next(_keys_lines(text, end), None) is None


def _marks(text: str, keys: Sequence[Any], layout: _Layout) -> list[int] | None:
    """The offset of each item's `id` key (of its first field, when it has no id)."""
    marks, spelled, end = _the_id_first(text, layout.start, layout.indent, layout.gap)
    # (an item without an id is placed at its first field by the scan item by item)
    quick = len(marks) == len(keys) and None not in spelled and spelled == _ids(keys)
    if not quick:
        found = _each_item(text, keys, layout.start, layout.indent, layout.column)
        if found is None or len(found[0]) != len(keys):
            return None
        marks, end = found
        # Every line at the list's indentation opening with `-` is one of its items (an item opening
        # with `-` alone or `- #` too): else a flow value's text, run down to the items' column, may
        # have been counted as items. (The quick scan counted every such line.)
        if text.count(f"\n{' ' * layout.indent}-", layout.start, end) != len(keys):
            return None
    return marks if _alone(text, layout, end) else None


def _ids(keys: Sequence[Any]) -> list[str | None]:
    return [key.get("id") if isinstance(key, dict) else None for key in keys]


def _positions(text: str, marks: list[int], column: int) -> list[tuple[int, int]]:
    """Each mark's line: the line breaks before it, counted from the mark before (in C, not per key)."""
    lines = accumulate(map(text.count, repeat("\n"), [0, *marks[:-1]], marks), initial=1)
    next(lines)
    return list(zip(lines, repeat(column + 1)))


@dataclass(frozen=True)
class Prescan:
    """The export layout's index, read from the text alone (while yaml-rs reads the same text, on
    the other core: it lets go of the interpreter as it scans): each item's id as its line spells
    it, and where. `key_positions` takes it once the ids are proven to be the keys' own."""

    ids: list[str | None]
    positions: list[tuple[int, int]]


def prescan(text: str) -> Prescan | None:
    """None when the text is not in the layout `export` writes (then `key_positions` reads it)."""
    layout = _layout(text)
    if layout is None:
        return None
    marks, spelled, end = _the_id_first(text, layout.start, layout.indent, layout.gap)
    if not marks or None in spelled or not _alone(text, layout, end):
        return None
    return Prescan(spelled, _positions(text, marks, layout.column))


def key_positions(text: str, keys: Sequence[Any], scanned: Prescan | None = None) -> list[tuple[int, int]] | None:
    """Line and column (1-based) of each item's `id` key (of the item, without one), as the parse
    events say them; None when the text is not in the layout this index proves. `scanned`: the
    text's `prescan`, when it was made."""
    if scanned is not None and scanned.ids == _ids(keys):
        return scanned.positions
    if not keys:
        if "\r" in text or not _BLOCK_ROOT.match(text) or _OTHER_ROOT_KEY.search(text):
            return None
        heads = _keys_lines(text)
        return [] if next(heads, None) is not None and next(heads, None) is None else None
    layout = _layout(text)
    marks = None if layout is None else _marks(text, keys, layout)
    return None if marks is None or layout is None else _positions(text, marks, layout.column)
