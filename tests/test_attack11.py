"""Found by attack11: secrets files that stay readable line by line after a failed delivery."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import cli_env, load_report, run_cli, write_desired
from tests.lifecycle import exchange, secret_lines

LIMIT = 8192  # bytes a process may write to one file (RLIMIT_FSIZE): a disk that fills up mid-line


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


def test_a_secrets_file_that_fills_up_mid_line_keeps_every_later_line_whole(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator([])
    folder = write_desired(tmp_path / "d", [{"name": "full-1"}]).parent
    secrets, report = tmp_path / "secrets.jsonl", tmp_path / "report.json"
    padding = json.dumps({"pad": "x" * (LIMIT - 150)}) + "\n"  # room left for part of one line only
    secrets.write_text(padding, encoding="utf-8")
    secrets.chmod(0o600)
    args = ["apply", str(folder), "--report", str(report), "--secrets-out", str(secrets)]
    full = subprocess.run(
        [sys.executable, "-m", "reconcile", *args],
        env=cli_env(emulator),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=_limited,
    )
    assert full.returncode == 1, full.stdout + full.stderr
    [key] = [k for k in load_report(report)["keys"] if k["outcome"] == "undelivered"]
    assert secrets.read_text(encoding="utf-8") == padding  # no partial line (nor part of a cleartext) left behind

    # Space again: the recovery command's line is whole and parses, like every other line.
    recovered = run_cli(
        ["rotate", "--ids", key["id"], "--secrets-out", str(secrets), "--journal", str(report) + ".journal.jsonl"],
        cli_env(emulator),
    )
    assert recovered.code == 0, recovered.output
    lines = secret_lines(secrets)
    assert lines[0] == json.loads(padding) and lines[-1]["id"] == key["id"]
    assert exchange(emulator, lines[-1]["cleartext"]) == 200
