"""`make bench`: measured speed, request economy and scale, side by side with the naive way.

Everything runs on loopback against the local server, in one command: the tool as its real
command line in a subprocess (wall time, peak RSS from wait4), the server in this process
(it records every request with its time and status). Writes a Markdown table to stdout and
into docs/performance.md (its generated block), bench/results.json with every figure and the
machine, and bench/rate-limit.png.

    python -m bench            # the full run (under 10 minutes on 2 cores)
    python -m bench --quick    # tiny sizes: checks the bench itself works, measures nothing, writes no doc
    python -m bench --doc-only # docs/performance.md's table again from bench/results.json, measuring nothing
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconcile.emulator import Emulator, EmulatorConfig, Window
from reconcile.output.export import render_export
from reconcile.reference import replace_block
from reconcile.trail.writes import CLOCK_SKEW_MS

HERE = Path(__file__).resolve().parent
PERFORMANCE_PAGE = HERE.parent / "docs" / "performance.md"
DOC_BLOCK = "bench-table"
UPDATE = "/v1/mgmt/accesskey/update"
ATTRIBUTE = "/v1/mgmt/accesskey/attribute"
AUDIT_SEARCH = "/v1/mgmt/audit/search"
ATTRIBUTE_NAMES = ("owner", "regions")  # the custom attributes every key of the fleet has
# The bench measures the updates: the audit trail's own requests (per apply at most 2 x
# --attribution-pages audit searches and one more, on their own budget, and one event) are left out.
UPDATES_ONLY = ("--no-attribution", "--no-audit-event")


@dataclass
class Run:
    wall: float
    rss_mib: float
    exit_code: int
    stderr: str
    statuses: Counter[str] = field(default_factory=Counter)
    updates: int = 0  # update requests the server saw (limited runs)
    lookups: int = 0  # attribute declarations read (the plan checks the names the files use)
    audit_searches: int = 0  # audit search requests (the fixed cost's runs with the trail on)
    timeline: list[tuple[float, str]] = field(default_factory=list)  # (seconds since start, status)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())


def fleet(count: int) -> list[dict[str, Any]]:
    """Realistic keys: every field in use, ~250 bytes of YAML each."""
    return [
        {
            "id": f"K2{index:08d}bench",
            "name": f"service-{index}",
            "description": f"Key for service {index} of team {index % 50}",
            "roleNames": ["reader", "deployer"] if index % 2 else ["viewer"],
            "customClaims": {"team": f"team-{index % 50}", "tier": index % 3, "prod": bool(index % 2)},
            "permittedIps": [f"10.{index % 250}.0.0/16", "192.168.1.7"],
            "customAttributes": {"owner": f"owner-{index % 20}", "regions": ["eu", "us"]},
        }
        for index in range(count)
    ]


def renamed(keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The project as found: every key's name drifted (a field the SDK can send too)."""
    return [{**key, "name": key["name"] + "-old"} for key in keys]


class Bench:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir

    def desired(self, keys: list[dict[str, Any]], name: str) -> Path:
        path = self.workdir / name / "keys.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_export(keys, source="the bench"), encoding="utf-8")
        return path

    def run(self, emulator: Emulator, args: Sequence[str]) -> Run:
        """The tool's command line (it reports its own peak RSS, see bench/measured.py)."""
        return self.run_script(emulator, [sys.executable, "-m", "bench.measured", *args])

    def run_script(self, emulator: Emulator, command: Sequence[str]) -> Run:
        env = {
            **os.environ,
            "DESCOPE_PROJECT_ID": emulator.config.project_id,
            "DESCOPE_MANAGEMENT_KEY": emulator.config.management_key,
            "DESCOPE_BASE_URL": emulator.url,
        }
        began = time.time()
        started = time.perf_counter()
        done = subprocess.run(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False
        )
        wall = time.perf_counter() - started
        peak = re.search(r"peak-rss-kib (\d+)", done.stderr)
        rss = int(peak.group(1)) / 1024 if peak else 0.0
        return self._measured(emulator, wall, rss, done.returncode, done.stderr, began)

    @staticmethod
    def _measured(emulator: Emulator, wall: float, rss: float, code: int, stderr: str, began: float) -> Run:
        requests = list(emulator.requests)
        return Run(
            wall=wall,
            rss_mib=rss,
            exit_code=code,
            stderr=stderr[-2000:],
            statuses=Counter(str(r.status) for r in requests),
            timeline=[(r.at - began, str(r.status)) for r in requests],
        )


def median_run(runs: list[Run]) -> Run:
    return sorted(runs, key=lambda run: run.wall)[len(runs) // 2]


def limited_apply(bench: Bench, count: int, config: EmulatorConfig, *, name: str, runs: int) -> tuple[Run, list[Run]]:
    """`apply` of `count` drifted keys against a server limited by `config`: the median run, and all."""
    keys = fleet(count)
    desired = bench.desired(keys, name)
    measured = []
    for _ in range(runs):
        with Emulator(config, renamed(keys)) as emulator:
            run = bench.run(emulator, ["apply", str(desired.parent), "--force", "-q", *UPDATES_ONLY])
            run.updates = len([r for r in emulator.requests if r.path == UPDATE])
            run.lookups = len([r for r in emulator.requests if r.path.startswith(ATTRIBUTE)])
        if run.exit_code != 0:
            raise SystemExit(f"apply failed ({run.exit_code}): {run.stderr}")
        measured.append(run)
    return median_run(measured), measured


def limited_figures(run: Run, runs: list[Run], *, needed: int, floor: float) -> dict[str, Any]:
    throttled = run.statuses.get("429", 0)
    return {
        "runs": [round(r.wall, 3) for r in runs],
        "wallSeconds": round(run.wall, 3),
        "floorSeconds": round(floor, 3),
        "efficiency": round(floor / run.wall, 3),
        "requests": run.requests,
        "requestsNeeded": needed,
        "updates": run.updates,
        "throttled": throttled,
        "throttledShare": round(throttled / max(1, run.requests), 4),
        "achievedPerSecond": round(run.requests / run.wall, 1),
        "perSecond": per_second(run.timeline),
    }


def rate_limited_apply(
    bench: Bench, count: int, *, limit: float, latency_ms: float, retry_after: bool, runs: int
) -> dict[str, Any]:
    config = EmulatorConfig(rate_limit=limit, retry_after=retry_after, latency_ms=latency_ms)
    run, measured = limited_apply(bench, count, config, name=f"rate-{count}-{limit}-{retry_after}", runs=runs)
    needed = 1 + run.lookups + count  # one search, the declarations, one update per drifted key
    return {
        "keys": count,
        "serverLimitPerSecond": limit,
        "latencyMs": latency_ms,
        "retryAfter": retry_after,
        **limited_figures(run, measured, needed=needed, floor=needed / limit),
    }


def window_limited_apply(
    bench: Bench, count: int, *, window: Window, latency_ms: float, retry_after: bool, runs: int
) -> dict[str, Any]:
    """Descope's published shape: `window.count` requests per `window.seconds`, then a block."""
    config = EmulatorConfig(rate_window=window, retry_after=retry_after, latency_ms=latency_ms)
    run, measured = limited_apply(bench, count, config, name=f"window-{count}-{retry_after}", runs=runs)
    needed = 1 + run.lookups + count
    # A perfect client sends a window's worth, waits for the window to pass, and so on: the last
    # batch goes after (needed - 1) // count windows. It never sees a 429, so never a block.
    floor = (needed - 1) // window.count * window.seconds
    return {
        "keys": count,
        "window": {"count": window.count, "seconds": window.seconds, "blockSeconds": window.block},
        "serverLimitPerSecond": window.count / window.seconds,
        "latencyMs": latency_ms,
        "retryAfter": retry_after,
        **limited_figures(run, measured, needed=needed, floor=floor),
    }


def naive_versus_tool(
    bench: Bench, count: int, *, limit: float, latency_ms: float, tool: dict[str, Any]
) -> dict[str, Any]:
    keys = fleet(count)
    desired_json = bench.workdir / "naive-desired.json"
    desired_json.write_text(json.dumps(keys), encoding="utf-8")
    config = EmulatorConfig(rate_limit=limit, retry_after=True, latency_ms=latency_ms)
    with Emulator(config, renamed(keys)) as emulator:
        run = bench.run_script(emulator, [sys.executable, str(HERE / "naive_sdk.py"), str(desired_json)])
        state = {key["id"]: key["name"] for key in emulator.store.all()}
    if run.exit_code != 0 or any(state[key["id"]] != key["name"] for key in keys):
        raise SystemExit(f"the naive script did not converge: {run.stderr}")
    return {
        "keys": count,
        "naiveWallSeconds": round(run.wall, 3),
        "naiveRequests": run.requests,
        "toolWallSeconds": tool["wallSeconds"],
        "toolRequests": tool["requests"],
        "speedup": round(run.wall / tool["wallSeconds"], 2),
        "requestRatio": round(tool["requests"] / run.requests, 3),
    }


def fastest_json_loads() -> tuple[str, Callable[[bytes], Any]]:
    """The fastest JSON decoder installed (orjson when the bench extra brought it), for the floor."""
    try:
        import orjson  # noqa: PLC0415 - bench-only, optional

        return "orjson", orjson.loads
    except ImportError:
        return "json", json.loads


def read_floor(text: str, answer: bytes) -> dict[str, Any]:
    """What no plan can beat: the desired YAML read once by the fastest YAML 1.2 reader (yaml-rs) and
    the search answer decoded once by the fastest JSON decoder, garbage collector off as in the tool."""
    import gc  # noqa: PLC0415

    import yaml_rs  # noqa: PLC0415 - the tool's own reader, and the fastest YAML 1.2 one on PyPI

    decoder, loads = fastest_json_loads()
    gc.disable()
    try:
        started = time.perf_counter()
        yaml_rs.loads(text, parse_datetime=False)
        yaml_seconds = time.perf_counter() - started
        started = time.perf_counter()
        loads(answer)
        json_seconds = time.perf_counter() - started
    finally:
        gc.enable()
    return {"yamlSeconds": round(yaml_seconds, 3), "jsonSeconds": round(json_seconds, 3), "jsonDecoder": decoder}


def offline_scale(bench: Bench, sizes: Sequence[int], runs: int) -> list[dict[str, Any]]:
    """Each size planned `runs` times against one server: the median run's figures (one run on this
    shared machine moves by a tenth either way)."""
    results = []
    for count in sizes:
        keys = fleet(count)
        desired = bench.desired(keys, f"scale-{count}")
        text = desired.read_text(encoding="utf-8")
        measured: list[tuple[Run, dict[str, float]]] = []
        with Emulator(EmulatorConfig(), keys) as emulator:
            answer = json.dumps({"keys": emulator.store.all()}).encode()
            for index in range(runs):
                report = bench.workdir / f"scale-{count}-{index}.json"
                # Not -v, which logs the report's own write time but also lists every in-sync key.
                run = bench.run(emulator, ["plan", str(desired.parent), "--report", str(report)])
                if run.exit_code != 0:
                    raise SystemExit(f"plan over {count} keys: not in sync ({run.exit_code}): {run.stderr}")
                measured.append((run, json.loads(report.read_text())["run"]["timings"]))
                report.unlink()
        run, timings = sorted(measured, key=lambda pair: pair[0].wall)[len(measured) // 2]
        floor = read_floor(text, answer)
        floor_seconds = floor["yamlSeconds"] + floor["jsonSeconds"]
        results.append(
            {
                "keys": count,
                "yamlBytes": len(text.encode()),
                "answerBytes": len(answer),
                "wallSeconds": round(run.wall, 3),
                "runs": [round(each.wall, 3) for each, _ in measured],
                "peakRssMiB": round(max(each.rss_mib for each, _ in measured), 1),
                "timings": {k: round(v, 3) for k, v in timings.items()},
                "readFloor": floor,
                "ratioToFloor": round(run.wall / max(floor_seconds, 1e-6), 2),
            }
        )
    return results


def fixed_cost_apply(
    bench: Bench, count: int, *, limit: float, latency_ms: float, runs: int, trail: bool = True
) -> dict[str, Any]:
    """A whole apply as a pull request's job runs it (audit trail on: attribution, overwritten check,
    the apply event; or off), against a server limited to `limit`/s: what it costs beyond its writes.
    With the trail on, part of that cost is a wait the run owes the truth of its audit: the
    overwritten check of keys it read and updated searches only once the last writes' records, on a
    server clock that may be ahead and in an index that may show records out of order, are there
    (`CLOCK_SKEW_MS`, docs/audit-trail.md)."""
    keys = fleet(count)
    desired = bench.desired(keys, f"fixed-{count}")
    off = [] if trail else ["--no-attribution", "--no-audit-event"]
    measured = []
    for _ in range(runs):
        config = EmulatorConfig(rate_limit=limit, retry_after=True, latency_ms=latency_ms)
        with Emulator(config, renamed(keys)) as emulator:
            run = bench.run(emulator, ["apply", str(desired.parent), "--force", "-q", *off])
            run.updates = len([r for r in emulator.requests if r.path == UPDATE])
            run.audit_searches = len([r for r in emulator.requests if r.path == AUDIT_SEARCH])
        if run.exit_code != 0:
            raise SystemExit(f"apply failed ({run.exit_code}): {run.stderr}")
        measured.append(run)
    run = median_run(measured)
    floor = count / limit + latency_ms / 1000  # the writes at the limit, and one request's latency
    return {
        "keys": count,
        "serverLimitPerSecond": limit,
        "latencyMs": latency_ms,
        "runs": [round(r.wall, 3) for r in measured],
        "wallSeconds": round(run.wall, 3),
        "floorSeconds": round(floor, 3),
        "fixedCostSeconds": round(run.wall - floor, 3),
        "trail": trail,
        "trailWaitSeconds": CLOCK_SKEW_MS / 1000 if trail else 0.0,
        "auditSearches": run.audit_searches,
        "requests": run.requests,
        "updates": run.updates,
        "throttled": run.statuses.get("429", 0),
    }


def command_startup(args: Sequence[str], runs: int) -> dict[str, Any]:
    """`descope-reconcile ARGS` from process start to exit, as installed (bytecode compiled)."""
    command = [sys.executable, "-m", "reconcile", *args]
    # As installed (pip compiles the bytecode of a wheel): one run writes any stale bytecode first,
    # even where the environment says not to (PYTHONDONTWRITEBYTECODE: every import would compile).
    env = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(command, capture_output=True, check=False, env=env)
    walls, cpus = [], []
    for _ in range(runs):
        before = os.times()
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, check=False, env=env)
        walls.append(time.perf_counter() - started)
        after = os.times()
        cpus.append(after.children_user - before.children_user + after.children_system - before.children_system)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    walls.sort()
    return {
        "runs": runs,
        "minWallSeconds": round(walls[0], 3),
        "medianWallSeconds": round(walls[len(walls) // 2], 3),
        "minCpuSeconds": round(min(cpus), 3),
    }


def validate_startup(runs: int) -> dict[str, Any]:
    """`validate desired/` as the pre-commit hook runs it on every commit: start-up is most of it."""
    return command_startup(["validate", str(Path(__file__).resolve().parents[1] / "desired")], runs)


def concurrency_sweep(bench: Bench, count: int, levels: Sequence[int], latency_ms: float) -> list[dict[str, Any]]:
    keys = fleet(count)
    desired = bench.desired(keys, f"sweep-{count}")
    results = []
    for level in levels:
        with Emulator(EmulatorConfig(latency_ms=latency_ms), renamed(keys)) as emulator:
            args = ["apply", str(desired.parent), "--force", "-q", "--concurrency", str(level), *UPDATES_ONLY]
            run = bench.run(emulator, args)
            updates = len([r for r in emulator.requests if r.path == UPDATE])
            lookups = len([r for r in emulator.requests if r.path.startswith(ATTRIBUTE)])
        results.append(
            {
                "concurrency": level,
                "wallSeconds": round(run.wall, 3),
                "achievedPerSecond": round(run.requests / run.wall, 1),
                "requests": run.requests,
                "updates": updates,
                "attributeLookups": lookups,
                "drifted": count,
            }
        )
    return results


def per_second(timeline: list[tuple[float, str]]) -> dict[str, list[int]]:
    """Requests answered and throttled in each second of a run."""
    seconds = int(max((at for at, _ in timeline), default=0)) + 1
    answered, throttled = [0] * seconds, [0] * seconds
    for at, status in timeline:
        (throttled if status == "429" else answered)[max(0, int(at))] += 1
    return {"answered": answered, "throttled": throttled}


def chart(panels: list[tuple[str, dict[str, Any]]], path: Path) -> bool:
    try:
        import matplotlib  # noqa: PLC0415 - bench-only dependency, optional in --quick

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return False
    figure, axes = plt.subplots(len(panels), 1, figsize=(9, 3.2 * len(panels)), squeeze=False)
    for axis, (title, scenario) in zip(axes[:, 0], panels, strict=True):
        counts, limit = scenario["perSecond"], scenario["serverLimitPerSecond"]
        seconds = range(len(counts["answered"]))
        axis.bar(seconds, counts["answered"], width=1.0, align="edge", label="answered", color="#4c78a8")
        axis.bar(
            seconds,
            counts["throttled"],
            width=1.0,
            align="edge",
            bottom=counts["answered"],
            label="429",
            color="#e45756",
        )
        window = scenario.get("window")
        label = f"{window['count']} per {window['seconds']:g} s" if window else f"{limit:g}/s"
        axis.axhline(limit, color="black", linestyle="--", label=f"server limit {label}")
        tallest = max((a + t for a, t in zip(counts["answered"], counts["throttled"], strict=True)), default=0)
        axis.set_ylim(0, max(limit * 1.35, tallest * 1.1))
        axis.set_ylabel("requests / second")
        axis.set_title(f"{title}: efficiency {scenario['efficiency']}, {scenario['throttled']} x 429")
        axis.legend(loc="lower center", ncol=3)
    axes[-1, 0].set_xlabel("seconds since start")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return True


def verdict(met: bool | None) -> str:
    return "n/a" if met is None else ("yes" if met else "**no**")


Row = tuple[str, str, str, bool | None]


def limited_row(name: str, s: dict[str, Any], target: str, met: bool | None) -> Row:
    figures = (
        f"wall {s['wallSeconds']}s (runs {s['runs']}), floor {s['floorSeconds']}s, "
        f"efficiency **{s['efficiency']}**, 429s {s['throttled']} ({s['throttledShare']:.1%}), "
        f"{s['achievedPerSecond']}/s achieved"
    )
    return name, figures, target, met


def rate_rows(results: dict[str, Any]) -> list[Row]:
    s1, s1b, s2 = results["rateLimit"], results["adaptation"], results["noRetryAfter"]
    return [
        limited_row(
            f"1. {s1['keys']:,} keys, server {s1['serverLimitPerSecond']:g}/s + Retry-After, {s1['latencyMs']:g} ms",
            s1,
            "efficiency >= 0.90, 429s <= 5%",
            s1["efficiency"] >= 0.90 and s1["throttledShare"] <= 0.05,
        ),
        limited_row(
            f"1b. {s1b['keys']:,} keys, server {s1b['serverLimitPerSecond']:g}/s (below the default rate)",
            s1b,
            "(adaptation, no target)",
            None,
        ),
        limited_row("2. as 1, without Retry-After", s2, "efficiency >= 0.80", s2["efficiency"] >= 0.80),
    ]


def window_rows(results: dict[str, Any]) -> list[Row]:
    """Descope's published limit shape; the floor is the windows a perfect client waits through."""
    rows = []
    for key, targets in (("window", (0.85, 0.10)), ("windowNoRetryAfter", (0.75, 0.20))):
        s = results[key]
        window, told = s["window"], "+ Retry-After" if s["retryAfter"] else "without Retry-After"
        name = (
            f"7. {s['keys']} keys, server {window['count']} / {window['seconds']:g} s, "
            f"{window['blockSeconds']:g} s block, {told}, {s['latencyMs']:g} ms"
        )
        efficiency, share = targets
        met = s["efficiency"] >= efficiency and s["throttledShare"] <= share
        rows.append(limited_row(name, s, f"efficiency >= {efficiency}, 429s <= {share:.0%}", met))
    return rows


def scale_rows(results: dict[str, Any]) -> list[Row]:
    scale = {row["keys"]: row for row in results["scale"]}
    rows: list[Row] = []
    for count, row in scale.items():
        split = ", ".join(f"{k} {v}s" for k, v in row["timings"].items())
        floor = row["readFloor"]
        target, met = "(growth)", None
        if count == 10_000:
            target, met = "< 1 s end to end", row["wallSeconds"] < 1
        if count == 100_000:
            target = "< 8 s, < 600 MiB"
            met = row["wallSeconds"] < 8 and row["peakRssMiB"] < 600
        rows.append(
            (
                f"5. plan, {count:,} keys in sync ({row['yamlBytes'] / 1e6:.1f} MB YAML, "
                f"{row['answerBytes'] / 1e6:.1f} MB answer)",
                f"wall {row['wallSeconds']}s (median of {row['runs']}), peak RSS {row['peakRssMiB']} MiB; "
                f"{split}; floor: yaml-rs "
                f"{floor['yamlSeconds']}s + {floor['jsonDecoder']} {floor['jsonSeconds']}s "
                f"(ratio **{row['ratioToFloor']}**)",
                target,
                met,
            )
        )
    if len(scale) >= 2:
        sizes = sorted(scale)
        growth = (scale[sizes[-1]]["wallSeconds"] / scale[sizes[-2]]["wallSeconds"]) / (sizes[-1] / sizes[-2])
        rows.append(
            (
                "5. growth, last two sizes",
                f"time grew {growth:.2f}x as fast as the key count",
                "<= 1 (linear)",
                growth <= 1.05,
            )
        )
    return rows


def startup_rows(results: dict[str, Any]) -> list[Row]:
    """Start-up: the pre-commit hook's `validate` of the example folder, and `--version`."""
    rows: list[Row] = []
    names = {
        "startup": "8. validate desired/ (pre-commit), start-up included",
        "version": "8b. --version",
        "help": "8c. plan --help (a network command's help)",
    }
    for key, name in names.items():
        startup = results.get(key)
        if startup is None:
            continue
        figures = (
            f"min {startup['minWallSeconds']}s, median {startup['medianWallSeconds']}s wall "
            f"(min CPU {startup['minCpuSeconds']}s) over {startup['runs']} runs"
        )
        target = 0.12
        rows.append((name, figures, f"< {target} s", startup["minWallSeconds"] < target))
    for key, label in (("fixedCost", "9. apply"), ("fixedCostNoTrail", "9b. apply")):
        fixed = results.get(key)
        if fixed is None:
            continue
        wait = fixed["trailWaitSeconds"]
        rows.append(
            (
                f"{label}, {fixed['keys']} drifted keys, server {fixed['serverLimitPerSecond']:g}/s, "
                f"{fixed['latencyMs']:g} ms, audit trail {'on' if fixed['trail'] else 'off'}",
                f"wall {fixed['wallSeconds']}s (runs {fixed['runs']}); floor (writes at the limit + one latency) "
                f"{fixed['floorSeconds']}s (ratio {fixed['wallSeconds'] / fixed['floorSeconds']:.3f}): fixed cost "
                f"**{fixed['fixedCostSeconds']}s**"
                + (f", of which {wait}s the overwritten check's wait" if wait else "")
                + f"; {fixed['requests']} requests ({fixed['auditSearches']} audit searches), "
                f"{fixed['throttled']} x 429",
                "fixed cost <= 0.5 s" + (" beside that wait" if wait else ""),
                fixed["fixedCostSeconds"] - wait <= 0.5,
            )
        )
    return rows


def table(results: dict[str, Any]) -> str:
    s3, economy = results["naive"], results["economy"]
    sweep = ", ".join(
        f"c={r['concurrency']}: {r['wallSeconds']}s ({r['achievedPerSecond']}/s)" for r in results["sweep"]
    )
    rows = [
        *rate_rows(results),
        (
            f"3. naive SDK loop vs the tool, {s3['keys']:,} keys",
            f"naive {s3['naiveWallSeconds']}s / {s3['naiveRequests']} requests; tool {s3['toolWallSeconds']}s / "
            f"{s3['toolRequests']} requests: **{s3['speedup']}x** faster, {s3['requestRatio']:.0%} of the requests",
            ">= 5x faster, about half the requests",
            s3["speedup"] >= 5 and s3["requestRatio"] <= 0.55,
        ),
        (
            "4. request economy (the sweep's run at default concurrency: no faults, no limit)",
            f"{economy['requests']} requests = 1 search + {economy['attributeLookups']} attribute declarations "
            f"+ {economy['updates']} updates for {economy['drifted']} drifted keys",
            "exactly 1 + declarations + drifted",
            economy["exact"],
        ),
        *scale_rows(results),
        (
            f"6. concurrency sweep, {results['sweepKeys']} keys, 50 ms, no server limit",
            sweep,
            "(default 8, rate 100/s)",
            None,
        ),
        *window_rows(results),
        *startup_rows(results),
    ]
    lines = ["| scenario | figures | target | met |", "|---|---|---|---|"]
    lines += [f"| {name} | {figures} | {target} | {verdict(met)} |" for name, figures, target, met in rows]
    return "\n".join(lines)


# Every scenario once, at sizes that take about a second each: tests/test_bench.py checks the bookkeeping.
QUICK_SIZES: dict[str, Any] = {
    "fixed": (20, 40.0, 1),
    "rate": 30,
    "runs": 1,
    "adapt": 20,
    "scale": [50, 200],
    "scaleRuns": 2,
    "sweep": 12,
    "levels": [1, 8],
    "startupRuns": 3,
    "limit": 40.0,
    "window": (25, Window(10, 0.5, 0.5), 1),
}
FULL_SIZES: dict[str, Any] = {
    "fixed": (600, 100.0, 3),  # 600 drifted keys at 100/s: 6 s of writes
    "rate": 2000,
    "runs": 3,
    "adapt": 1000,
    "scale": [1000, 10_000, 100_000],
    "scaleRuns": 3,
    "sweep": 400,
    "levels": [1, 4, 8, 16, 32],
    "startupRuns": 21,
    "limit": 100.0,
    # 50 requests / 20 s with a 20 s block: Descope's shape (100 / 60 s, 1000 / 10 s), scaled down
    "window": (120, Window(50, 20.0, 20.0), 1),
}


def scenarios(bench: Bench, sizes: dict[str, Any]) -> dict[str, Callable[[dict[str, Any]], Any]]:
    """Each result of the bench by its key in results.json, in the order they run."""
    limit, count, runs = sizes["limit"], sizes["rate"], sizes["runs"]
    window_keys, window, window_runs = sizes["window"]

    def windowed(retry_after: bool) -> Callable[[dict[str, Any]], Any]:
        return lambda _: window_limited_apply(
            bench, window_keys, window=window, latency_ms=50, retry_after=retry_after, runs=window_runs
        )

    return {
        # First, before any server has run in this process: measured last, it took 15% longer.
        "startup": lambda _: validate_startup(sizes["startupRuns"]),
        "version": lambda _: command_startup(["--version"], sizes["startupRuns"]),
        "help": lambda _: command_startup(["plan", "--help"], sizes["startupRuns"]),
        "fixedCost": lambda _: fixed_cost_apply(
            bench, sizes["fixed"][0], limit=sizes["fixed"][1], latency_ms=50, runs=sizes["fixed"][2]
        ),
        "fixedCostNoTrail": lambda _: fixed_cost_apply(
            bench, sizes["fixed"][0], limit=sizes["fixed"][1], latency_ms=50, runs=1, trail=False
        ),
        "rateLimit": lambda _: rate_limited_apply(
            bench, count, limit=limit, latency_ms=50, retry_after=True, runs=runs
        ),
        "adaptation": lambda _: rate_limited_apply(
            bench, sizes["adapt"], limit=limit / 2, latency_ms=50, retry_after=True, runs=1
        ),
        "noRetryAfter": lambda _: rate_limited_apply(
            bench, count, limit=limit, latency_ms=50, retry_after=False, runs=runs
        ),
        "window": windowed(True),
        "windowNoRetryAfter": windowed(False),
        "naive": lambda done: naive_versus_tool(bench, count, limit=limit, latency_ms=50, tool=done["rateLimit"]),
        "scale": lambda _: offline_scale(bench, sizes["scale"], sizes["scaleRuns"]),
        "sweep": lambda _: concurrency_sweep(bench, sizes["sweep"], sizes["levels"], latency_ms=50),
    }


def measure(sizes: dict[str, Any], only: set[str], started: float) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="descope-bench-") as folder:
        for name, run in scenarios(Bench(Path(folder)), sizes).items():
            if only and name not in only:
                continue
            print(f"[{time.perf_counter() - started:6.1f}s] {name}", file=sys.stderr, flush=True)
            results[name] = run(results)
    if "sweep" in results:
        results["sweepKeys"] = sizes["sweep"]
        default = next(row for row in results["sweep"] if row["concurrency"] == 8)
        # The plan also reads the declaration of each custom attribute the files use (the fleet: 2).
        lookups = default["attributeLookups"]
        results["economy"] = {
            "requests": default["requests"],
            "updates": default["updates"],
            "attributeLookups": lookups,
            "drifted": default["drifted"],
            "exact": default["requests"] == 1 + lookups + default["drifted"]
            and default["updates"] == default["drifted"]
            and lookups <= len(ATTRIBUTE_NAMES),
        }
    return results


def _without_series(figures: Any) -> Any:
    """A scenario's figures without the per-second series (for the chart, too long to print)."""
    return {k: v for k, v in figures.items() if k != "perSecond"} if isinstance(figures, dict) else figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the bench itself")
    parser.add_argument(
        "--only",
        metavar="NAME,NAME",
        help="run only these scenarios (results.json keys, e.g. window,windowNoRetryAfter; naive needs "
        "rateLimit) and print their figures as JSON; writes no file",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    parser.add_argument("--chart", type=Path, default=HERE / "rate-limit.png")
    parser.add_argument(
        "--doc", type=Path, help=f"the page whose `{DOC_BLOCK}` block gets the table (default: {PERFORMANCE_PAGE})"
    )
    parser.add_argument(
        "--doc-only", action="store_true", help="rewrite the page's table from --out (results.json); measure nothing"
    )
    args = parser.parse_args(argv)
    if args.doc_only:
        results = json.loads(args.out.read_text(encoding="utf-8"))
        write_doc(args.doc or PERFORMANCE_PAGE, results, table(results))
        return 0
    only = set(filter(None, (args.only or "").split(",")))
    started = time.perf_counter()
    measured = measure(QUICK_SIZES if args.quick else FULL_SIZES, only, started)
    if only:
        print(json.dumps({name: _without_series(figures) for name, figures in measured.items()}))
        return 0
    machine = {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.machine(),
    }
    results = {"machine": machine, "quick": args.quick, **measured}
    panels = [
        (f"1. default client, server limit {results['rateLimit']['serverLimitPerSecond']:g}/s", results["rateLimit"]),
        ("1b. server limit below the default rate", results["adaptation"]),
        ("7. window limit with a block, Retry-After", results["window"]),
        ("7. window limit with a block, no Retry-After", results["windowNoRetryAfter"]),
    ]
    drew = chart(panels, args.chart)
    results["benchSeconds"] = round(time.perf_counter() - started, 1)
    markdown = table(results)
    print(markdown)
    chart_note = f"; chart: {args.chart}" if drew else "; no chart (matplotlib missing)"
    print(f"\n{machine['cores']} cores, Python {machine['python']}; bench took {results['benchSeconds']}s{chart_note}")
    args.out.write_text(json.dumps({**results, "table": markdown}, indent=2) + "\n", encoding="utf-8")
    doc = args.doc or (None if args.quick else PERFORMANCE_PAGE)
    if doc is not None:
        write_doc(doc, results, markdown)
    return 0


def write_doc(page: Path, results: dict[str, Any], markdown: str) -> None:
    """The table and the machine it was measured on, into the page's generated block."""
    machine = results["machine"]
    measured = (
        f"Measured in {results['benchSeconds']:g} s on {machine['cores']} cores, Python {machine['python']} "
        f"({machine['platform']}){', quick sizes (measures nothing)' if results['quick'] else ''}."
    )
    text = page.read_text(encoding="utf-8")
    page.write_text(replace_block(text, DOC_BLOCK, f"{markdown}\n\n{measured}"), encoding="utf-8")
    print(f"wrote the table into {page}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
