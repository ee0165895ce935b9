"""The real CLI in a subprocess against the local server over HTTP: validate, plan, apply, plan again."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reconcile.job import clock
from tests.conftest import cli_env, load_report, run_cli, updatable, write_desired

SEED: list[dict[str, Any]] = [
    {"id": "K1", "name": "ci-deployer", "roleNames": ["deployer", "admin"], "customClaims": {"tier": "2"}},
    {"id": "K2", "name": "reader", "description": "same", "permittedIps": ["10.0.0.0/8", "1.2.3.4"]},
    {
        "id": "K3",
        "name": "billing",
        "description": "unmanaged field",
        "keyTenants": [{"tenantId": "T1", "roleNames": ["b"]}],
        "customAttributes": {"owner": "fin"},
    },
    {"id": "K4", "name": "to-clear", "roleNames": ["x"], "permittedIps": ["1.1.1.1"]},
    {"id": "K9", "name": "nobody-manages-me"},
]
DESIRED: list[dict[str, Any]] = [
    {"id": "K1", "name": "ci-deployer", "roleNames": ["deployer"], "customClaims": {"tier": 2}},
    {"id": "K2", "name": "reader", "description": "same", "permittedIps": ["1.2.3.4", "10.0.0.0/8"]},
    {"id": "K3", "name": "billing-sync", "keyTenants": [{"tenantId": "T1", "roleNames": ["b"]}, {"tenantId": "T2"}]},
    {"id": "K4", "roleNames": [], "permittedIps": []},
]


@pytest.mark.parametrize("semantics", ["merge", "replace"])
def test_plan_apply_converge(start_emulator: Any, tmp_path: Path, semantics: str) -> None:
    emulator = start_emulator(SEED, tenant_names={"T1": "One", "T2": "Two"}, update_semantics=semantics)
    desired = write_desired(tmp_path / "desired", DESIRED)
    env = cli_env(emulator)

    assert run_cli(["validate", str(desired)], cli_env(None)).code == 0
    assert emulator.requests == []  # validate is offline

    planned = run_cli(["plan", str(tmp_path / "desired"), "--report", str(tmp_path / "plan.json")], env)
    assert planned.code == 2, planned.output
    assert '~ tier: "2" -> 2' in planned.stdout
    assert '- "admin"' in planned.stdout
    plan_report = load_report(tmp_path / "plan.json")
    assert plan_report["summary"]["byOutcome"] == {"unchanged": 1, "update": 3}
    assert [k["id"] for k in plan_report["unmanaged"]] == ["K9"]
    assert {k["id"]: [c["field"] for c in k["changes"]] for k in plan_report["keys"]} == {
        "K1": ["roleNames", "customClaims"],
        "K2": [],
        "K3": ["name", "keyTenants"],
        "K4": ["roleNames", "permittedIps"],
    }
    assert not emulator.updates_for("K1")  # plan is read-only

    applied = run_cli(["apply", str(tmp_path / "desired"), "--report", str(tmp_path / "apply.json")], env)
    assert applied.code == 0, applied.output
    report = load_report(tmp_path / "apply.json")
    assert report["summary"]["byOutcome"] == {"unchanged": 1, "updated": 3}
    assert stat.S_IMODE((tmp_path / "apply.json").stat().st_mode) == 0o600
    # exactly one update per drifted key, none for the key in sync
    assert [len(emulator.updates_for(k)) for k in ("K1", "K2", "K3", "K4")] == [1, 0, 1, 1]

    state = {key["id"]: updatable(key) for key in emulator.store.all()}
    assert state["K1"]["roleNames"] == ["deployer"] and state["K1"]["customClaims"] == {"tier": 2}
    assert state["K3"]["name"] == "billing-sync"
    assert state["K3"]["description"] == "unmanaged field"  # not managed: kept under both semantics
    assert state["K3"]["customAttributes"] == {"owner": "fin"}
    assert sorted(t["tenantId"] for t in state["K3"]["keyTenants"]) == ["T1", "T2"]
    assert state["K4"]["name"] == "to-clear" and state["K4"]["roleNames"] == [] and state["K4"]["permittedIps"] == []
    assert state["K9"]["name"] == "nobody-manages-me"

    again = run_cli(["plan", str(tmp_path / "desired"), "--report", str(tmp_path / "after.json")], env)
    assert again.code == 0, again.output
    assert load_report(tmp_path / "after.json")["summary"]["changes"] == 0


def test_report_accounts_for_files_requests_and_target(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(SEED)
    write_desired(tmp_path / "d", DESIRED[:1], "a.yaml")
    write_desired(tmp_path / "d", DESIRED[1:2], "b.yml")
    args = ["apply", str(tmp_path / "d"), "--report", str(tmp_path / "r.json"), "--audit-tenant", "T1"]
    result = run_cli(args, cli_env(emulator))
    assert result.code == 0, result.output
    report = load_report(tmp_path / "r.json")
    assert [Path(f["path"]).name for f in report["desired"]["files"]] == ["a.yaml", "b.yml"]
    assert report["target"] == {"projectId": emulator.config.project_id, "baseUrl": emulator.url}
    # One search, one update; and the audit trail's: who changed the key, the overwritten check, the event.
    assert report["requests"]["byStatus"] == {"200": 5}
    assert report["run"]["mode"] == "apply"
    key = report["keys"][0]
    assert key["source"] == {"path": str(tmp_path / "d" / "a.yaml"), "line": 3}
    assert key["attempts"] == 1 and key["error"] is None
    assert emulator.config.management_key not in (tmp_path / "r.json").read_text()


def test_missing_and_not_editable_keys_fail_but_others_apply(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator([{"id": "K1", "name": "a"}, {"id": "K2", "name": "b", "editable": False}])
    desired = write_desired(
        tmp_path, [{"id": "K1", "name": "a2"}, {"id": "K2", "name": "b2"}, {"id": "K7", "name": "c"}]
    )
    result = run_cli(["apply", str(desired), "--report", str(tmp_path / "r.json")], cli_env(emulator))
    assert result.code == 1
    outcomes = {k["id"]: k["outcome"] for k in load_report(tmp_path / "r.json")["keys"]}
    assert outcomes == {"K1": "updated", "K2": "not_editable", "K7": "missing"}
    assert len(emulator.updates_for("K2")) == 0 and len(emulator.updates_for("K7")) == 0


def test_git_commit_and_dirty_flag_are_reported(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(SEED)
    repo = tmp_path / "repo"
    desired = write_desired(repo / "desired", DESIRED[:1])
    git = ["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "desired"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()

    run_cli(["plan", str(desired), "--report", str(tmp_path / "clean.json")], cli_env(emulator))
    assert load_report(tmp_path / "clean.json")["desired"]["git"] == {"commit": head, "dirty": False}
    desired.write_text(desired.read_text() + "# edited\n")
    run_cli(["plan", str(desired), "--report", str(tmp_path / "dirty.json")], cli_env(emulator))
    assert load_report(tmp_path / "dirty.json")["desired"]["git"] == {"commit": head, "dirty": True}


@pytest.mark.parametrize(
    ("env_change", "message"),
    [
        ({"DESCOPE_PROJECT_ID": ""}, "DESCOPE_PROJECT_ID is not set"),
        ({"DESCOPE_MANAGEMENT_KEY": ""}, "DESCOPE_MANAGEMENT_KEY is not set"),
        ({"DESCOPE_BASE_URL": "http://example.com"}, "only loopback"),
    ],
)
def test_configuration_errors_are_one_line(
    start_emulator: Any, tmp_path: Path, env_change: dict[str, str], message: str
) -> None:
    emulator = start_emulator(SEED)
    desired = write_desired(tmp_path, DESIRED)
    result = run_cli(["plan", str(desired)], {**cli_env(emulator), **env_change})
    assert result.code == 1
    assert result.stderr.strip().splitlines() == [f"error: {result.stderr.strip().removeprefix('error: ')}"]
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert emulator.requests == []


def test_wrong_key_is_a_clear_error_and_stops(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(SEED)
    desired = write_desired(tmp_path, DESIRED)
    result = run_cli(["apply", str(desired)], {**cli_env(emulator), "DESCOPE_MANAGEMENT_KEY": "K2wrong"})
    assert result.code == 1
    assert "HTTP 401" in result.stderr and "Traceback" not in result.output
    assert [r.path for r in emulator.requests] == ["/v1/mgmt/accesskey/search"]


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ([], 64),
        (["plan"], 64),
        (["apply", "x", "--concurrency", "0"], 64),
        (["frobnicate"], 64),
        (["--version"], 0),
        (["apply", "--help"], 0),
    ],
)
def test_usage_exit_codes(args: list[str], code: int) -> None:
    result = run_cli(args, cli_env(None))
    assert result.code == code, result.output
    assert "Traceback" not in result.output


def test_help_documents_exit_codes_and_environment() -> None:
    text = run_cli(["plan", "--help"], cli_env(None)).stdout
    for needle in ("exit codes:", "64", "plan found changes", "DESCOPE_MANAGEMENT_KEY_FILE", "--report"):
        assert needle in text


def test_python_dash_m_and_console_script_agree() -> None:
    script = Path(sys.executable).with_name("descope-reconcile")
    via_script = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True).stdout
    assert via_script == run_cli(["--version"], cli_env(None)).stdout


def test_a_process_of_its_own_ends_with_its_code_its_output_whole_and_its_files_written(
    start_emulator: Any, tmp_path: Path
) -> None:
    """The command line's process ends without freeing what it built (`end_process`): what it printed
    and wrote is whole all the same, and its exit code is the run's. In-process, nothing is kept."""
    emulator = start_emulator([{"id": f"K{index}", "name": f"old-{index}"} for index in range(300)])
    desired = write_desired(tmp_path / "d", [{"id": f"K{index}", "name": f"new-{index}"} for index in range(300)])
    args = ["plan", str(desired.parent), "--report", str(tmp_path / "r.json"), "--out", str(tmp_path / "p.json")]
    for command in ([sys.executable, "-m", "reconcile"], [str(Path(sys.executable).with_name("descope-reconcile"))]):
        env = cli_env(emulator)
        done = subprocess.run([*command, *args], env=env, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 2, done.stderr  # changes pending
        assert done.stdout.count('name: "old-') == 300 and done.stdout.endswith("(--max-changes 25%).\n")
        assert "report written to" in done.stderr
        assert len(load_report(tmp_path / "r.json")["keys"]) == 300
        assert len(json.loads((tmp_path / "p.json").read_text())["changes"]) == 300
    in_process = run_cli(args, cli_env(emulator))
    assert in_process.code == 2, in_process.output
    assert clock._retained.objects is None, "an in-process run keeps nothing"


def test_output_the_process_could_not_write_is_never_a_success(start_emulator: Any, tmp_path: Path) -> None:
    """A SARIF log that does not reach its file (a full disk) fails the run, said on stderr, as the
    interpreter's own ending did; a stdout or stderr closed from the start loses nothing of the run's
    own; an apply whose reader went away still writes its report (then fails, naming the pipe)."""
    emulator = start_emulator([{"id": "K1", "name": "old"}])
    folder = str(write_desired(tmp_path / "d", [{"id": "K1", "name": "new"}]).parent)
    env = {k: v for k, v in cli_env(emulator).items() if k != "PYTHONUNBUFFERED"}  # stdout buffered, as usual
    command = [sys.executable, "-m", "reconcile"]
    with Path("/dev/full").open("w") as full:
        sarif = [*command, "validate", "--format", "sarif", folder]
        done = subprocess.run(sarif, stdout=full, stderr=subprocess.PIPE, env=env, text=True, check=False)
    assert done.returncode == 1 and "error: stdout: No space left on device" in done.stderr, done.stderr
    for closed in (">&-", "2>&-"):
        shell = f'exec "$@" {closed}'
        done = subprocess.run(
            ["sh", "-c", shell, "sh", *command, "validate", folder], env=env, capture_output=True, check=False
        )
        assert done.returncode == 0, (closed, done.stderr)
    apply = subprocess.Popen(
        [*command, "apply", folder, "--report", str(tmp_path / "r.json")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    assert apply.stdout is not None
    apply.stdout.close()  # the reader goes away before the run prints
    _, stderr = apply.communicate(timeout=60)
    assert apply.returncode == 1 and "Broken pipe" in stderr, stderr
    assert load_report(tmp_path / "r.json")["summary"]["byOutcome"] == {"updated": 1}
    assert emulator.store.load("K1")["name"] == "new"
