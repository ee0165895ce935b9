"""Policy as code, through the real command line (in-process: the process is not the point here)
against the real emulator: every built-in rule firing and not, custom rules, waivers, locations, SARIF
against the OASIS schema, apply's refusal (direct and saved plans), audit and `rotate --due`."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from reconcile.cli import main
from reconcile.emulator import Emulator
from reconcile.schemas.validators import POLICY_SCHEMA, is_valid, validator
from tests.conftest import CliResult, load_report
from tests.lifecycle import writes
from tests.test_hostile import HOSTILE, UNSAFE, assert_inert, assert_markdown_inert

SARIF_SCHEMA = json.loads((Path(__file__).parent / "data" / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))
DAY = 86_400
FUTURE, PAST = "2999-12-31", "2000-01-01"


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Any:
    """`cli(args, emulator=None, cwd=None)` → the command's exit code and output, as the real CLI gives them."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # the project lock
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)

    def run(args: Sequence[str], emulator: Emulator | None = None, cwd: Path | None = None) -> CliResult:
        for name in ("DESCOPE_PROJECT_ID", "DESCOPE_MANAGEMENT_KEY", "DESCOPE_BASE_URL"):
            monkeypatch.delenv(name, raising=False)
        if emulator is not None:
            monkeypatch.setenv("DESCOPE_PROJECT_ID", emulator.config.project_id)
            monkeypatch.setenv("DESCOPE_MANAGEMENT_KEY", emulator.config.management_key)
            monkeypatch.setenv("DESCOPE_BASE_URL", emulator.url)
        monkeypatch.chdir(cwd or tmp_path)
        code = main(list(args))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def write_yaml(path: Path, document: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def desired(folder: Path, keys: Sequence[Mapping[str, Any]], **more: Any) -> Path:
    return write_yaml(folder / "desired" / "keys.yaml", {"version": 1, **more, "keys": list(keys)})


def policy_file(folder: Path, rules: Mapping[str, Any] | None = None, custom: Sequence[Any] = ()) -> Path:
    section: dict[str, Any] = {"rules": dict(rules or {})}
    if custom:
        section["custom"] = list(custom)
    return write_yaml(folder / "policy.yaml", section)


def findings(result: CliResult) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = json.loads(result.stdout)
    return records


def in_days(days: int) -> int:
    return int(time.time()) + days * DAY


COMPLIANT = {
    "id": "KGOOD",
    "name": "ci-good",
    "description": "builds",
    "roleNames": ["viewer"],
    "permittedIps": ["10.1.0.0/16"],
    "customAttributes": {"owner": "platform"},
    "expireTime": in_days(30),
}
# rule → (its settings, a key breaking it, the field the finding names, a word of its message)
RULES: dict[str, tuple[Any, dict[str, Any], str, str]] = {
    "expiry-required": (True, {"expireTime": 0}, "keys[0].expireTime", "never expires"),
    "max-lifetime": ({"days": 90}, {"expireTime": in_days(400)}, "keys[0].expireTime", "allows 90"),
    "permitted-ips-required": (True, {"permittedIps": []}, "keys[0].permittedIps", "any address"),
    "forbidden-ips": (True, {"permittedIps": ["10.1.0.0/16", "::/0"]}, "keys[0].permittedIps[1]", "`::/0` is"),
    "allowed-ips": (
        {"ranges": ["10.0.0.0/8"]},
        {"permittedIps": ["192.168.1.7"]},
        "keys[0].permittedIps[0]",
        "outside",
    ),
    "allowed-roles": ({"project": ["viewer"]}, {"roleNames": ["viewer", "admin"]}, "keys[0].roleNames[1]", "`admin`"),
    "forbidden-roles": ({"project": ["admin"]}, {"roleNames": ["admin"]}, "keys[0].roleNames[0]", "forbidden"),
    "tenant-scoped-only": (True, {}, "keys[0].roleNames", "project-level"),
    "required-attributes": ({"names": ["owner"]}, {"customAttributes": {}}, "keys[0].customAttributes", "`owner`"),
    "name-pattern": ({"pattern": "ci-[a-z]+"}, {"name": "CI_Bad"}, "keys[0].name", "does not match"),
    "description-required": (True, {"description": " "}, "keys[0].description", "no description"),
}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_each_builtin_rule_fires_on_the_key_that_breaks_it_only(cli: Any, tmp_path: Path, rule: str) -> None:
    settings, breaking, field, words = RULES[rule]
    bad = {**COMPLIANT, "id": "KBAD", "name": "ci-bad", **breaking}
    if rule == "tenant-scoped-only":  # the compliant key gives its roles per tenant
        good = {**COMPLIANT, "roleNames": [], "keyTenants": [{"tenantId": "T1", "roleNames": ["viewer"]}]}
    else:
        good = COMPLIANT
    folder = desired(tmp_path, [bad, good])
    policy = policy_file(tmp_path, {rule: settings})
    result = cli(["validate", "--policy", str(policy), "--format", "json", str(folder)])
    [found] = findings(result)
    assert result.code == 1, result.output
    assert (found["rule"], found["key"], found["severity"], found["field"]) == (rule, "KBAD", "error", field)
    assert words in found["message"]
    only_good = desired(tmp_path, [good])
    assert cli(["validate", "--policy", str(policy), "--format", "json", str(only_good)]).stdout.strip() == "[]"


def test_roles_per_tenant_and_a_warning_does_not_fail(cli: Any, tmp_path: Path) -> None:
    tenants = [
        {"tenantId": "T1", "roleNames": ["reader", "admin"]},
        {"tenantId": "T2", "roleNames": ["writer"]},
    ]
    folder = desired(tmp_path, [{"id": "K1", "keyTenants": tenants}])
    rules = {
        "allowed-roles": {"severity": "warning", "tenants": {"T1": ["reader", "admin"], "*": ["reader"]}},
        "forbidden-roles": {"severity": "warning", "tenants": {"*": ["admin"]}},
    }
    result = cli(["validate", "--policy", str(policy_file(tmp_path, rules)), "--format", "json", str(folder)])
    assert result.code == 0  # warnings only
    assert sorted((f["rule"], f["field"]) for f in findings(result)) == [
        ("allowed-roles", "keys[0].keyTenants[1].roleNames[0]"),
        ("forbidden-roles", "keys[0].keyTenants[0].roleNames[1]"),
    ]


def test_a_custom_rule_is_a_json_schema_each_key_must_satisfy(cli: Any, tmp_path: Path) -> None:
    custom = {
        "id": "ticket-attribute",
        "description": "every key names its ticket",
        "schema": {
            "type": "object",
            "required": ["customAttributes"],
            "properties": {"customAttributes": {"required": ["ticket"], "properties": {"ticket": {"type": "integer"}}}},
        },
    }
    keys = [
        {"id": "K1", "customAttributes": {"ticket": 4821}},
        {"id": "K2", "customAttributes": {"ticket": "none"}},
        {"id": "K3"},
    ]
    result = cli(
        [
            "validate",
            "--policy",
            str(policy_file(tmp_path, custom=[custom])),
            "--format",
            "json",
            str(desired(tmp_path, keys)),
        ]
    )
    assert result.code == 1
    found = {f["key"]: f for f in findings(result)}
    assert sorted(found) == ["K2", "K3"] and {f["rule"] for f in found.values()} == {"ticket-attribute"}
    assert found["K2"]["field"] == "keys[1].customAttributes.ticket"
    assert found["K2"]["message"].startswith("every key names its ticket: 'none' is not of type 'integer'")


def test_waivers_valid_expired_and_stale(cli: Any, tmp_path: Path) -> None:
    keys = [
        {"id": "K1", "waivers": [{"rule": "description-required", "reason": "legacy, SEC-12", "until": FUTURE}]},
        {"id": "K2", "waivers": [{"rule": "description-required", "reason": "SEC-13", "until": PAST}]},
        {
            "id": "K3",
            "description": "ok",
            "waivers": [
                {"rule": "description-required", "reason": "x", "until": FUTURE},
                {"rule": "descripton-required", "reason": "a typo", "until": FUTURE},
            ],
        },
    ]
    policy = policy_file(tmp_path, {"description-required": True})
    result = cli(["validate", "--policy", str(policy), "--format", "json", str(desired(tmp_path, keys))])
    assert result.code == 1  # K2: its waiver expired, so the rule fires, and the expired waiver is an error itself
    got = sorted((f["key"], f["rule"], f["severity"], f.get("waived", ""), f["field"]) for f in findings(result))
    assert got == [
        ("K1", "description-required", "error", "legacy, SEC-12", "keys[0].description"),
        ("K2", "description-required", "error", "", "keys[1].description"),
        ("K2", "waiver-expired", "error", "", "keys[1].waivers[0]"),
        ("K3", "waiver-unused", "warning", "", "keys[2].waivers[0]"),
        ("K3", "waiver-unused", "warning", "", "keys[2].waivers[1]"),
    ]
    unused = [f["message"] for f in findings(result) if f["rule"] == "waiver-unused"]
    assert sorted(message.split(": ", 1)[1] for message in unused) == [
        "the policy has no such rule; remove it",
        "the rule does not fire on this key; remove it",
    ]
    valid_only = desired(tmp_path, keys[:1] + keys[2:])
    assert cli(["validate", "--policy", str(policy), str(valid_only)]).code == 0  # waived; stale only warns


def test_a_waiver_needs_a_reason_and_a_real_day_and_stays_beside_its_key(cli: Any, tmp_path: Path) -> None:
    keys = [
        {"id": "K1", "waivers": [{"rule": "description-required", "until": FUTURE}]},
        {"id": "K2", "waivers": [{"rule": "description-required", "reason": "r", "until": "2030-02-30"}]},
    ]
    folder = desired(tmp_path, keys, defaults={"waivers": [{"rule": "x", "reason": "r", "until": FUTURE}]})
    result = cli(["validate", str(folder)])
    assert result.code == 1
    assert "'reason' is required [keys[0].waivers[0]]" in result.stderr
    assert "`2030-02-30` is not a day of the calendar" in result.stderr
    assert "`defaults` cannot set `waivers`: each key states its own" in result.stderr


def test_a_violation_is_located_at_file_line_and_column(cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "desired" / "ci.yaml"
    path.parent.mkdir()
    path.write_text(
        "version: 1\n"
        "defaults:\n"
        "  permittedIps: [0.0.0.0/0]\n"
        "keys:\n"
        "  - id: K1\n"
        "    name: a\n"
        "    permittedIps:\n"
        "      - 10.0.0.0/8\n"
        "      - 0.0.0.0/0\n"
        "  - id: K2\n",
        encoding="utf-8",
    )
    policy = policy_file(tmp_path, {"forbidden-ips": True})
    result = cli(["validate", "--policy", str(policy), str(path.parent)])
    assert result.code == 1
    assert result.stderr.splitlines()[:2] == [
        f"{path.parent}/ci.yaml:3:18: error[forbidden-ips]: key K2: `0.0.0.0/0` is the forbidden range "
        "`0.0.0.0/0`: list narrower addresses in `permittedIps` [defaults.permittedIps[0]]",
        f"{path.parent}/ci.yaml:9:9: error[forbidden-ips]: key K1: `0.0.0.0/0` is the forbidden range "
        "`0.0.0.0/0`: list narrower addresses in `permittedIps` [keys[0].permittedIps[1]]",
    ]
    github = cli(["validate", "--policy", str(policy), "--format", "github", str(path.parent)])
    assert f"::error file={path.parent}/ci.yaml,line=9,col=9,title=forbidden-ips::key K1: " in github.stdout


def test_sarif_is_valid_sarif_2_1_0_with_rules_levels_and_suppressions(cli: Any, tmp_path: Path) -> None:
    keys = [
        {"id": "K1", "name": "ci"},
        {"id": "K2", "name": "x", "waivers": [{"rule": "name-pattern", "reason": "legacy", "until": FUTURE}]},
    ]
    rules = {"description-required": {"severity": "warning"}, "name-pattern": {"pattern": "ci(-.*)?"}}
    result = cli(
        ["validate", "--policy", str(policy_file(tmp_path, rules)), "--format", "sarif", str(desired(tmp_path, keys))]
    )
    log = json.loads(result.stdout)
    jsonschema.validate(log, SARIF_SCHEMA)
    assert result.code == 0  # a warning, and a waived error
    [run] = log["runs"]
    rules_meta = {rule["id"]: rule for rule in run["tool"]["driver"]["rules"]}
    assert rules_meta["description-required"]["defaultConfiguration"]["level"] == "warning"
    assert rules_meta["name-pattern"]["help"]["text"].startswith("Rename the key")
    by_key = {(r["ruleId"], r["locations"][0]["logicalLocations"][0]["name"]): r for r in run["results"]}
    assert sorted(by_key) == [("description-required", "K1"), ("description-required", "K2"), ("name-pattern", "K2")]
    waived = by_key["name-pattern", "K2"]
    assert waived["level"] == "error" and waived["suppressions"] == [
        {"kind": "inSource", "status": "accepted", "justification": "legacy"}
    ]
    assert run["tool"]["driver"]["rules"][waived["ruleIndex"]]["id"] == "name-pattern"
    region = waived["locations"][0]["physicalLocation"]
    assert region["artifactLocation"]["uri"].endswith("desired/keys.yaml") and region["region"]["startLine"] == 6
    invalid = cli(["validate", "--format", "sarif", str(desired(tmp_path, [{"id": "K1", "roleNames": "x"}]))])
    assert invalid.code == 1
    jsonschema.validate(json.loads(invalid.stdout), SARIF_SCHEMA)
    assert json.loads(invalid.stdout)["runs"][0]["results"][0]["ruleId"] == "invalid-desired-file"


def test_policy_errors_are_located_like_the_config(cli: Any, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "rules:\n  name-pattern: {pattern: 'ci-['}\n  allowed-ips: {ranges: [10.0.0.0/8, nowhere]}\n"
        "  expiry-requird: true\ncustom:\n  - {id: expiry-required, description: d, schema: {type: 3}}\n",
        encoding="utf-8",
    )
    result = cli(["validate", "--policy", str(policy), str(desired(tmp_path, [{"id": "K1"}]))])
    assert result.code == 1
    assert f"{policy}:4:3: error: unknown field `expiry-requird`: did you mean `expiry-required`?" in result.stderr
    policy.write_text(
        "rules:\n  name-pattern: {pattern: 'ci-['}\n  allowed-ips: {ranges: [10.0.0.0/8, nowhere]}\n"
        "custom:\n  - {id: expiry-required, description: d, schema: {type: 3}}\n",
        encoding="utf-8",
    )
    lines = cli(["validate", "--policy", str(policy), str(desired(tmp_path, [{"id": "K1"}]))]).stderr.splitlines()
    assert lines[0].startswith(f"{policy}:2:27: error: not a regular expression")
    nowhere = "error: `nowhere` is not an IP address or CIDR range [rules['allowed-ips'].ranges[1]]"
    assert lines[1] == f"{policy}:3:38: {nowhere}"
    assert lines[2].startswith(f"{policy}:5:10: error: rule id `expiry-required` is already taken")
    assert lines[3].startswith(f"{policy}:5:51: error: not a JSON Schema (draft 2020-12)")


def test_the_config_policy_for_every_target_with_a_per_target_override(cli: Any, tmp_path: Path) -> None:
    desired(tmp_path / "prod", [{"id": "K1", "name": "x"}])
    desired(tmp_path / "dev", [{"id": "K2", "name": "y"}])
    config = {
        "version": 1,
        "policy": {"rules": {"description-required": True, "name-pattern": {"pattern": "ci-.*"}}},
        "targets": {
            "prod": {"projectId": "P1", "managementKeyEnv": "K", "paths": ["prod/desired"]},
            "dev": {
                "projectId": "P2",
                "managementKeyEnv": "K",
                "paths": ["dev/desired"],
                "policy": {
                    "rules": {"description-required": False, "name-pattern": {"severity": "warning", "pattern": "y"}}
                },
            },
        },
    }
    write_yaml(tmp_path / "descope-reconcile.yaml", config)
    result = cli(["validate", "--format", "json"])
    assert result.code == 1
    got = sorted((f["target"], f["key"], f["rule"], f["severity"]) for f in json.loads(result.stdout))
    assert got == [("prod", "K1", "description-required", "error"), ("prod", "K1", "name-pattern", "error")]
    sarif = cli(["validate", "--format", "sarif"])
    log = json.loads(sarif.stdout)
    jsonschema.validate(log, SARIF_SCHEMA)
    assert [run["automationDetails"]["id"] for run in log["runs"]] == [
        "descope-reconcile/prod/",
        "descope-reconcile/dev/",
    ]
    assert cli(["validate", "--policy", "p.yaml"]).code == 64  # the config says the policy
    config["targets"]["dev"]["policy"] = {"rules": {"allowed-ips": {"ranges": ["bad"]}}}
    write_yaml(tmp_path / "descope-reconcile.yaml", config)
    broken = cli(["validate"])
    assert (
        broken.code == 1
        and "descope-reconcile.yaml:22:13: error: `bad` is not an IP" in broken.stderr
        and "`bad` is not an IP" in broken.stderr
    )


SEEDED = [
    {"id": "K1", "name": "ci", "permittedIps": ["10.0.0.0/8"]},
    {"id": "K2", "name": "old", "permittedIps": ["0.0.0.0/0"]},  # already in violation
]


def _keys(changed_ips: list[str], waived: bool = False) -> list[dict[str, Any]]:
    first: dict[str, Any] = {"id": "K1", "name": "ci", "description": "now described", "permittedIps": changed_ips}
    if waived:
        first["waivers"] = [{"rule": "forbidden-ips", "reason": "migration, SEC-7", "until": FUTURE}]
    return [first, {"id": "K2", "name": "old", "description": "described", "permittedIps": ["0.0.0.0/0"]}]


def test_apply_refuses_a_change_that_introduces_an_error_and_allows_a_waived_one(
    cli: Any, start_emulator: Any, tmp_path: Path
) -> None:
    emulator = start_emulator(SEEDED)
    policy = str(policy_file(tmp_path, {"forbidden-ips": True}))
    folder = str(desired(tmp_path, _keys(["0.0.0.0/0"])).parent)
    planned = cli(["plan", "--policy", policy, folder], emulator)
    assert planned.code == 2 and "apply would refuse this plan (exit 1): policy:" in planned.stdout
    assert "error[forbidden-ips]: key K1: `0.0.0.0/0` is the forbidden range" in planned.stdout
    assert "(introduced)" in planned.stdout and "key K2: `0.0.0.0/0` is the forbidden range" in planned.stdout
    refused = cli(["apply", "--policy", policy, "--report", str(tmp_path / "r.json"), folder], emulator)
    assert refused.code == 1 and "would introduce error-level violations (K1)" in refused.stderr
    assert writes(emulator) == []
    section = load_report(tmp_path / "r.json")["policy"]  # the report says why, against its schema
    assert section["refused"] is True and section["counts"] == {"forbidden-ips": {"error": 2}}
    assert sorted((v["key"], v["status"]) for v in section["violations"]) == [("K1", "introduced"), ("K2", "existing")]
    # K2, already in violation and changed only in its description, is reported, never blocked:
    folder = str(desired(tmp_path, _keys(["10.0.0.0/8"])).parent)
    done = cli(["apply", "--policy", policy, folder], emulator)
    assert done.code == 0, done.output
    assert "key K2: `0.0.0.0/0` is the forbidden range" in done.stdout and "(existing)" in done.stdout
    folder = str(desired(tmp_path, _keys(["0.0.0.0/0"], waived=True)).parent)
    waived = cli(["apply", "--policy", policy, folder], emulator)
    assert waived.code == 0, waived.output
    assert "waived[forbidden-ips]: key K1" in waived.stdout
    sent = [r.body for r in writes(emulator) if r.path.endswith("/update")]
    assert sent[-1]["permittedIps"] == ["0.0.0.0/0"] and not any("waivers" in body for body in sent)


def test_a_saved_plan_is_refused_or_applied_as_direct_apply_decides(
    cli: Any, start_emulator: Any, tmp_path: Path
) -> None:
    emulator = start_emulator(SEEDED)
    policy = str(policy_file(tmp_path, {"forbidden-ips": True}))
    saved = str(tmp_path / "plan.json")
    folder = str(desired(tmp_path, _keys(["0.0.0.0/0"])).parent)
    assert cli(["plan", "--policy", policy, "--out", saved, folder], emulator).code == 2
    refused = cli(["apply", "--policy", policy, "--plan", saved], emulator)
    assert refused.code == 1 and "would introduce error-level violations (K1)" in refused.stderr
    assert writes(emulator) == []
    folder = str(desired(tmp_path, _keys(["0.0.0.0/0"], waived=True)).parent)
    assert cli(["plan", "--policy", policy, "--out", saved, folder], emulator).code == 2
    assert (
        json.loads(Path(saved).read_text(encoding="utf-8"))["changes"][0]["waivers"][0]["reason"] == "migration, SEC-7"
    )
    applied = cli(["apply", "--policy", policy, "--plan", saved], emulator)
    assert applied.code == 0, applied.output
    assert next(r.body["permittedIps"] for r in writes(emulator) if r.path.endswith("/update")) == ["0.0.0.0/0"]


def test_audit_evaluates_the_live_project_unmanaged_keys_included(
    cli: Any, start_emulator: Any, tmp_path: Path
) -> None:
    old = int(time.time()) - 200 * DAY
    emulator = start_emulator(
        [
            {"id": "K1", "name": "ci", "description": "d", "permittedIps": ["10.0.0.0/8"], "createdTime": old},
            {"id": "U1", "name": "stray", "permittedIps": ["0.0.0.0/0"]},
            {"id": "U2", "name": "stray2", "description": "d", "permittedIps": []},
        ]
    )
    rules = {"forbidden-ips": True, "description-required": {"severity": "warning"}, "max-key-age": {"days": 90}}
    policy = str(policy_file(tmp_path, rules))
    folder = str(desired(tmp_path, [{"id": "K1", "name": "ci"}]).parent)
    out, sarif = tmp_path / "audit.json", tmp_path / "audit.sarif"
    result = cli(
        [
            "audit",
            "--policy",
            policy,
            "--out",
            str(out),
            "--sarif",
            str(sarif),
            "--summary",
            str(tmp_path / "s.md"),
            folder,
        ],
        emulator,
    )
    assert result.code == 0, result.output  # --fail-on none by default
    section = json.loads(out.read_text(encoding="utf-8"))["policy"]
    assert section["counts"] == {
        "description-required": {"warning": 1},
        "forbidden-ips": {"error": 1},
        "max-key-age": {"error": 1},
    }
    assert sorted((v["key"], v["rule"]) for v in section["violations"]) == [
        ("K1", "max-key-age"),
        ("U1", "description-required"),
        ("U1", "forbidden-ips"),
    ]
    assert "| `forbidden-ips` | 1 | 0 | 0 |" in result.stdout
    log = json.loads(sarif.read_text(encoding="utf-8"))
    jsonschema.validate(log, SARIF_SCHEMA)
    assert {r["ruleId"] for r in log["runs"][0]["results"]} == {"max-key-age", "forbidden-ips", "description-required"}
    assert cli(["audit", "--policy", policy, "--fail-on", "error", folder], emulator).code == 1
    only_warnings = str(policy_file(tmp_path, {"description-required": {"severity": "warning"}}))
    assert cli(["audit", "--policy", only_warnings, "--fail-on", "error", folder], emulator).code == 0
    assert cli(["audit", "--policy", only_warnings, "--fail-on", "error,warning", folder], emulator).code == 1


def test_rotate_due_rotates_exactly_the_keys_past_the_age(cli: Any, start_emulator: Any, tmp_path: Path) -> None:
    now = int(time.time())
    emulator = start_emulator(
        [
            {"id": "K1", "name": "oldest", "createdTime": now - 300 * DAY},
            {"id": "K2", "name": "old", "createdTime": now - 120 * DAY},
            {"id": "K3", "name": "young", "createdTime": now - 10 * DAY},
            {"id": "K4", "name": "old-inactive", "createdTime": now - 300 * DAY, "status": "inactive"},
            {"id": "K5", "name": "old-rotated", "createdTime": now - 300 * DAY},
        ]
    )
    journal = tmp_path / "rotations.jsonl"
    rotated_at = (datetime.now(UTC) - timedelta(days=5)).isoformat()
    journal.write_text(
        json.dumps({"type": "secret", "event": "delivered", "op": "rotate", "id": "K5", "at": rotated_at}) + "\n",
        encoding="utf-8",
    )
    policy = str(policy_file(tmp_path, {"max-key-age": {"days": 90}}))
    base = ["rotate", "--due", "--policy", policy, "--journal", str(journal), "--secrets-out", str(tmp_path / "s")]
    assert cli(["rotate", "--due"], emulator).code == 64  # no policy with max-key-age
    first = cli([*base, "--max-keys", "1"], emulator)
    assert first.code == 0, first.output
    assert "2 key(s) past the rotation age of 90 days; 1 left for the next run (--max-keys 1)" in first.stdout
    assert [r.body for r in writes(emulator)] == [{"id": "K1"}]  # the oldest first
    second = cli(base, emulator)  # K1's rotation is in the journal now: only K2 is left
    assert second.code == 0, second.output
    assert [r.body for r in writes(emulator)] == [{"id": "K1"}, {"id": "K2"}]
    assert cli(base, emulator).code == 0 and len(writes(emulator)) == 2  # nothing due any more


@pytest.mark.parametrize(
    "section",
    [
        {},
        {"rules": {"expiry-required": True, "max-lifetime": {"days": 365}, "forbidden-ips": {}}},
        {"rules": {"max-lifetime": {"days": 0}}},
        {"rules": {"max-lifetime": True}},
        {"rules": {"name-pattern": False, "allowed-roles": {"tenants": {"*": ["a"]}}}},
        {"rules": {"allowed-roles": {}}},
        {"rules": {"description-required": {"severity": "info"}}},
        {"rules": {"nope": True}},
        {"custom": [{"id": "a-b", "description": "d", "schema": True}]},
        {"custom": [{"id": "A", "description": "d", "schema": {}}]},
        {"custom": [{"id": "a\n", "description": "d", "schema": {}}]},
        {"custom": [{"id": "a", "description": "d"}]},
        [],
    ],
)
def test_the_compiled_policy_check_agrees_with_jsonschema(section: Any) -> None:
    assert is_valid(POLICY_SCHEMA, section) == validator(POLICY_SCHEMA).is_valid(section)


def test_hostile_names_stay_text_in_every_policy_output(cli: Any, start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator([{"id": "U1", "name": HOSTILE, "description": HOSTILE}])
    rules = {"name-pattern": {"pattern": "[a-z]+"}, "required-attributes": {"names": ["owner"]}}
    policy = str(policy_file(tmp_path, rules))
    sarif = tmp_path / "audit.sarif"
    audited = cli(["audit", "--policy", policy, "--sarif", str(sarif)], emulator)
    assert audited.code == 0 and "name-pattern" in audited.stdout
    assert_markdown_inert(audited.stdout, "audit stdout", stream=True)
    assert_inert(audited.stderr, "audit stderr")
    text = sarif.read_text(encoding="utf-8")
    assert UNSAFE.search(text) is None  # every control a JSON escape
    assert HOSTILE in json.loads(text)["runs"][0]["results"][0]["message"]["text"]  # the data, exactly
    # In a desired file a name may hold no C0 control, but bidi overrides, separators and commands:
    named = HOSTILE.replace("\u001b", "").replace("\r", "").replace("\n", " ").replace("\x7f", "")
    folder = str(desired(tmp_path, [{"id": "K1", "name": named}]).parent)
    for output_format in ("text", "github"):
        result = cli(["validate", "--policy", policy, "--format", output_format, folder])
        assert result.code == 1
        assert_inert(result.stderr, f"validate --format {output_format} stderr")
        for line in result.stdout.splitlines():
            assert line.startswith("::error file=") and UNSAFE.search(line) is None and "\n::" not in line, line
