"""Descope's published limit shape, through the real command line: N requests per window, then a
block, with or without Retry-After. The run converges without hammering the blocked server.
(How fast is `make bench`'s business; here only what was sent, and what the run said.)"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from reconcile.emulator import Window
from tests.conftest import cli_env, load_report, write_desired
from tests.support import run_process

UPDATE = "/v1/mgmt/accesskey/update"


@pytest.mark.slow
@pytest.mark.parametrize("retry_after", [True, False], ids=["retry-after", "no-retry-after"])
def test_apply_waits_out_window_blocks_instead_of_sending_into_them(
    start_emulator: Any, tmp_path: Path, retry_after: bool
) -> None:
    keys = [{"id": f"K{i:03d}", "name": f"key-{i}"} for i in range(60)]
    emulator = start_emulator(
        keys, rate_window=Window(20, 1.0, 1.0), retry_after=retry_after, empty_429_body=not retry_after, latency_ms=20
    )
    desired = write_desired(tmp_path / "d", [{**key, "name": key["name"] + "-v2"} for key in keys])
    # A process: the client must outrun the server's limit, so it gets a core (and a GIL) of its own.
    result = run_process(
        ["apply", str(desired), "--force", "-v", "--report", str(tmp_path / "r.json")], cli_env(emulator)
    )
    assert result.code == 0, result.stderr[-3000:]

    report = load_report(tmp_path / "r.json")
    assert Counter(key["outcome"] for key in report["keys"]) == {"updated": 60}
    requests = emulator.recorded()
    accepted = Counter(r.body["id"] for r in requests if r.path == UPDATE and r.status == 200)
    assert set(accepted) == {key["id"] for key in keys} and max(accepted.values()) == 1
    throttled = sum(r.status == 429 for r in requests)
    # 61 requests need 4 windows; each block is met by the requests already in flight, then by
    # single probes. A client that keeps sending into the blocks gets about a third refused.
    assert 0 < throttled <= 0.25 * len(requests), f"{throttled} of {len(requests)} answered 429"
    if not retry_after:
        assert "write budget: HTTP 429 without Retry-After: pausing, first probe in" in result.stderr
        assert "write budget: a probe got through" in result.stderr
