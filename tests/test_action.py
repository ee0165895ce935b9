"""The composite action (action.yml): its inputs reach the shell only through `env:`, and its run steps
run in bash as a runner runs them, with the real tool or with a stub that records its command line,
which then must parse with the CLI's own argument parser.

The helpers here also serve tests/test_ci_files.py (the workflows that use the action) and
tests/test_dist.py (the action installing a built wheel).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, cli_env

ACTION_FILE = REPO / "action.yml"
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
# The tool as `make install` installed it, and the Python beside it, as the install step leaves them.
TOOL_BIN = Path(sys.executable).parent


def build_parser() -> argparse.ArgumentParser:
    """The CLI's own parser. `reconcile.cli` keeps `build_parser` while the modules move into
    sub-packages (it may become a package itself), so it is looked up there at call time."""
    parser: argparse.ArgumentParser = importlib.import_module("reconcile.cli").build_parser()
    return parser


def cli_has_target() -> bool:
    """Whether `--target NAME` has landed in the CLI (another change adds it, with descope-reconcile.yaml)."""
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return any("--target" in p._option_string_actions for p in [parser, *commands.choices.values()])


# Only the checks that need the CLI to accept --target wait for it; everything else runs today.
NEEDS_TARGET = "the CLI has no --target yet: the change that adds it (and descope-reconcile.yaml) has not landed"


def load_action() -> dict[str, Any]:
    action: dict[str, Any] = yaml.safe_load(ACTION_FILE.read_text())
    return action


def action_step(step_id: str) -> dict[str, Any]:
    return next(step for step in load_action()["runs"]["steps"] if step.get("id") == step_id)


@dataclass
class StepRun:
    code: int
    outputs: dict[str, str]
    output: str  # stdout and stderr
    summary: str  # what the step wrote to the job summary


def run_action_step(
    step_id: str,
    inputs: Mapping[str, str],
    workspace: Path,
    runner: Path,
    *,
    tool_bin: Path = TOOL_BIN,
    env: Mapping[str, str] | None = None,
    action_path: Path = REPO,
) -> StepRun:
    """Run one of the action's steps as a runner would: `${{ }}` evaluated in its `env:` only (inputs
    with their defaults, the install step's output), then `bash --noprofile --norc -eo pipefail`
    (GitHub's `shell: bash`) in `workspace`, with RUNNER_TEMP, GITHUB_OUTPUT and GITHUB_STEP_SUMMARY
    under `runner`."""
    declared = load_action()["inputs"]
    assert set(inputs) <= set(declared), f"undeclared inputs: {set(inputs) - set(declared)}"
    context = {f"inputs.{name}": inputs.get(name, spec.get("default", "")) for name, spec in declared.items()}
    context["steps.install.outputs.bin"] = str(tool_bin)
    step = action_step(step_id)
    step_env = {name: EXPRESSION.sub(lambda m: context[m.group(1)], str(value)) for name, value in step["env"].items()}

    runner.mkdir(parents=True, exist_ok=True)
    script = runner / f"{step_id}.sh"
    script.write_text(step["run"])
    output_file, summary_file = runner / "github_output", runner / "step_summary"
    output_file.write_text("")
    summary_file.write_text("")
    base = dict(env) if env is not None else cli_env(None)
    base = {k: v for k, v in base.items() if not k.startswith(("GITHUB_", "RUNNER_"))}
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        cwd=workspace,
        env={
            **base,
            "RUNNER_TEMP": str(runner),
            "GITHUB_ACTION_PATH": str(action_path),  # the action's own files: its hashed constraints
            "GITHUB_OUTPUT": str(output_file),
            "GITHUB_STEP_SUMMARY": str(summary_file),
            **step_env,
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    outputs = dict(line.split("=", 1) for line in output_file.read_text().splitlines())
    return StepRun(done.returncode, outputs, done.stdout + done.stderr, summary_file.read_text())


def recording_tool(folder: Path, exit_code: int = 0) -> tuple[Path, Path]:
    """A bin folder like the install step's, whose `descope-reconcile` only records its arguments
    (each ended by a NUL) and exits with `exit_code`. Returns the folder and the record's path. A
    shell script: the workflow tests start it hundreds of times, and Python starts 10x slower."""
    folder.mkdir(parents=True)
    record = folder / "argv"
    stub = folder / "descope-reconcile"
    stub.write_text(
        f"#!/bin/sh\n: > {shlex.quote(str(record))}\n"
        f"for arg do printf '%s\\0' \"$arg\" >> {shlex.quote(str(record))}; done\nexit {exit_code}\n"
    )
    stub.chmod(0o755)
    (folder / "python").symlink_to(sys.executable)
    return folder, record


def recorded_command(inputs: Mapping[str, str], tmp_path: Path, exit_code: int = 0) -> tuple[StepRun, list[str]]:
    """The command line the run step builds from `inputs` (with a recording stub for the tool)."""
    tool_bin, record = recording_tool(tmp_path / "stub", exit_code)
    run = run_action_step("run", inputs, tmp_path, tmp_path / "runner", tool_bin=tool_bin)
    argv = [arg.decode() for arg in record.read_bytes().split(b"\0")[:-1]]
    return run, argv


# --- the action file ---


def test_inputs_reach_the_shell_only_through_env() -> None:
    action = load_action()
    steps = action["runs"]["steps"]
    assert action["runs"]["using"] == "composite"
    used: set[str] = set()
    for step in steps:
        assert step["shell"] == "bash"
        assert "${{" not in step["run"], "no expression inside a script: it would be pasted into the shell code"
        for name, value in step["env"].items():
            if value == "" and name.startswith("DESCOPE_MANAGEMENT_KEY"):
                continue  # blanked: the install step never has the key
            (expression,) = EXPRESSION.findall(value)
            assert value == f"${{{{ {expression} }}}}", "an env value is one expression, nothing around it"
            assert re.search(rf"\${name}\b", step["run"]), f"{name} is set for nothing"
            if expression.startswith("inputs."):
                used.add(expression.removeprefix("inputs."))
    assert used == set(action["inputs"]), "every input is used, and only declared ones"


def test_inputs_are_documented_and_the_required_ones_have_no_default() -> None:
    for name, spec in load_action()["inputs"].items():
        assert spec["description"], name
        assert spec.get("required", False) != ("default" in spec), name


def test_outputs_come_from_what_the_run_step_writes() -> None:
    action = load_action()
    script = action_step("run")["run"]
    for name, spec in action["outputs"].items():
        assert spec["value"] == f"${{{{ steps.run.outputs.{name} }}}}"
        assert f'echo "{name}=' in script
    assert action_step("install")["run"].count('>> "$GITHUB_OUTPUT"') == 1  # bin, read by the run step


# --- the run step, with a stub that records the command line ---


def test_arguments_are_split_like_a_shell_but_nothing_is_run(tmp_path: Path) -> None:
    inputs = {
        "command": "plan",
        "paths": "desired/ 'more keys/' $(touch pwned)",
        "args": '--out "saved plan.json" ; touch pwned2 `touch pwned3` --max-file-size 100',
        "report": "plan report.json",
    }
    run, argv = recorded_command(inputs, tmp_path)
    assert run.code == 0, run.output
    assert argv == [
        "plan",
        "--report",
        "plan report.json",
        "desired/",
        "more keys/",
        "$(touch",
        "pwned)",
        "--out",
        "saved plan.json",
        ";",
        "touch",
        "pwned2",
        "`touch",
        "pwned3`",
        "--max-file-size",
        "100",
    ]
    assert not list(tmp_path.glob("pwned*")), "an input was run as shell code"


@pytest.mark.slow
def test_run_step_commands_parse_with_the_real_parser(tmp_path: Path) -> None:
    cases = [
        {"command": "validate", "paths": "desired/", "args": "--format github"},
        {"command": "plan", "paths": "desired/", "args": "--out plan.json"},
        {"command": "apply", "args": "--plan plan.json --max-changes 10%"},
        {"command": "apply", "paths": "desired/", "args": "--plan plan.json", "report": "apply-report.json"},
        {"command": "export", "args": "--out desired/keys.yaml --tenant T1"},
        {"command": "audit", "paths": "desired/", "args": "--out audit.json --expiring-within 30"},
    ]
    for number, inputs in enumerate(cases):
        _, argv = recorded_command(inputs, tmp_path / str(number))
        args = build_parser().parse_args(argv)  # exits 64 on anything it does not know
        assert args.command == inputs["command"]
        assert (getattr(args, "report", None) is not None) == (inputs["command"] in ("plan", "apply"))


@pytest.mark.slow
def test_target_is_passed_only_when_given(tmp_path: Path) -> None:
    _, without = recorded_command({"command": "plan", "paths": "desired/"}, tmp_path / "without")
    assert "--target" not in without
    _, with_target = recorded_command({"command": "plan", "target": "prod"}, tmp_path / "with")
    assert with_target[:3] == ["plan", "--target", "prod"]


@pytest.mark.skipif(not cli_has_target(), reason=NEEDS_TARGET)
def test_target_command_parses_with_the_real_parser(tmp_path: Path) -> None:
    _, argv = recorded_command({"command": "plan", "target": "prod", "args": "--out plan.json"}, tmp_path)
    assert build_parser().parse_args(argv).command == "plan"


@pytest.mark.parametrize(
    ("tool_exit", "ok_exit_codes", "step_exit"),
    [(0, "0", 0), (2, "0", 2), (2, "0 2", 0), (0, "0 2", 0), (1, "0 2", 1), (3, "0 2", 3), (64, "0", 64)],
)
def test_the_step_fails_unless_the_exit_code_is_ok(
    tmp_path: Path, tool_exit: int, ok_exit_codes: str, step_exit: int
) -> None:
    inputs = {"command": "validate", "paths": "desired/", "ok-exit-codes": ok_exit_codes}
    run, _ = recorded_command(inputs, tmp_path, exit_code=tool_exit)
    assert run.code == step_exit
    assert run.outputs == {"exit-code": str(tool_exit), "changes": "", "report": ""}  # written even on failure


def test_a_stale_report_is_not_taken_for_this_runs(tmp_path: Path) -> None:
    (tmp_path / "descope-reconcile-report.json").write_text('{"summary": {"changes": 7}}')
    run, _ = recorded_command({"command": "plan", "paths": "desired/"}, tmp_path, exit_code=1)  # writes no report
    assert run.outputs == {"exit-code": "1", "changes": "", "report": ""}
    assert not (tmp_path / "descope-reconcile-report.json").exists()


# --- the run step with the real tool ---


@pytest.mark.slow
def test_validate_with_the_real_tool(tmp_path: Path) -> None:
    shutil.copytree(REPO / "desired", tmp_path / "desired")
    run = run_action_step("run", {"command": "validate", "paths": "desired/"}, tmp_path, tmp_path / "runner")
    assert run.code == 0, run.output
    assert run.outputs == {"exit-code": "0", "changes": "", "report": ""}

    (tmp_path / "desired" / "bad.yaml").write_text("version: 1\nkeys:\n  - id: K1\n    roleName: [x]\n")
    inputs = {"command": "validate", "paths": "desired/", "args": "--format github"}
    run = run_action_step("run", inputs, tmp_path, tmp_path / "runner")
    assert run.code == 1 and run.outputs["exit-code"] == "1"
    assert "::error file=desired/bad.yaml,line=4,col=5::" in run.output


@pytest.mark.slow
def test_plan_outputs_the_count_of_changes_from_the_report(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator([{"id": "K1", "name": "old"}, {"id": "K2", "name": "same"}, {"id": "K3", "name": "x"}])
    (tmp_path / "desired").mkdir()
    (tmp_path / "desired" / "keys.yaml").write_text(
        "version: 1\nkeys:\n  - {id: K1, name: new}\n  - {id: K2, name: same}\n  - {id: K3, name: y}\n"
    )
    inputs = {"command": "plan", "paths": "desired/", "report": "out/plan-report.json"}
    run = run_action_step("run", inputs, tmp_path, tmp_path / "runner", env=cli_env(emulator))
    assert run.code == 2, run.output  # ok-exit-codes defaults to "0": drift fails the step
    assert run.outputs == {"exit-code": "2", "changes": "2", "report": "out/plan-report.json"}
    report = json.loads((tmp_path / "out" / "plan-report.json").read_text())
    assert report["summary"]["changes"] == 2
    assert "K1" in run.summary and "K3" in run.summary, "the plan goes to the job summary"


def plant_modules(workspace: Path, names: list[str]) -> Path:
    """Modules in the working directory that shadow the standard library's or pip's, as a pull
    request could add them; importing any of them creates the returned file."""
    planted = workspace / "planted-module-was-imported"
    for name in names:
        (workspace / name).mkdir(parents=True)
        (workspace / name / "__init__.py").write_text(f"open({str(planted)!r}, 'w')\nraise SystemExit(99)\n")
    return planted


@pytest.mark.slow
def test_no_module_from_the_working_directory_is_imported(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator([{"id": "K1", "name": "old"}])
    (tmp_path / "desired").mkdir()
    (tmp_path / "desired" / "keys.yaml").write_text("version: 1\nkeys:\n  - {id: K1, name: new}\n")
    planted = plant_modules(tmp_path, ["shlex", "json", "reconcile", "yaml", "httpx"])
    inputs = {"command": "plan", "paths": "desired/", "args": "--out plan.json", "ok-exit-codes": "0 2"}
    run = run_action_step("run", inputs, tmp_path, tmp_path / "runner", env=cli_env(emulator))
    assert run.code == 0 and run.outputs["changes"] == "1", run.output
    assert not planted.exists()


# --- the install step ---


@pytest.mark.parametrize("version", ["", "latest", "1.0; touch pwned", "1.0 --index-url http://x", "0.1.0\nx", "../1"])
def test_install_takes_only_a_release_version(tmp_path: Path, version: str) -> None:
    run = run_action_step("install", {"version": version}, tmp_path, tmp_path / "runner")
    assert run.code == 1
    assert "::error title=descope-reconcile::the version input must be a release such as 0.1.0" in run.output
    assert not list((tmp_path / "runner").glob("descope-reconcile-*")) and not (tmp_path / "pwned").exists()


def action_with_constraints(folder: Path, version: str) -> Path:
    """An action folder whose commit ships (empty) constraints for this version."""
    (folder / "constraints").mkdir(parents=True)
    (folder / "constraints" / f"descope-reconcile-{version}.txt").write_text("")
    return folder


def environment_recorder(folder: Path) -> tuple[Path, Path]:
    """A `python3` that writes the environment it was given (JSON) and answers as Python 3.10 would."""
    folder.mkdir()
    record = folder / "env.json"
    (folder / "python3").write_text(
        f"#!{sys.executable}\nimport json, os, sys\nopen({str(record)!r}, 'w').write(json.dumps(dict(os.environ)))\n"
        "sys.exit(1)\n"
    )
    (folder / "python3").chmod(0o755)
    return folder, record


def test_install_needs_python_3_11(tmp_path: Path) -> None:
    old, _ = environment_recorder(tmp_path / "old-python")
    env = {**cli_env(None), "PATH": f"{old}{os.pathsep}{os.environ['PATH']}"}
    action = action_with_constraints(tmp_path / "action", "0.1.0")
    run = run_action_step("install", {"version": "0.1.0"}, tmp_path, tmp_path / "runner", env=env, action_path=action)
    assert run.code == 1 and "python3 must be Python 3.11+" in run.output


def test_install_refuses_a_version_whose_hashed_constraints_the_action_does_not_ship(tmp_path: Path) -> None:
    """8: it installed `descope-reconcile==X` with floating dependencies, no hashes."""
    run = run_action_step("install", {"version": "9.9.9"}, tmp_path, tmp_path / "runner")
    assert run.code == 1, run.output
    assert "ships no hashed constraints for 9.9.9 (constraints/descope-reconcile-9.9.9.txt)" in run.output
    assert not list((tmp_path / "runner").glob("descope-reconcile-*"))
    install = action_step("install")["run"]
    assert '--require-hashes --only-binary :all: -r "$constraints"' in install
    assert "descope-reconcile==" not in install, "never a requirement of its own beside the reviewed file"


def test_the_install_step_never_has_the_management_key(tmp_path: Path) -> None:
    """8: pip, and any build backend, ran with DESCOPE_MANAGEMENT_KEY in the environment."""
    recorder, record = environment_recorder(tmp_path / "python")
    key_file = tmp_path / "key"
    env = {
        **cli_env(None),
        "PATH": f"{recorder}{os.pathsep}{os.environ['PATH']}",
        "DESCOPE_MANAGEMENT_KEY": "K2-SENTINEL-install-must-not-see",
        "DESCOPE_MANAGEMENT_KEY_FILE": str(key_file),
    }
    action = action_with_constraints(tmp_path / "action", "0.1.0")
    run = run_action_step("install", {"version": "0.1.0"}, tmp_path, tmp_path / "runner", env=env, action_path=action)
    assert run.code == 1, run.output
    seen = json.loads(record.read_text())
    assert "DESCOPE_MANAGEMENT_KEY" not in seen and "DESCOPE_MANAGEMENT_KEY_FILE" not in seen
    assert "K2-SENTINEL-install-must-not-see" not in record.read_text()


def test_rotate_and_the_secret_sinks_reach_the_command_line(tmp_path: Path) -> None:
    inputs = {
        "command": "rotate",
        "args": "--ids K1,K2",
        "secrets-out": "out/s.jsonl",
        "secrets-command": "gh secret set X",
    }
    run, argv = recorded_command({**inputs, "version": "0.1.0"}, tmp_path)
    assert run.code == 0, run.output
    assert argv[:3] == ["rotate", "--report", "descope-reconcile-report.json"]
    assert argv[3:] == ["--secrets-out", "out/s.jsonl", "--secrets-command", "gh secret set X", "--ids", "K1,K2"]
    parsed = build_parser().parse_args(argv)
    assert parsed.secrets_out == Path("out/s.jsonl") and parsed.secrets_command == "gh secret set X"
    _, plan = recorded_command({"command": "plan", "secrets-out": "s.jsonl", "version": "0.1.0"}, tmp_path / "plan")
    assert "--secrets-out" not in plan, "only the commands that issue secrets get a sink"
