"""Output files, through the real CLI: every output path is proven writable before the first request,
and no output is ever written through a symbolic link or left with a wider mode than 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from reconcile.emulator import Answer, Call
from tests.conftest import cli_env, load_report, run_cli, write_desired
from tests.support import SEARCH

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

    def swap_in_a_link(call: Call) -> Answer:
        if not journal.is_symlink():
            os.symlink(target, journal)
        return call.forward()

    emulator.intercept(SEARCH, swap_in_a_link)
    result = run_cli(
        ["apply", str(write_desired(tmp_path / "d", DESIRED)), "--journal", str(journal)], cli_env(emulator)
    )
    assert result.code == 1 and "is a symbolic link" in result.stderr, result.output
    assert target.read_text() == "keep\n"
    assert not emulator.updates_for("K1")


@pytest.mark.parametrize(
    ("command", "first", "second"),
    [
        ("plan", "--report", "--summary"),
        ("plan", "--out", "--report"),
        ("apply", "--report", "--journal"),
        ("apply", "--report", "--summary"),
        ("audit", "--out", "--summary"),
    ],
)
def test_two_outputs_at_one_path_are_refused_before_any_request(
    start_emulator: Any, tmp_path: Path, command: str, first: str, second: str
) -> None:
    """Only the last one written would be left: a report over the saved plan, a summary over the report."""
    emulator = start_emulator(KEYS)
    out = tmp_path / "out.json"
    desired = str(write_desired(tmp_path / "d", DESIRED))
    result = run_cli([command, desired, first, str(out), second, str(tmp_path / "." / "out.json")], cli_env(emulator))
    assert result.code == 1, result.output
    assert "give each output a file of its own" in result.stderr and len(result.stderr.splitlines()) == 1
    assert not out.exists() and emulator.requests == []


@pytest.mark.parametrize(("command", "option"), [("plan", "--out"), ("plan", "--report"), ("apply", "--report")])
def test_an_output_at_a_desired_file_is_refused_and_the_file_kept(
    start_emulator: Any, tmp_path: Path, command: str, option: str
) -> None:
    """`plan --out desired/keys.yaml` used to replace the desired file with the saved plan."""
    emulator = start_emulator(KEYS)
    desired = write_desired(tmp_path / "d", DESIRED)
    before = desired.read_text()
    result = run_cli(
        [command, str(tmp_path / "d"), option, str(tmp_path / "d" / ".." / "d" / "keys.yaml")], cli_env(emulator)
    )
    assert result.code == 1 and "is also the desired file" in result.stderr, result.output
    assert desired.read_text() == before and emulator.requests == []


def test_a_report_at_the_saved_plan_it_applies_is_refused(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(KEYS)
    plan = tmp_path / "plan.json"
    assert (
        run_cli(["plan", str(write_desired(tmp_path / "d", DESIRED)), "--out", str(plan)], cli_env(emulator)).code == 2
    )
    saved, count = plan.read_text(), len(emulator.requests)
    result = run_cli(["apply", "--plan", str(plan), "--report", str(plan)], cli_env(emulator))
    assert result.code == 1 and "is also the saved plan" in result.stderr, result.output
    assert plan.read_text() == saved and len(emulator.requests) == count
    assert emulator.store.load("K1")["name"] == "one"


@pytest.mark.parametrize("kind", ["directory", "symbolic link"])
def test_the_step_summary_is_checked_before_any_request_and_never_followed(
    start_emulator: Any, tmp_path: Path, kind: str
) -> None:
    """`$GITHUB_STEP_SUMMARY` is where `--summary` goes by default: before, a link there was appended
    through (to the file it points at), and a folder there failed the run after its writes."""
    emulator = start_emulator(KEYS)
    victim, step_summary = tmp_path / "victim.txt", tmp_path / "step-summary.md"
    victim.write_text("keep\n")
    if kind == "directory":
        step_summary.mkdir()
    else:
        step_summary.symlink_to(victim)
    env = {**cli_env(emulator), "GITHUB_STEP_SUMMARY": str(step_summary)}
    for command in ("plan", "apply", "audit"):
        result = run_cli([command, str(write_desired(tmp_path / "d", DESIRED))], env)
        assert result.code == 1, result.output
        assert result.stderr.startswith(f"error: $GITHUB_STEP_SUMMARY {step_summary}: "), result.stderr
    assert victim.read_text() == "keep\n" and emulator.requests == []
    assert emulator.store.load("K1")["name"] == "one"


@pytest.mark.slow
def test_a_summary_swollen_by_a_huge_value_still_fits_a_github_step_summary(
    start_emulator: Any, tmp_path: Path
) -> None:
    """GitHub refuses a step summary over 1 MiB whole; the row cap cannot bound a 3 MB key name."""
    emulator = start_emulator([{"id": "K1", "name": "n" * 3_000_000}])
    desired, step_summary = write_desired(tmp_path / "d", DESIRED), tmp_path / "step-summary.md"
    env = {**cli_env(emulator), "GITHUB_STEP_SUMMARY": str(step_summary)}
    assert run_cli(["plan", str(desired), "--report", str(tmp_path / "r.json")], env).code == 2
    assert run_cli(["audit", str(desired)], env).code == 0
    for summary in step_summary.read_text(encoding="utf-8").split("## descope-reconcile")[1:]:
        assert len(summary.encode()) < 1024 * 1024 and "*Cut at 1,047,552 of " in summary
        assert summary.count("```") % 2 == 0  # a code block cut open is closed
    assert load_report(tmp_path / "r.json")["keys"][0]["changes"][0]["before"] == "n" * 3_000_000
