"""What a handler returns, and the Descope error body every refusal carries."""

from __future__ import annotations

from collections.abc import Mapping
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
