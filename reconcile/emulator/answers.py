"""What a handler returns, and the Descope error body every refusal carries."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconcile.emulator.store import missing


@dataclass
class Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # sent as is instead of the JSON of `body`
    drop: bool = False  # close the connection without answering
    fault: str | None = None  # the fault injected, for the request log
    applied: bool | None = None  # a mutation: whether the change was made (None for a read)

    def payload(self) -> bytes:
        """The bytes sent."""
        return self.raw if self.raw is not None else json.dumps(self.body).encode()


class Deferred(Answer):
    """An answer whose body is made only when read (by a test's hook): until then the bytes sent are
    `encoded`, the JSON that body would have; once the body is read or set, it is what is sent."""

    def __init__(self, status: int, make: Callable[[], Any], encoded: bytes) -> None:
        super().__init__(status)  # sets body to None, through the setter below
        self._make: Callable[[], Any] | None = make
        self._encoded: bytes | None = encoded

    @property
    def body(self) -> Any:
        if self._make is not None:
            self.body = self._make()
        return self._body

    @body.setter
    def body(self, value: Any) -> None:
        self._body, self._make, self._encoded = value, None, None

    def payload(self) -> bytes:
        if self.raw is None and self._encoded is not None:
            return self._encoded
        return super().payload()


def error(status: int, code: str, description: str, message: str = "") -> Answer:
    return Answer(status, {"errorCode": code, "errorDescription": description, "errorMessage": message})


def one_id(body: Mapping[str, Any]) -> str:
    key_id = body.get("id")
    if not isinstance(key_id, str) or not key_id:
        raise missing("id is required")
    return key_id


def many_ids(body: Mapping[str, Any]) -> list[str]:
    ids = body.get("ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
        raise missing("ids is required: a non-empty list of access key ids")
    return ids
