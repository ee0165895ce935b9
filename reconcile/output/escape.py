"""Text from outside (the server, the desired files, the environment) made safe to show.

A key's name is data, never a command. Printed raw, `\\x1b[2K` erases a terminal line, `\\r` hides
what came before it, a bidi override shows text in another order than it reads, and a line that
starts with `::` (or holds `##[`) is run by GitHub Actions as a workflow command. Each function
here is for one kind of output; every string that came from outside goes through one of them:

- `text_block` / `text_line`: terminals and logs (stdout, stderr), line by line;
- `md_text`, `md_code`, `html_text`: Markdown (step summaries, the audit) and the HTML inside it;
- `gh_data`, `gh_property`: the message and the properties of a `::error ...::` annotation;
- `json_value`, `json_chunks`: JSON and YAML written to files (every control a `\\u` escape): the
  export, and the report, the saved plan and the audit, which people open in editors and CI logs.

Escapes are shown as `\\n`, `\\x1b`, `\\u202e`: visible, and never the character itself.
"""

from __future__ import annotations

import json
import logging
import re
from _json import make_encoder
from collections.abc import Iterable, Iterator
from json.encoder import encode_basestring
from typing import Any

# C0 and C1 controls, DEL, Unicode line and paragraph separators, the bidirectional formatting
# characters (marks, embeddings, overrides, isolates: "Trojan Source"), and what UTF-8 or YAML
# cannot hold (lone surrogates, U+FFFE and U+FFFF).
_CONTROLS = "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff]"
# GitHub's runner also reads the legacy `##[command]` anywhere in a line.
_UNSAFE = re.compile(f"{_CONTROLS}|##\\[")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "##[": "\\x23#["}
# Backslash-escaped in Markdown text: what opens code, emphasis, links, HTML, entities, math,
# strikethrough or a table cell.
_MARKDOWN = re.compile(r"([\\`*_\[\]<>&|~$])")


def _escape(match: re.Match[str]) -> str:
    found = match.group()
    if found in _NAMED:
        return _NAMED[found]
    code = ord(found)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def plain(value: object) -> str:
    """One line of text: every control or direction character shown as an escape."""
    return _UNSAFE.sub(_escape, str(value))


def text_line(value: object) -> str:
    """A whole line for a terminal or a log: `plain`, and never starting with `::` (GitHub's runner
    trims leading whitespace before it looks)."""
    line = plain(value)
    body = line.lstrip()
    if body.startswith("::"):
        return line[: len(line) - len(body)] + "\\x3a" + body[1:]
    return line


def text_block(lines: Iterable[object]) -> str:
    """Lines for stdout: each one through `text_line`, newline-terminated."""
    return "".join(text_line(line) + "\n" for line in lines)


def md_text(value: object) -> str:
    """Text inside a Markdown line or table cell: read as text, never as Markdown or HTML."""
    return _MARKDOWN.sub(r"\\\1", plain(value))


def md_code(value: object) -> str:
    """An id as inline code; text that would end the code span or split a table cell stays plain text."""
    text = plain(value)
    return f"`{text}`" if "`" not in text and "|" not in text else md_text(text)


# html.escape(quote=True), without importing html (and its entity table) on every start.
_HTML_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;"})


def html_text(value: object) -> str:
    """Text inside raw HTML (`<summary>`), where Markdown escapes do not apply."""
    return plain(value).translate(_HTML_ESCAPES)


def gh_data(value: object) -> str:
    """The message of a workflow command (`::error ...::MESSAGE`): GitHub's escapes for `%`, `\\r` and
    `\\n` (it turns them back), and `plain` for every other control."""
    return plain(str(value).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A"))


def gh_property(value: object) -> str:
    """A property value of a workflow command (`file=...`): the message's rules, and `:` and `,`."""
    return gh_data(value).replace(":", "%3A").replace(",", "%2C")


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


# What a JSON text must not carry raw (`_CONTROLS`): json.dumps escapes C0 in strings itself, so a raw
# line break is the indentation's, and kept; `##[` commands only what is printed, not a file.
_UNSAFE_IN_JSON = re.compile(_CONTROLS.replace("\x00-\x1f", "\x00-\x09\x0b-\x1f"))


def _not_json(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# json.dumps(value, ensure_ascii=False) on one line, from one C encoder made once: JSONEncoder.encode
# makes one per call (0.1 s of a 100,000-key report). No cycle check: what is written is a tree.
_line_chunks = make_encoder(None, _not_json, encode_basestring, None, ": ", ", ", False, False, True)


def _one_line(value: Any) -> str:
    return "".join(_line_chunks(value, 0))


def _escaped(text: str) -> str:
    """`text` with every character of `_UNSAFE_IN_JSON` as a `\\u` escape. Text that is all ASCII
    (most of a report) holds no such character but DEL (json.dumps escapes C0 itself): it is not
    scanned character by character (a third of a big report's write)."""
    if text.isascii() and "\x7f" not in text:
        return text
    return _UNSAFE_IN_JSON.sub(_json_escape, text)


def json_value(value: Any, *, sort_keys: bool = False, indent: int | None = None) -> str:
    """JSON (so also YAML), on one line unless `indent`; every control or direction character as a
    `\\u` escape (outside strings JSON holds none, so the document reads back the same)."""
    return _escaped(json.dumps(value, ensure_ascii=False, sort_keys=sort_keys, indent=indent))


LINES_PER_PIECE = 1024  # of a list whose items are one line each: joined in C, a piece at a time


def _indented(value: Any, depth: int, prefix: str) -> Iterator[str]:
    """JSON with each container above `depth` spread over lines, two spaces per level, and
    everything deeper on one line, piece by piece. json.dumps with `indent` runs its pure-Python
    encoder (7 s for the report of a 10,000-key plan under a profiler): this way the C encoder
    writes the keys."""
    inner = prefix + "  "
    separator = f",\n{inner}"  # one string, however many items
    if depth > 0 and isinstance(value, dict) and value:
        yield "{\n" + inner
        for index, (name, item) in enumerate(value.items()):
            yield f"{separator if index else ''}{_one_line(str(name))}: "
            yield from _indented(item, depth - 1, inner)
        yield f"\n{prefix}}}"
    elif depth == 1 and isinstance(value, list) and value:  # (the report's keys: one line each)
        yield "[\n" + inner
        for start in range(0, len(value), LINES_PER_PIECE):
            lines = separator.join(map(_one_line, value[start : start + LINES_PER_PIECE]))
            yield f"{separator if start else ''}{lines}"
        yield f"\n{prefix}]"
    elif depth > 0 and isinstance(value, list) and value:
        yield "[\n" + inner
        for index, item in enumerate(value):
            if index:
                yield separator
            yield from _indented(item, depth - 1, inner)
        yield f"\n{prefix}]"
    else:
        yield _one_line(value)


CHUNK_CHARACTERS = 1 << 20


def json_chunks(value: Any) -> Iterator[str]:
    """A JSON file's whole text (report, saved plan, audit) in escaped chunks of about a million
    characters: the outer levels indented (a key of the report is one line), escaped as
    `json_value`. A file written chunk by chunk never holds its text whole in memory (a 100,000-key
    report is 21 MB, which joining, escaping and encoding copied three times)."""
    batch: list[str] = []
    size = 0
    for piece in _indented(value, 2, ""):
        batch.append(piece)
        size += len(piece)
        if size >= CHUNK_CHARACTERS:
            yield _escaped("".join(batch))
            batch, size = [], 0
    batch.append("\n")
    yield _escaped("".join(batch))


class LogEscaper(logging.Filter):
    """On every log handler, after the secret is redacted: each record is one safe line."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = text_line(record.getMessage()), None
        return True
