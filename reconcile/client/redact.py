"""Keep the management key out of every line the tool writes, whatever produced the line."""

from __future__ import annotations

import logging

MASK = "***"


class SecretRedactor(logging.Filter):
    """Installed on every log handler: replaces each known secret in the formatted record."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: list[str] = []

    def add(self, secret: str) -> None:
        if secret and secret not in self.secrets:
            self.secrets.append(secret)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

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
