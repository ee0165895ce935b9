"""Fixtures: the local server in-process over real HTTP; the CLI runners are in tests/support."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconcile.emulator import Emulator, EmulatorConfig
from reconcile.schemas.validators import REPORT_SCHEMA, validator
from tests.support import http
from tests.support.cli import CliResult, cli_env, run_cli

REPO = Path(__file__).resolve().parent.parent
__all__ = ["REPO", "CliResult", "cli_env", "load_report", "run_cli", "updatable", "write_desired"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest tests (network, then slow) start first, so that none of them runs alone at the end
    of a parallel run (`make test` uses `--dist loadgroup`, which hands out one test at a time)."""
    items.sort(
        key=lambda item: 0 if item.get_closest_marker("network") else 1 if item.get_closest_marker("slow") else 2
    )


@pytest.fixture
def start_emulator() -> Iterator[Callable[..., Emulator]]:
    """`start_emulator(keys, **config)` → a running server, stopped after the test."""
    running: list[Emulator] = []

    def start(
        keys: Sequence[Mapping[str, Any]] = (), tenant_names: Mapping[str, str] | None = None, **config: Any
    ) -> Emulator:
        # A management key of its own: a request that strays from another test (a stale port taken
        # by this server) is refused, never able to change what this test asserts.
        config.setdefault("management_key", f"K2test-{secrets.token_hex(12)}")
        emulator = Emulator(EmulatorConfig(**config), keys, tenant_names=tenant_names).start()
        running.append(emulator)
        return emulator

    yield start
    for emulator in running:
        emulator.stop()
    failures = [failure for emulator in running for failure in emulator.internal_errors]
    assert not failures, "the emulator failed (not the client):\n" + "\n".join(failures)


@pytest.fixture
def emulator_process() -> Iterator[Callable[..., str]]:
    """`emulator_process(*args)` → the base URL of `python -m reconcile.emulator --port 0 *args`,
    a server in its own process (as other tools would run it), terminated after the test."""
    running: list[tuple[subprocess.Popen[str], str]] = []

    def start(*args: str) -> str:
        server = subprocess.Popen(
            [sys.executable, "-m", "reconcile.emulator", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        running.append((server, url))
        assert url.startswith("http://127.0.0.1:"), f"the server did not start: {url!r}"
        return url

    yield start
    failed = []
    for server, url in running:
        if server.poll() is None:
            failed += [url] * http.get(f"{url}/_emulator/stats", timeout=10).json()["internalErrors"]
        server.terminate()
        _, stderr = server.communicate(timeout=10)
        assert server.returncode == 0, stderr
        assert not failed, f"the emulator failed (not the client):\n{stderr}"


def write_desired(folder: Path, keys: Sequence[Mapping[str, Any]], name: str = "keys.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump({"version": 1, "keys": list(keys)}, sort_keys=False), encoding="utf-8")
    return path


def load_report(path: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    errors = sorted(validator(REPORT_SCHEMA).iter_errors(report), key=str)
    assert not errors, [e.message for e in errors]
    return report


def updatable(key: Mapping[str, Any]) -> dict[str, Any]:
    """A server key reduced to what the tool manages, tenantName dropped, for comparisons."""
    fields = ("name", "description", "roleNames", "keyTenants", "customClaims", "permittedIps", "customAttributes")
    result = {name: key.get(name) for name in fields}
    result["keyTenants"] = [{"tenantId": t["tenantId"], "roleNames": t["roleNames"]} for t in key["keyTenants"]]
    return result
