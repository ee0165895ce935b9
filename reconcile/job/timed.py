"""The client as the executor sees it, noting per key when each write went out and came back and
when each key was read: the overwritten check compares those times with the audit trail's."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, TypeVar

from reconcile.client.descope import DescopeClient
from reconcile.secrets.secret import Secret
from reconcile.trail.writes import Timeline, WriteKind

T = TypeVar("T")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class TimedWrites:
    """The client as the executor sees it, noting per key each write's kind, when it went out and
    when it came back: the evidence that tells this run's records in the trail from others'."""

    def __init__(self, client: DescopeClient, timeline: Timeline) -> None:
        self._client = client
        self._timeline = timeline

    async def _timed(self, key_ids: Sequence[str], kind: WriteKind, write: Awaitable[T]) -> T:
        sent = now_ms()
        try:
            return await write
        finally:  # answered or not: a lost answer may hide a change made
            for key_id in key_ids:
                self._timeline.mark_write(key_id, kind, sent, now_ms())

    async def update_access_key(self, request_body: Mapping[str, Any]) -> dict[str, Any]:
        key_id = str(request_body.get("id"))
        return await self._timed([key_id], WriteKind.UPDATE, self._client.update_access_key(request_body))

    async def load_access_key(self, key_id: str) -> dict[str, Any]:
        """The re-check before a write (`--recheck`, `apply --plan`): the key's read, as late as it gets."""
        sent = now_ms()
        key = await self._client.load_access_key(key_id)
        self._timeline.mark_read([key_id], sent)
        return key

    async def set_status(self, key_ids: Sequence[str], status: str) -> None:
        await self._timed(key_ids, WriteKind.STATUS, self._client.set_status(key_ids, status))

    async def delete_access_keys(self, key_ids: Sequence[str]) -> None:
        await self._timed(key_ids, WriteKind.DELETE, self._client.delete_access_keys(key_ids))

    async def create_access_key(self, request_body: Mapping[str, Any]) -> tuple[dict[str, Any], Secret]:
        """Timed under the new key's id, known from the answer only (a lost answer: nothing to credit)."""
        sent = now_ms()
        key, secret = await self._client.create_access_key(request_body)
        self._timeline.mark_write(str(key.get("id")), WriteKind.CREATE, sent, now_ms())
        return key, secret

    async def rotate_access_key(self, key_id: str) -> tuple[dict[str, Any], Secret]:
        return await self._timed([key_id], WriteKind.ROTATE, self._client.rotate_access_key(key_id))

    async def search_access_keys(self) -> list[dict[str, Any]]:
        return await self._client.search_access_keys()
