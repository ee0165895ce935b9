"""Where each key item's `id` is, from one pass of a regular expression over the text: the cheap
index that spares a big file a second parse (PyYAML's events cost 3x yaml-rs's whole reading).

It reads only the block layout that desired files are written in (`keys:` at the top level, its
items `- ` at one indentation, each item's fields at one column after the dash) and proves every
position against the values yaml-rs read: each item's `id:` line must spell that item's id, and
there must be exactly one item line per key. Anything else (flow style, a folded or escaped id,
tabs, `\r` line breaks, an item with two `id:` lines at its column) gives None, and the caller asks
the parse events: a position is never guessed from text that merely looks like a key.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from typing import Any

# Each pattern that scans the text starts with a line break: the regex engine then skips from one
# line break to the next, where `^` with MULTILINE would try every character.
_KEYS_LINE = re.compile(r"keys[ \t]*:[ \t]*(?:#.*)?(?=\n|\Z)")
_FIRST_ITEM = re.compile(r"(?:[ \t]*(?:#.*)?\n)*( *)-( +)(?=[^\s#])")
_COMMENT = re.compile(r"[ \t]+#.*")


@cache
def _lines(indent: int, column: int) -> re.Pattern[str]:
    """An item line of a `keys` list at `indent` (`item`, and `same` when the id is its first field),
    an `id:` line at `column` (`own`), and the first top-level line after the list (`end`)."""
    end = r"(?!- |-$)[^ \t\n#]" if indent == 0 else r"[^ \t\n#]"
    return re.compile(
        rf"\n(?:(?P<item> {{{indent}}}-(?P<gap> +)(?=[^\s#]))(?P<same>id[ \t]*:)?"
        rf"|(?P<own> {{{column}}})id[ \t]*:|(?P<end>{end}))"
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


def _head(text: str) -> int | None:
    """Where the list of keys starts: after the one top-level `keys:` line (None without exactly one)."""
    found = [0] if _KEYS_LINE.match(text) else []
    at = text.find("\nkeys")
    while at >= 0:
        if _KEYS_LINE.match(text, at + 1):
            found.append(at + 1)
        at = text.find("\nkeys", at + 1)
    if len(found) != 1:
        return None
    head = _KEYS_LINE.match(text, found[0])
    assert head is not None
    return head.end()


def _marks(text: str, keys: Sequence[Any]) -> list[int] | None:
    """The offset of each item's `id` key (of its first field, when it has no id)."""
    head = _head(text)
    if head is None:
        return None
    first = _FIRST_ITEM.match(text, head + 1)
    if first is None:
        return None
    indent = len(first.group(1))
    column = indent + 1 + len(first.group(2))
    marks: list[int] = []
    ids: list[int] = []  # `id:` lines of the current item
    for line in _lines(indent, column).finditer(text, first.start(1) - 1):
        if line.group("own") is not None:
            ids.append(line.start() + 1 + column)
            continue
        if marks and not _proves(text, keys, len(marks) - 1, marks, ids):
            return None
        if line.group("end") is not None:
            break
        if len(line.group("gap")) != column - indent - 1 or len(marks) == len(keys):
            return None
        marks.append(line.start() + 1 + column)
        ids = [marks[-1]] if line.group("same") is not None else []
    else:
        if marks and not _proves(text, keys, len(marks) - 1, marks, ids):
            return None
    return marks if len(marks) == len(keys) else None


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


def key_positions(text: str, keys: Sequence[Any]) -> list[tuple[int, int]] | None:
    """Line and column (1-based) of each item's `id` key (of the item, without one), as the parse
    events say them; None when the text is not in the layout this index proves."""
    if "\r" in text:
        return None
    if not keys:
        return [] if _head(text) is not None else None
    marks = _marks(text, keys)
    if marks is None:
        return None
    positions = []
    line, counted = 1, 0
    for mark in marks:
        line += text.count("\n", counted, mark)
        counted = mark
        positions.append((line, mark - text.rfind("\n", 0, mark)))
    return positions
