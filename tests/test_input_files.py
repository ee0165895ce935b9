"""Input files read whole (a desired file, the config, a management key file, a saved plan), through
the real CLI: a FIFO or a device is refused in one line, never read (a FIFO blocked the run for ever,
`/dev/zero` never ended), and nothing is sent."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import cli_env, run_cli, write_desired

KEYS = [{"id": "K1", "name": "one"}]


def _special(tmp_path: Path, kind: str) -> Path:
    if kind == "device":
        return Path("/dev/zero")
    fifo = tmp_path / "special.yaml"
    os.mkfifo(fifo)
    return fifo


@pytest.mark.parametrize("kind", ["fifo", "device"])
@pytest.mark.parametrize("role", ["desired file", "config", "management key file", "saved plan"])
def test_an_input_that_is_not_a_regular_file_is_refused_in_one_line(
    start_emulator: Any, tmp_path: Path, role: str, kind: str
) -> None:
    emulator = start_emulator(KEYS)
    special = _special(tmp_path, kind)
    env = cli_env(emulator)
    desired = str(write_desired(tmp_path / "d", KEYS))
    args = {
        "desired file": ["plan", str(special)],
        "config": ["plan", "--config", str(special)],
        "management key file": ["plan", desired],
        "saved plan": ["apply", "--plan", str(special)],
    }[role]
    if role == "management key file":
        env = {**env, "DESCOPE_MANAGEMENT_KEY_FILE": str(special)}
        del env["DESCOPE_MANAGEMENT_KEY"]
    result = run_cli(args, env, timeout=30)
    assert result.code == 1, result.output
    assert "not a regular file" in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
    assert emulator.requests == []
