"""Targets of descope-reconcile.yaml through the real CLI: two local servers as two projects, each
with its own management key; concurrency, isolation of failures and of secrets, exit codes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconcile.config.targets import load_config
from reconcile.emulator import FAULT_KINDS, Answer, Call, Emulator
from reconcile.errors import ExitCode, most_severe
from reconcile.plan.limit import ChangeLimit
from tests.conftest import CliResult, cli_env, load_report, run_cli, write_desired
from tests.support import start_process
from tests.test_trail_e2e import console

DEV_KEY = "K2-DEV-SENTINEL-5eb1f0-never-print"
PROD_KEY = "K2-PROD-SENTINEL-77a0c3-never-print"
DEV_KEYS = [{"id": "K1", "name": "one"}, {"id": "K2", "name": "two"}]
PROD_KEYS = [{"id": "K7", "name": "seven"}]
UPDATE = "/v1/mgmt/accesskey/update"


def record_authorization(emulator: Emulator) -> list[str]:
    """Every Authorization header the server is sent, in order."""
    seen: list[str] = []

    def answer(call: Call) -> Answer:
        seen.append(call.headers.get("authorization", ""))
        return call.forward()

    emulator.intercept("/*", answer)
    return seen


class Projects:
    """Two servers (dev, prod), their desired files and the config naming both, in one folder."""

    def __init__(
        self,
        start_emulator: Callable[..., Emulator],
        root: Path,
        keys: Sequence[Sequence[dict[str, Any]]] = (DEV_KEYS, PROD_KEYS),
        **server: Any,
    ) -> None:
        self.root = root
        self.dev = start_emulator(keys[0], project_id="P2dev", management_key=DEV_KEY, **server)
        self.prod = start_emulator(keys[1], project_id="P2prod", management_key=PROD_KEY, **server)
        self.dev_seen, self.prod_seen = record_authorization(self.dev), record_authorization(self.prod)
        write_desired(root / "desired" / "dev", [{"id": "K1", "name": "one-v2"}, {"id": "K2", "name": "two-v2"}])
        write_desired(root / "desired" / "prod", [{"id": "K7", "name": "seven-v2"}])
        (root / "secrets").mkdir()
        (root / "secrets" / "prod.key").write_text(PROD_KEY + "\n")
        (root / "secrets" / "prod.key").chmod(0o600)  # as ssh wants a private key: validate refuses an open one
        self.targets: dict[str, dict[str, Any]] = {
            "dev": {
                "projectId": "P2dev",
                "managementKeyEnv": "DEV_MGMT_KEY",
                "baseUrl": self.dev.url,
                "paths": ["desired/dev"],
            },
            "prod": {
                "projectIdEnv": "PROD_PROJECT_ID",
                "managementKeyFile": "secrets/prod.key",
                "baseUrl": self.prod.url,
                "paths": ["desired/prod"],
                "concurrency": 2,
            },
        }
        self.write_config()

    def write_config(self) -> None:
        config = {"version": 1, "targets": self.targets}
        (self.root / "descope-reconcile.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    def env(self, **extra: str) -> dict[str, str]:
        return cli_env(None, **{"DEV_MGMT_KEY": DEV_KEY, "PROD_PROJECT_ID": "P2prod", **extra})

    def run(self, args: Sequence[str], **extra: str) -> CliResult:
        return run_cli(args, self.env(**extra), cwd=self.root)

    def names(self) -> dict[str, dict[str, str]]:
        return {
            "dev": {key["id"]: key["name"] for key in self.dev.store.all()},
            "prod": {key["id"]: key["name"] for key in self.prod.store.all()},
        }


CONVERGED = {"dev": {"K1": "one-v2", "K2": "two-v2"}, "prod": {"K7": "seven-v2"}}
UNTOUCHED = {"dev": {"K1": "one", "K2": "two"}, "prod": {"K7": "seven"}}


def assert_lines_belong_to_a_target(stdout: str) -> None:
    """Concurrent targets' output is never interleaved mid-line: each line names its target, or is
    the combined summary at the end."""
    lines = stdout.splitlines()
    summary = next(i for i, line in enumerate(lines) if line.endswith(("target(s), exit 0", "target(s), exit 1")))
    assert all(line.startswith(("[dev] ", "[prod] ")) for line in lines[:summary]), stdout
    assert all(line.startswith(("  dev ", "  prod ")) for line in lines[summary + 1 :]), stdout


def test_apply_converges_every_target_each_with_its_own_report(start_emulator: Any, tmp_path: Path) -> None:
    projects = Projects(start_emulator, tmp_path)
    result = projects.run(["apply", "--report", "reports/{target}.json", "--summary", "summary.md"])
    assert result.code == 0, result.output
    assert projects.names() == CONVERGED
    assert_lines_belong_to_a_target(result.stdout)
    assert "[dev] Apply: 2 updated." in result.stdout and "[prod] Apply: 1 updated." in result.stdout
    assert "apply: 2 target(s), exit 0" in result.stdout

    for name, project in (("dev", "P2dev"), ("prod", "P2prod")):
        report = load_report(tmp_path / "reports" / f"{name}.json")
        assert report["target"]["projectId"] == project
        assert report["summary"]["byOutcome"] == {"updated": len(CONVERGED[name])}
        journal = (tmp_path / "reports" / f"{name}.json.journal.jsonl").read_text().splitlines()
        finished = [json.loads(line)["id"] for line in journal if json.loads(line)["type"] == "key"]
        assert sorted(finished) == sorted(CONVERGED[name])  # a journal each, beside its report
    prod_report = load_report(tmp_path / "reports" / "prod.json")
    assert prod_report["run"]["settings"]["concurrency"] == 2  # the target's setting from the config
    summary = (tmp_path / "summary.md").read_text()
    assert "## descope-reconcile apply: 2 target(s), exit 0" in summary
    assert "### Target `dev`" in summary and "### Target `prod`" in summary
    assert "#### descope-reconcile Apply: project `P2prod`" in summary

    again = projects.run(["plan"])
    assert again.code == 0, again.output
    assert "dev   exit 0  ok  2 unchanged" in again.stdout


def test_saved_plans_one_per_target(start_emulator: Any, tmp_path: Path) -> None:
    projects = Projects(start_emulator, tmp_path)
    planned = projects.run(["plan", "--out", "plans/{target}.json"])
    assert planned.code == ExitCode.CHANGES_PENDING, planned.output
    assert projects.names() == UNTOUCHED
    applied = projects.run(["apply", "--plan", "plans/{target}.json"])
    assert applied.code == 0, applied.output
    assert projects.names() == CONVERGED


@pytest.mark.parametrize("failure", ["wrong-key", "unreachable", "invalid-files", "no-key-variable"])
def test_a_failed_target_never_stops_the_other(start_emulator: Any, tmp_path: Path, failure: str) -> None:
    projects = Projects(start_emulator, tmp_path)
    extra = {}
    if failure == "wrong-key":
        extra["DEV_MGMT_KEY"] = "K2-not-the-dev-key"
    elif failure == "no-key-variable":
        extra["DEV_MGMT_KEY"] = ""
    elif failure == "unreachable":
        projects.targets["dev"]["baseUrl"] = "http://127.0.0.1:9"  # discard port: nothing listens
        projects.write_config()
    else:
        write_desired(tmp_path / "desired" / "dev", [{"id": "K1", "roleNames": "admin"}])
    result = projects.run(["apply", "--max-attempts", "2", "--report", "reports/{target}.json"], **extra)

    assert result.code == ExitCode.FAILURE, result.output
    assert projects.names()["prod"] == CONVERGED["prod"]
    assert projects.names()["dev"] == UNTOUCHED["dev"]
    assert [r for r in projects.dev.requests if r.path == UPDATE] == []
    assert load_report(tmp_path / "reports" / "prod.json")["summary"]["byOutcome"] == {"updated": 1}
    assert "  dev   exit 1  failed  " in result.stdout
    assert "  prod  exit 0  ok  1 updated" in result.stdout
    expected = {
        "wrong-key": "[dev] error: HTTP 401",
        "no-key-variable": "[dev] error: DEV_MGMT_KEY is not set",
        "unreachable": "[dev] error: POST /v1/mgmt/accesskey/search: cannot connect",
        "invalid-files": "[dev] error: 1 validation error; nothing was sent",
    }[failure]
    assert expected in result.stderr
    if failure == "invalid-files":  # located as ever, and that target sent nothing at all
        assert "desired/dev/keys.yaml:4:14: error: `keys[0].roleNames` must be a list" in result.stderr
        assert projects.dev.requests == []


def test_a_failed_key_in_one_target_leaves_everything_else_applied(start_emulator: Any, tmp_path: Path) -> None:
    projects = Projects(start_emulator, tmp_path)
    write_desired(
        tmp_path / "desired" / "dev", [{"id": "K1", "name": "one-v2"}, {"id": "K2", "name": "two-v2"}, {"id": "K404"}]
    )
    result = projects.run(["apply", "--report", "reports/{target}.json"])
    assert result.code == ExitCode.FAILURE, result.output
    assert projects.names() == CONVERGED
    assert load_report(tmp_path / "reports" / "dev.json")["summary"]["byOutcome"] == {"missing": 1, "updated": 2}
    assert "  dev   exit 1  failed  1 missing, 2 updated" in result.stdout


def test_target_option_touches_only_its_own(start_emulator: Any, tmp_path: Path) -> None:
    projects = Projects(start_emulator, tmp_path)
    result = projects.run(["apply", "--target", "dev", "--report", "dev-report.json"])  # one target: no pattern
    assert result.code == 0, result.output
    assert projects.names() == {"dev": CONVERGED["dev"], "prod": UNTOUCHED["prod"]}
    assert projects.prod.requests == [] and projects.prod_seen == []
    assert load_report(tmp_path / "dev-report.json")["target"]["projectId"] == "P2dev"
    assert "prod" not in result.stdout

    both = projects.run(["plan", "--target", "prod", "--target", "dev"])
    assert both.code == ExitCode.CHANGES_PENDING, both.output
    assert (
        "  dev   exit 0  ok  2 unchanged" in both.stdout and "  prod  exit 2  changes pending  1 update" in both.stdout
    )


@pytest.mark.slow
def test_no_management_key_crosses_targets(start_emulator: Any, tmp_path: Path) -> None:
    """Distinct sentinel keys; servers that fail often and quote the credentials in their errors. Each
    server sees only its own key; neither key is in any byte the tool writes."""
    projects = Projects(
        start_emulator, tmp_path, fault_rate=0.3, fault_kinds=FAULT_KINDS, slow_seconds=0.5, random_seed=11
    )
    for emulator in (projects.dev, projects.prod):
        quote_credentials_in_errors(emulator)
    outputs = []
    for args in (
        ["validate", "-vv"],
        ["plan", "-vv", "--timeout", "0.3", "--report", "out/plan-{target}.json", "--summary", "out/plan.md"],
        ["apply", "-vv", "--timeout", "0.3", "--max-attempts", "3", "--report", "out/apply-{target}.json"],
        ["audit", "-vv", "--timeout", "0.3", "--out", "out/audit-{target}.json"],
        ["export", "-vv", "--timeout", "0.3", "--out", "out/export-{target}.yaml"],
    ):
        result = projects.run(args)
        assert "Traceback" not in result.output
        outputs.append(result.output.encode())
    outputs.append(
        projects.run(["apply", "-vv", "--report", "out/wrong-{target}.json"], DEV_MGMT_KEY=PROD_KEY).output.encode()
    )

    assert projects.dev_seen and set(projects.dev_seen) <= {"Bearer P2dev:" + DEV_KEY, "Bearer P2dev:" + PROD_KEY}
    assert "Bearer P2dev:" + PROD_KEY in projects.dev_seen  # only where the environment named the wrong key
    assert set(projects.prod_seen) == {"Bearer P2prod:" + PROD_KEY}
    written = [path.read_bytes() for path in (tmp_path / "out").rglob("*") if path.is_file()]
    assert len(written) >= 8
    everything = b"\n".join(outputs + written)
    assert DEV_KEY.encode() not in everything and PROD_KEY.encode() not in everything
    assert b"rejected" in everything  # the servers' errors were shown, scrubbed


def quote_credentials_in_errors(emulator: Emulator) -> None:
    def answer(call: Call) -> Answer:
        result = call.forward()
        if isinstance(result.body, dict) and "errorCode" in result.body:
            result.body["errorMessage"] = f"rejected {call.headers.get('authorization')}"
        return result

    emulator.intercept("/v1/*", answer)


def test_exit_code_is_the_most_severe_of_the_targets(start_emulator: Any, tmp_path: Path) -> None:
    projects = Projects(start_emulator, tmp_path)
    write_desired(tmp_path / "desired" / "prod", PROD_KEYS)  # prod in sync, dev drifted
    assert projects.run(["plan"]).code == ExitCode.CHANGES_PENDING
    projects.targets["dev"]["maxChanges"] = 0  # refused before any write, from the config
    projects.write_config()
    refused = projects.run(["apply"])
    assert refused.code == ExitCode.SAFETY_THRESHOLD, refused.output
    assert "  dev   exit 3  refused (--max-changes)" in refused.stdout
    assert projects.dev.requests and [r for r in projects.dev.requests if r.path == UPDATE] == []

    assert most_severe([0, 2, 3, 1, 2]) == ExitCode.FAILURE
    assert most_severe([2, 0, 3]) == ExitCode.SAFETY_THRESHOLD
    assert most_severe([0, 64, 1]) == ExitCode.USAGE
    assert most_severe([3, 4, 2]) == ExitCode.OVERWRITTEN and most_severe([4, 1]) == ExitCode.FAILURE
    assert most_severe([2, 7]) == 7 and most_severe([7, 3]) == 7  # an unknown code ranks as a failure
    assert most_severe([]) == ExitCode.OK


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["plan", "--target", "staging"], "unknown target(s) staging: descope-reconcile.yaml names dev, prod"),
        (["plan", "--report", "report.json"], "--report report.json: 2 targets need a file each: put {target}"),
        (["apply", "--plan", "plan.json"], "--plan plan.json: 2 targets need a file each"),
        (["export", "--out", "keys.yaml"], "--out keys.yaml: 2 targets need a file each"),
        (["plan", "desired/dev", "--target", "dev"], "give PATHs (or --no-config) or targets (--config, --target)"),
        (["audit", "--no-config", "--config", "x.yaml"], "give PATHs (or --no-config) or targets"),
        (
            ["plan", "--report", "r/{target}.json", "--out", "r/{target}.json"],
            "--out of target dev and --report of target dev are the same file, r/dev.json",
        ),
        (
            ["plan", "--report", "r/{target}.json", "--summary", "r/prod.json"],
            "--report of target prod and --summary are the same file, r/prod.json",
        ),
        (
            ["apply", "--plan", "p/{target}.json", "--report", "p/{target}.json"],
            "--plan of target dev and --report of target dev are the same file, p/dev.json",
        ),
        (["plan", "--target", "dev", "--report", "x.json", "--out", "./x.json"], "are the same file, x.json"),
    ],
)
def test_usage_errors_exit_64_before_any_request(
    start_emulator: Any, tmp_path: Path, args: list[str], message: str
) -> None:
    projects = Projects(start_emulator, tmp_path)
    result = projects.run(args)
    assert result.code == ExitCode.USAGE, result.output
    assert message in result.stderr
    assert projects.dev.requests == [] and projects.prod.requests == []


def test_paths_keep_working_with_the_environment(start_emulator: Any, tmp_path: Path) -> None:
    """PATHs given (or --no-config): today's behaviour, even beside a config (which is not used)."""
    projects = Projects(start_emulator, tmp_path)
    env = cli_env(projects.prod)
    result = run_cli(["apply", "desired/prod"], env, cwd=tmp_path)
    assert result.code == 0, result.output
    assert projects.names() == {"dev": UNTOUCHED["dev"], "prod": CONVERGED["prod"]}
    assert "[prod]" not in result.output and "target(s)" not in result.output
    exported = run_cli(["export", "--no-config", "--out", "keys.yaml"], env, cwd=tmp_path)  # beside a config
    assert exported.code == 0, exported.output
    assert "K7" in (tmp_path / "keys.yaml").read_text() and projects.dev.requests == []
    assert run_cli(["plan"], env, cwd=tmp_path / "desired").code == ExitCode.USAGE  # no PATH, no config
    no_config = run_cli(["plan", "--target", "dev"], env, cwd=tmp_path / "desired")
    assert no_config.code == ExitCode.USAGE and "--target needs a config" in no_config.stderr


def test_config_from_elsewhere_and_its_problems_located(start_emulator: Any, tmp_path: Path) -> None:
    projects = Projects(start_emulator, tmp_path)
    elsewhere = tmp_path / "desired"  # paths are relative to the config's folder, not the current one
    result = run_cli(["plan", "--config", str(tmp_path / "descope-reconcile.yaml")], projects.env(), cwd=elsewhere)
    assert result.code == ExitCode.CHANGES_PENDING, result.output

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\n"
        "targets:\n"
        "  dev:\n"
        f"    projectId: P2dev\n"
        f"    managementKey: {DEV_KEY}\n"
        "    paths: [desired/dev]\n"
        "  prod:\n"
        "    managementKeyEnv: PROD-KEY\n"
        "    paths: []\n"
        "    rate: fast\n"
        "    maxChanges: 120%\n"
    )
    result = projects.run(["validate", "--config", str(bad)])
    assert result.code == ExitCode.FAILURE
    lines = [line.replace(str(bad), "bad.yaml") for line in result.stderr.splitlines()]
    assert lines[:-1] == [
        "bad.yaml:5:5: error: the management key cannot be in the config: name the environment variable that "
        "holds it (`managementKeyEnv`) or a file (`managementKeyFile`) [targets.dev.managementKey]",
        "bad.yaml:7:3: error: target `prod` needs `projectId` or `projectIdEnv` [targets.prod]",
        "bad.yaml:8:23: error: `managementKeyEnv` must name an environment variable (letters, digits and `_`) "
        "[targets.prod.managementKeyEnv]",
        "bad.yaml:9:12: error: `targets.prod.paths` must not be empty [targets.prod.paths]",
        "bad.yaml:10:11: error: `targets.prod.rate` must be a number, got string 'fast' [targets.prod.rate]",
        "bad.yaml:11:17: error: `maxChanges` '120%': give a count (40) or a percentage (25%) [targets.prod.maxChanges]",
    ]
    assert lines[-1] == "error: 6 validation errors; nothing was sent"
    assert DEV_KEY not in result.output


def test_a_target_that_is_no_mapping_and_a_base_url_that_cannot_work_are_located(tmp_path: Path) -> None:
    """Offline, with file, line and field: a null target (no traceback), a target that is a string,
    a base URL that is not http(s), out of range, or holds credentials (never repeated)."""
    config = tmp_path / "descope-reconcile.yaml"
    target = "    projectId: P2x\n    managementKeyEnv: KEY\n    paths: [desired]\n"
    config.write_text(
        "version: 1\ntargets:\n  dev: null\n  qa: managementKey\n"
        f"  ftp:\n{target}    baseUrl: ftp://api.example.com\n"
        f"  port:\n{target}    baseUrl: https://api.example.com:99999\n"
        f"  creds:\n{target}    baseUrl: https://user:{DEV_KEY}@api.example.com\n"
    )
    result = run_cli(["validate"], cli_env(None), cwd=tmp_path)
    assert result.code == ExitCode.FAILURE, result.output
    assert result.stderr.splitlines() == [
        "descope-reconcile.yaml:3:8: error: `targets.dev` is null: give it a value, or remove it [targets.dev]",
        "descope-reconcile.yaml:4:7: error: `targets.qa` must be a mapping, got string 'managementKey' [targets.qa]",
        "descope-reconcile.yaml:9:14: error: `baseUrl` must be an http(s) URL, such as https://api.descope.com "
        "[targets.ftp.baseUrl]",
        "descope-reconcile.yaml:14:14: error: `baseUrl` is not a valid URL [targets.port.baseUrl]",
        "descope-reconcile.yaml:19:14: error: `baseUrl` must not hold credentials: the management key goes in "
        "`managementKeyEnv` or `managementKeyFile` [targets.creds.baseUrl]",
        "error: 5 validation errors; nothing was sent",
    ]
    assert DEV_KEY not in result.output


def test_validate_every_target(start_emulator: Any, tmp_path: Path) -> None:
    projects = Projects(start_emulator, tmp_path)
    assert projects.run(["validate"]).code == 0
    write_desired(tmp_path / "desired" / "prod", [{"id": "K7", "permittedIps": ["10.0.0.1/8"]}])
    text = projects.run(["validate"])
    assert text.code == ExitCode.FAILURE
    assert "desired/prod/keys.yaml:5:5: error: `10.0.0.1/8` has host bits set" in text.stderr
    assert "[prod] error: 1 validation error" in text.stderr
    assert "  dev   exit 0  ok" in text.stdout and "  prod  exit 1  failed" in text.stdout

    as_json = projects.run(["validate", "--format", "json"])
    assert as_json.code == ExitCode.FAILURE
    records = json.loads(as_json.stdout)  # one list for every target
    assert [(r["target"], r["path"], r["field"]) for r in records] == [
        ("prod", "desired/prod/keys.yaml", "keys[0].permittedIps[0]")
    ]


@pytest.mark.slow
def test_a_signal_stops_every_target(start_emulator: Any, tmp_path: Path) -> None:
    many = [{"id": f"K{i}", "name": f"k{i}"} for i in range(40)]
    projects = Projects(start_emulator, tmp_path, (many, many), latency_ms=150)
    for name in ("dev", "prod"):
        write_desired(tmp_path / "desired" / name, [{**key, "name": "renamed"} for key in many])
        projects.targets[name]["concurrency"] = 1
    projects.write_config()
    process = start_process(["apply", "--force", "--report", "reports/{target}.json"], projects.env(), cwd=tmp_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(
        any(r.path == UPDATE for r in emulator.requests) for emulator in (projects.dev, projects.prod)
    ):
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == ExitCode.FAILURE, stderr
    for name in ("dev", "prod"):
        report = load_report(tmp_path / "reports" / f"{name}.json")
        assert report["run"]["interrupted"] is True, name
        assert report["summary"]["byOutcome"].get("interrupted", 0) > 0, name


def test_the_documented_config_is_valid_and_validate_stays_offline(tmp_path: Path) -> None:
    page = (Path(__file__).resolve().parents[1] / "docs" / "targets.md").read_text()
    section = page[page.index("# Targets: several projects") :]
    example = section[section.index("```yaml\n") + len("```yaml\n") : section.index("```\n", section.index("```yaml"))]
    (tmp_path / "descope-reconcile.yaml").write_text(example)
    config, problems = load_config(tmp_path / "descope-reconcile.yaml")
    assert problems == [] and config is not None
    assert config.targets["prod"].paths == (str(tmp_path / "desired/prod"), str(tmp_path / "desired/shared"))
    assert config.targets["prod"].settings == {"rate": 50, "concurrency": 4, "maxChanges": ChangeLimit(percent=10)}

    for name in ("dev", "prod", "shared"):
        write_desired(tmp_path / "desired" / name, [{"id": f"K-{name}"}])
    probe = (
        "import sys; from reconcile.cli import main; code = main(['validate']); "
        "print(code, 'asyncio' in sys.modules, 'httpx' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=cli_env(None), capture_output=True, text=True, check=False
    )
    assert done.stdout.splitlines()[-1] == "0 False False", done.stdout + done.stderr


@pytest.mark.slow
def test_a_target_that_overwrote_a_change_is_named_so_in_the_combined_summaries(
    start_emulator: Any, tmp_path: Path
) -> None:
    """dev's change made in the console between the apply's read and its write (every request to
    dev stalls 1.5 s): dev exits 4, and the combined summaries say it overwrote, not that it failed."""
    projects = Projects(start_emulator, tmp_path)
    dev = projects.dev.config
    dev.fault_rate, dev.fault_kinds, dev.slow_seconds, dev.slow_applies = 1.0, ("slow",), 1.5, "after"
    args = ["apply", "--report", "r/{target}.json", "--summary", "s.md"]
    apply = start_process(args, projects.env(), cwd=tmp_path)  # the console change comes while it runs
    deadline = time.monotonic() + 30
    while not any(r.path == "/v1/mgmt/accesskey/search" for r in projects.dev.recorded()):
        assert time.monotonic() < deadline and apply.poll() is None, "the apply never read dev's keys"
        time.sleep(0.01)
    console(projects.dev, "K1", "U2bob", description="set in the console meanwhile")
    stdout, _ = apply.communicate(timeout=60)

    assert apply.returncode == ExitCode.OVERWRITTEN, stdout
    assert "  dev   exit 4  overwrote a change by someone else" in stdout, stdout
    assert "| `dev` | 4 | **overwrote a change by someone else** |" in (tmp_path / "s.md").read_text()
    assert projects.names() == CONVERGED
