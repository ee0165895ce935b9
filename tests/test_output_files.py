"""Output files, through the real CLI: every output path is proven writable before the first request,
and no output is ever written through a symbolic link or left with a wider mode than 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import cli_env, load_report, run_cli, write_desired

KEYS = [{"id": "K1", "name": "one"}, {"id": "K2", "name": "two"}]
DESIRED = [{"id": "K1", "name": "renamed"}]


def bad_paths(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder\n")
    return {
        "directory": folder,
        "parent cannot be created": a_file / "sub" / "out.json",
        "unwritable location": Path("/sys/descope-reconcile-out.json"),  # sysfs: refused even to root
    }


COMMANDS = [
    ("apply", "--report"),
    ("apply", "--journal"),
    ("apply", "--summary"),
    ("plan", "--out"),
    ("plan", "--report"),
    ("plan", "--summary"),
    ("audit", "--out"),
    ("audit", "--summary"),
    ("export", "--out"),
]


# Every kind of unwritable path for the report of an apply; a directory for every other output.
CASES = [("apply", "--report", kind) for kind in ("directory", "parent cannot be created", "unwritable location")]
CASES += [(command, option, "directory") for command, option in COMMANDS if option != "--report" or command != "apply"]


@pytest.mark.parametrize(("command", "option", "kind"), CASES)
def test_an_output_path_that_cannot_be_written_stops_the_run_before_any_request(
    start_emulator: Any, tmp_path: Path, command: str, option: str, kind: str
) -> None:
    emulator = start_emulator(KEYS)
    target = bad_paths(tmp_path)[kind]
    paths = [] if command == "export" else [str(write_desired(tmp_path / "d", DESIRED))]
    extra = ["--overwrite"] if command == "export" else []
    result = run_cli([command, *paths, option, str(target), *extra], cli_env(emulator))
    assert result.code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {option} {target}: "), result.stderr
    assert emulator.requests == []
    assert emulator.store.load("K1")["name"] == "one"


def test_a_journal_derived_from_the_report_is_checked_too(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(KEYS)
    (tmp_path / "r.json.journal.jsonl").mkdir()
    result = run_cli(
        ["apply", str(write_desired(tmp_path / "d", DESIRED)), "--report", str(tmp_path / "r.json")], cli_env(emulator)
    )
    assert result.code == 1 and "journal" in result.stderr and "is a directory" in result.stderr
    assert emulator.requests == []


@pytest.mark.parametrize(
    ("command", "option"),
    [("apply", "--journal"), ("apply", "--report"), ("plan", "--out"), ("plan", "--summary"), ("audit", "--out")],
)
def test_an_output_path_that_is_a_symbolic_link_is_refused_and_its_target_untouched(
    start_emulator: Any, tmp_path: Path, command: str, option: str
) -> None:
    emulator = start_emulator(KEYS)
    target = tmp_path / "elsewhere.txt"
    target.write_text("someone else's file\n")
    target.chmod(0o644)
    link = tmp_path / "out.json"
    link.symlink_to(target)
    result = run_cli([command, str(write_desired(tmp_path / "d", DESIRED)), option, str(link)], cli_env(emulator))
    assert result.code == 1, result.output
    assert f"error: {option} {link}: is a symbolic link; refusing to write through it" in result.stderr
    assert target.read_text() == "someone else's file\n" and link.is_symlink()
    assert emulator.requests == []


def test_outputs_that_existed_with_a_wider_mode_become_private(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(KEYS)
    report, journal = tmp_path / "r.json", tmp_path / "r.json.journal.jsonl"
    for path in (report, journal):
        path.write_text("")
        path.chmod(0o644)
    result = run_cli(["apply", str(write_desired(tmp_path / "d", DESIRED)), "--report", str(report)], cli_env(emulator))
    assert result.code == 0, result.output
    assert stat.S_IMODE(report.stat().st_mode) == 0o600
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600
    assert load_report(report)["summary"]["byOutcome"] == {"updated": 1}


def test_a_link_swapped_in_after_the_check_is_still_not_followed(start_emulator: Any, tmp_path: Path) -> None:
    """The check runs before the network; the journal is opened later, with O_NOFOLLOW."""
    emulator = start_emulator(KEYS)
    journal, target = tmp_path / "j.jsonl", tmp_path / "target.txt"
    target.write_text("keep\n")
    original = emulator.answer

    def swap_in_a_link(method: str, path: str, query: str, headers: dict[str, str], body: Any) -> Any:
        if path.endswith("/search") and not journal.is_symlink():
            os.symlink(target, journal)
        return original(method, path, query, headers, body)

    emulator.answer = swap_in_a_link
    result = run_cli(
        ["apply", str(write_desired(tmp_path / "d", DESIRED)), "--journal", str(journal)], cli_env(emulator)
    )
    assert result.code == 1 and "is a symbolic link" in result.stderr, result.output
    assert target.read_text() == "keep\n"
    assert not emulator.updates_for("K1")
