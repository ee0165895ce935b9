"""Keep the management key out of every line the tool writes, whatever produced the line.

A secret is looked for in every form text may give it: as it is; escaped as Python (`repr`, bytes)
and JSON (`\\uXXXX`) write it; percent-encoded as in a URL (either case of hex); HTML-escaped; and
base64-encoded at each of the three alignments in a longer string (a proxy that echoes an
`Authorization: Basic ...` header, a header dumped as base64), in both alphabets.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import re
from urllib.parse import quote, quote_plus

MASK = "***"
MIN_BASE64_FRAGMENT = 8  # a shorter fragment could match ordinary text


def _base64_forms(data: bytes) -> set[str]:
    """The characters of base64(prefix + data + suffix) that depend on `data` alone, for each length
    of the prefix modulo 3: wherever the secret sits in an encoded header, one of these is in it."""
    forms = set()
    for shift in range(3):
        encoded = base64.b64encode(bytes(shift) + data).decode("ascii")
        start = -(-8 * shift // 6)  # the first characters also hold bits of the prefix
        end = 8 * (shift + len(data)) // 6  # the last one may hold bits of what follows
        fragment = encoded[start:end]
        if len(fragment) >= MIN_BASE64_FRAGMENT:
            forms |= {fragment, fragment.replace("+", "-").replace("/", "_")}
    return forms


def encoded_forms(secret: str) -> set[str]:
    """Every form of `secret` that text written by a program may hold."""
    percent = {quote(secret, safe=""), quote(secret), quote_plus(secret, safe="")}
    forms = {
        secret,
        repr(secret)[1:-1],
        secret.encode("unicode_escape").decode("ascii"),
        repr(secret.encode())[2:-1],
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        html.escape(secret),
        *percent,
        *(re.sub("%[0-9A-F]{2}", lambda match: match.group().lower(), form) for form in percent),
        *_base64_forms(secret.encode()),
    }
    return {form for form in forms if form}


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
        longest_first = sorted(self._forms, key=lambda form: (-len(form), form))
        self._pattern = re.compile("|".join(map(re.escape, longest_first)))

    def redact(self, text: str) -> str:
        return self._pattern.sub(MASK, text) if self._pattern is not None else text

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
