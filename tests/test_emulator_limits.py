"""Window-shaped rate limits (N requests per window, then a block), as Descope publishes them."""

from __future__ import annotations

import time
from typing import Any

import pytest

from reconcile.emulator import Window
from reconcile.emulator.config import parse_window
from tests.support import http
from tests.test_emulator import post

SEARCH = "/v1/mgmt/accesskey/search"


def test_going_over_the_window_blocks_every_request_for_the_block(start_emulator: Any) -> None:
    emulator = start_emulator([{"id": "K1"}], rate_window=Window(3, 60, 2))
    assert [post(emulator, SEARCH, {}).status_code for _ in range(3)] == [200] * 3
    first = post(emulator, SEARCH, {})
    assert first.status_code == 429 and first.headers["Retry-After"] == "2"
    update = post(emulator, "/v1/mgmt/accesskey/update", {"id": "K1", "name": "x"})
    assert update.status_code == 429 and update.headers["Retry-After"] in ("1", "2")  # rounded up, never 0
    assert emulator.store.load("K1")["name"] == ""  # refused means not made
    time.sleep(2.1)
    # The block is over, but the window still holds 3 requests of the last 60 s: a new block.
    assert post(emulator, SEARCH, {}).status_code == 429
    stats = http.get(emulator.url + "/_emulator/stats").json()
    assert stats["throttled"] == {"window": 3, "total": 3} and stats["blocks"]["window"] == 2
    assert stats["requests"][SEARCH] == {"200": 3, "429": 2}


@pytest.mark.slow
def test_without_a_block_a_caller_waits_only_until_the_window_has_room(start_emulator: Any) -> None:
    emulator = start_emulator([], rate_window=Window(2, 2, 0), retry_after=False)
    assert [post(emulator, SEARCH, {}).status_code for _ in range(3)] == [200, 200, 429]
    refused = post(emulator, SEARCH, {})
    assert refused.status_code == 429 and "Retry-After" not in refused.headers
    time.sleep(2.1)
    assert post(emulator, SEARCH, {}).status_code == 200


def test_window_and_token_bucket_apply_together(start_emulator: Any) -> None:
    emulator = start_emulator([], rate_window=Window(100, 60, 60), rate_limit=0.01, rate_burst=1)
    assert [post(emulator, SEARCH, {}).status_code for _ in range(2)] == [200, 429]
    assert http.get(emulator.url + "/_emulator/stats").json()["throttled"] == {"bucket": 1, "total": 1}


@pytest.mark.parametrize(
    ("text", "block", "expected"),
    [("100/60", None, Window(100, 60, 60)), ("1000/10s", 0, Window(1000, 10, 0)), ("5/0.5", 3, Window(5, 0.5, 3))],
)
def test_window_text(text: str, block: float | None, expected: Window) -> None:
    assert parse_window(text, block) == expected


@pytest.mark.parametrize("text", ["100", "0/60", "10/0", "x/60", "10/-1", "10/inf"])
def test_window_text_refused(text: str) -> None:
    with pytest.raises(ValueError, match="COUNT/SECONDS"):
        parse_window(text)


def test_command_line_window_and_block(emulator_process: Any) -> None:
    url = emulator_process("--window", "2/60", "--block", "5", "--management-key", "K2cli")
    auth = {"Authorization": "Bearer P2emulator0000000000000000000:K2cli"}
    statuses = [http.post(url + SEARCH, json={}, headers=auth) for _ in range(3)]
    assert [r.status_code for r in statuses] == [200, 200, 429]
    assert statuses[-1].headers["Retry-After"] == "5"
    stats = http.get(url + "/_emulator/stats").json()
    assert stats["throttled"]["window"] == 1 and stats["blocks"]["window"] == 1
