"""`make bench` must not rot: run it at tiny sizes and check its bookkeeping (never its timings:
performance targets live in the benchmark itself, not in tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.__main__ import PERFORMANCE_PAGE
from bench.__main__ import main as bench_main


@pytest.mark.slow
def test_quick_bench_runs_and_accounts_for_every_request(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    page = tmp_path / "performance.md"
    page.write_text(PERFORMANCE_PAGE.read_text(encoding="utf-8"), encoding="utf-8")
    args = ["--quick", "--out", str(out), "--chart", str(tmp_path / "chart.png"), "--doc", str(page)]
    assert bench_main(args) == 0
    results = json.loads(out.read_text())
    expected = {"machine", "rateLimit", "adaptation", "noRetryAfter", "naive", "economy", "scale", "sweep", "table"}
    assert expected | {"window", "windowNoRetryAfter"} <= set(results)
    economy = results["economy"]
    assert economy["exact"] and economy["requests"] == 1 + economy["attributeLookups"] + economy["drifted"]
    naive = results["naive"]
    assert naive["naiveRequests"] >= 2 * naive["keys"]  # a load and an update per key, plus the SDK's handshake
    rate = results["rateLimit"]
    assert rate["updates"] >= rate["keys"] and rate["requests"] >= rate["requestsNeeded"]
    assert [row["keys"] for row in results["scale"]] == [50, 200]
    assert all(len(row["runs"]) == 2 and row["wallSeconds"] in row["runs"] for row in results["scale"])
    assert all(row["readFloor"]["yamlSeconds"] > 0 and row["ratioToFloor"] > 0 for row in results["scale"])
    for key, trail in (("fixedCost", True), ("fixedCostNoTrail", False)):  # the trail on, then off
        fixed = results[key]
        assert fixed["updates"] >= fixed["keys"] and fixed["fixedCostSeconds"] == round(
            fixed["wallSeconds"] - fixed["floorSeconds"], 3
        )
        # on: attribution beside the writes, the overwritten check after its wait (keys read, then updated)
        assert fixed["trail"] is trail and fixed["auditSearches"] == (2 if trail else 0)
        assert fixed["trailWaitSeconds"] == (0.5 if trail else 0.0)
    assert results["version"]["runs"] == 3 and results["help"]["runs"] == 3
    assert all(row["peakRssMiB"] > 0 and "validate" in row["timings"] for row in results["scale"])
    for key in ("window", "windowNoRetryAfter"):  # Descope's shape: a perfect client waits 2 windows of 0.5 s
        window = results[key]
        assert window["floorSeconds"] == 1.0 and window["updates"] >= window["keys"]
        assert window["requests"] == window["requestsNeeded"] + window["throttled"]
    assert results["table"].count("\n| ") >= 13
    # The table goes into the performance page's generated block, and only there.
    written = page.read_text(encoding="utf-8")
    assert results["table"] in written and "quick sizes (measures nothing)" in written
    assert written.replace(results["table"], "") != written and written.startswith("# Performance")
    outside = PERFORMANCE_PAGE.read_text(encoding="utf-8").split("<!-- end: bench-table -->")[1]
    assert written.endswith(outside)
