"""Keep the management key out of every line the tool writes, whatever produced the line.

A secret is looked for in every form text may give it: as it is; escaped as Python (`repr`, bytes)
and JSON encoders (`\\uXXXX`, `\\/`) write it; percent-encoded as in a URL (hex digits in any case);
HTML-escaped; and base64-encoded at each of the three alignments in a longer string (a proxy that
echoes an `Authorization: Basic ...` header, a header dumped as base64), in both alphabets.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "***"
MIN_BASE64_FRAGMENT = 8  # a shorter fragment could match ordinary text


def _base64_forms(data: bytes) -> set[str]:
    """The characters of base64(prefix + data + suffix) that depend on `data` alone, for each length
    of the prefix modulo 3: wherever the secret sits in an encoded header, one of these is in it."""
    import base64  # noqa: PLC0415 (only once a secret is known: the log filter is on every command, validate too)

    forms = set()
    for shift in range(3):
        encoded = base64.b64encode(bytes(shift) + data).decode("ascii")
        start = -(-8 * shift // 6)  # the first characters also hold bits of the prefix
        end = 8 * (shift + len(data)) // 6  # the last one may hold bits of what follows
        fragment = encoded[start:end]
        if len(fragment) >= MIN_BASE64_FRAGMENT:
            forms |= {fragment, fragment.replace("+", "-").replace("/", "_")}
    return forms


_BYTE_ESCAPES = {0x5C: "\\\\", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}


def _python_forms(secret: str) -> set[str]:
    """As `repr` writes the secret, as text or as UTF-8 bytes (a header value), with either quote escaped."""
    as_text = secret.encode("unicode_escape").decode("ascii")
    as_bytes = "".join(
        chr(byte) if 0x20 <= byte < 0x7F and byte != 0x5C else _BYTE_ESCAPES.get(byte, f"\\x{byte:02x}")
        for byte in secret.encode()
    )
    return {
        escaped
        for form in (as_text, as_bytes)
        for escaped in (form, form.replace("'", "\\'"), form.replace('"', '\\"'))
    }


def _json_forms(secret: str) -> set[str]:
    """As JSON encoders write it: ASCII or not, `<>&` as `\\u003c` (Go), `/` as `\\/` (PHP)."""
    plain = json.dumps(secret)[1:-1]
    go = plain.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return {plain, json.dumps(secret, ensure_ascii=False)[1:-1], go, plain.replace("/", "\\/")}


def encoded_forms(secret: str) -> set[str]:
    """Every form of `secret` that text written by a program may hold."""
    import html  # noqa: PLC0415 (as base64 above)

    percent = {quote(secret, safe=""), quote(secret), quote_plus(secret, safe="")}  # hex in any case: see _pattern
    forms = {
        secret,
        *_python_forms(secret),
        *_json_forms(secret),
        html.escape(secret),
        *percent,
        *_base64_forms(secret.encode()),
    }
    return {form for form in forms if form}


def _pattern(form: str) -> str:
    """`form` as a regular expression; the hex digits of a `%XX` escape match in either case."""
    return re.sub(r"%([0-9A-F]{2})", r"%(?i:\1)", re.escape(form))


class SecretRedactor(logging.Filter):
    """Replaces each known secret, in any of its forms, by `MASK`; installed on every log handler
    (on the formatted record) and used by the client on every error text it builds."""

    def __init__(self) -> None:
        super().__init__()
        self._forms: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, secret: str) -> None:
        if not secret:
            return
        self._forms |= encoded_forms(secret)
        self._pattern = None  # compiled when next used: many secrets added at once cost one compile

    def clear(self) -> None:
        """Forget every secret: a command line run in-process is over, the next one adds its own."""
        self._forms, self._pattern = set(), None

    def redact(self, text: str) -> str:
        if not self._forms:
            return text
        if self._pattern is None:
            longest_first = sorted(self._forms, key=lambda form: (-len(form), form))
            self._pattern = re.compile("|".join(map(_pattern, longest_first)))
        return self._pattern.sub(MASK, text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self.redact(message)
        if record.exc_info and record.exc_info[1] is not None:
            cleaned += " (" + self.redact(repr(record.exc_info[1])) + ")"
            record.exc_info = None
            record.exc_text = None
        record.msg, record.args = cleaned, None
        return True


redactor = SecretRedactor()


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` without any management key the run knows (`redactor`) or any of `secrets` (the issued
    cleartexts, for the secrets command's standard error), in any of their forms."""
    issued = SecretRedactor()
    for secret in secrets:
        issued.add(secret)
    return redactor.redact(issued.redact(text))
