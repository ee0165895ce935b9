"""The client as the executor sees it, noting per key when each write went out and came back and
when each key was read: the overwritten check compares those times with the audit trail's."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from reconcile.client.descope import DescopeClient
from reconcile.secrets.secret import Secret
from reconcile.trail.overwrite import Timeline


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class TimedWrites:
    """The client as the executor sees it, noting per key when each write went out and came back."""

    def __init__(self, client: DescopeClient, timeline: Timeline) -> None:
        self._client = client
        self._timeline = timeline

    async def update_access_key(self, request_body: Mapping[str, Any]) -> dict[str, Any]:
        key_id = str(request_body.get("id"))
        self._timeline.mark_sent(key_id, now_ms())
        try:
            return await self._client.update_access_key(request_body)
        finally:
            self._timeline.mark_done(key_id, now_ms())

    async def load_access_key(self, key_id: str) -> dict[str, Any]:
        """The re-check before a write (`--recheck`, `apply --plan`): the key's read, as late as it gets."""
        sent = now_ms()
        key = await self._client.load_access_key(key_id)
        self._timeline.mark_read([key_id], sent)
        return key

    async def set_status(self, key_ids: Sequence[str], status: str) -> None:
        for key_id in key_ids:
            self._timeline.mark_sent(key_id, now_ms())
        try:
            await self._client.set_status(key_ids, status)
        finally:
            for key_id in key_ids:
                self._timeline.mark_done(key_id, now_ms())

    async def delete_access_keys(self, key_ids: Sequence[str]) -> None:
        for key_id in key_ids:
            self._timeline.mark_sent(key_id, now_ms())
        try:
            await self._client.delete_access_keys(key_ids)
        finally:
            for key_id in key_ids:
                self._timeline.mark_done(key_id, now_ms())

    # Neither changes what a read of the key saw: no marks (a new key had no read to overwrite).
    async def create_access_key(self, request_body: Mapping[str, Any]) -> tuple[dict[str, Any], Secret]:
        return await self._client.create_access_key(request_body)

    async def rotate_access_key(self, key_id: str) -> tuple[dict[str, Any], Secret]:
        return await self._client.rotate_access_key(key_id)

    async def search_access_keys(self) -> list[dict[str, Any]]:
        return await self._client.search_access_keys()
