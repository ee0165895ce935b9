"""Issue 21: the real API's dialect (tier handshake and header, identification, the apply event's
tenant, audit windows, declared custom attributes, any JSON in the claim and attribute maps) against
the emulator in its real-wire defaults, and `doctor`, each check passing and failing."""

from __future__ import annotations

import asyncio
import json
import platform
import threading
import time
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest

from reconcile import __version__
from reconcile.client.descope import Credentials, DescopeClient, License
from reconcile.emulator.answers import Answer
from reconcile.emulator.attributes import AttributeSchema, Declared, parse_declared
from reconcile.emulator.config import Window
from reconcile.emulator.server import Call
from reconcile.errors import RateLimitedError
from reconcile.job.doctor import DoctorOptions, Result, Status, clock_check, region_check, run, tls_check
from reconcile.job.tenant import event_tenant, unclaimed_caveat
from reconcile.job.trail import WINDOW_MARGIN_MS, search_window
from reconcile.model import DesiredKey, SourceLocation, normalize_field
from reconcile.plan.diff import KeyPlan, Outcome
from tests.conftest import cli_env, load_report, run_cli, write_desired
from tests.support import http

DAY_MS = 24 * 3600 * 1000
SEARCH = "/v1/mgmt/accesskey/search"


def client_for(emulator: Any, key: str | None = None) -> DescopeClient:
    return DescopeClient(
        Credentials(emulator.config.project_id, key or emulator.config.management_key), emulator.url, timeout=5
    )


def spy_headers(emulator: Any) -> list[tuple[str, dict[str, str]]]:
    seen: list[tuple[str, dict[str, str]]] = []

    def spy(call: Call) -> Answer:
        seen.append((call.path, dict(call.headers)))
        return call.forward()

    emulator.intercept("/v1/*", spy)
    return seen


# --- the tier handshake, its header, identification ------------------------------------------------
def test_the_handshake_runs_once_and_every_request_carries_the_tier_and_names_the_tool(start_emulator: Any) -> None:
    emulator = start_emulator([{"id": "K1", "name": "a"}])
    seen = spy_headers(emulator)

    async def go() -> License | None:
        async with client_for(emulator) as client:
            await asyncio.gather(client.search_access_keys(), client.load_access_key("K1"), client.search_access_keys())
            return client.license

    found = asyncio.run(go())
    assert found is not None and found.tier == "tier4" and found.problem is None and found.date
    assert emulator.handshakes == [""], "one handshake per client, itself without the header"
    calls = [headers for path, headers in seen if path != "/v1/mgmt/license"]
    assert len(calls) == 3 and all(h["x-descope-license"] == "tier4" for h in calls)
    for headers in calls:
        assert headers["x-descope-sdk-name"] == "descope-reconcile" and headers["x-descope-sdk-version"] == __version__
        assert headers["x-descope-sdk-python-version"] == platform.python_version()
        assert headers["user-agent"] == f"descope-reconcile/{__version__}"
    assert emulator.stats()["throttled"]["total"] == 0


@pytest.mark.parametrize("shape", ["refused", "empty"])
def test_a_failed_handshake_is_a_warning_and_requests_go_unlabelled_into_the_lowest_bucket(
    start_emulator: Any, tmp_path: Path, shape: str
) -> None:
    emulator = start_emulator([{"id": "K1", "name": "a"}], license_shape=shape, unlabelled_window=Window(1, 60.0, 60.0))
    desired = write_desired(tmp_path / "d", [{"id": "K1", "name": "a"}])
    plan = run_cli(["plan", str(desired), "--no-attribution"], cli_env(emulator))
    assert plan.code == 0, plan.output  # never fatal
    assert "warning: rate-limit tier unknown" in plan.stderr and "lowest rate-limit bucket" in plan.stderr
    assert plan.stderr.count("rate-limit tier unknown") == 1
    # the lowest bucket: one request without the tier a minute here, then 429s

    async def search() -> None:
        async with client_for(emulator) as client:
            await client.search_access_keys()

    with pytest.raises(RateLimitedError):
        asyncio.run(search())
    assert emulator.stats()["throttled"]["unlabelled"] == 1 and emulator.handshakes == ["", ""]


def test_the_emulator_gives_requests_without_the_tier_a_far_lower_bucket(start_emulator: Any) -> None:
    emulator = start_emulator([], unlabelled_window=Window(3, 60.0, 60.0))
    auth = {"Authorization": emulator.auth_header}
    tier = http.get(emulator.url + "/v1/mgmt/license", headers=auth).json()
    assert tier == {"rateLimitTier": "tier4"}
    labelled = {**auth, "x-descope-license": "tier4"}
    assert all(http.post(emulator.url + SEARCH, json={}, headers=labelled).status_code == 200 for _ in range(10))
    unlabelled = [http.post(emulator.url + SEARCH, json={}, headers=auth).status_code for _ in range(4)]
    assert unlabelled == [200, 200, 200, 429]
    wrong = http.post(emulator.url + SEARCH, json={}, headers={**auth, "x-descope-license": "tier1"})
    assert wrong.status_code == 429, "a tier the license did not name is no tier"


# --- the apply event's tenant -----------------------------------------------------------------------
def _planned(key_id: str, tenants: list[str]) -> KeyPlan:
    fields = {"name": key_id, "keyTenants": [{"tenantId": t, "roleNames": []} for t in tenants]}
    return KeyPlan(DesiredKey(key_id, fields, SourceLocation("k.yaml", 1)), Outcome.UPDATE, "", key_id)


def test_the_event_tenant_is_the_setting_else_a_tenant_of_the_changed_keys_else_none() -> None:
    assert event_tenant("T9", [_planned("K1", ["T1"])]).tenant == "T9"
    assert event_tenant("T9", []).notice is None
    derived = event_tenant(None, [_planned("K1", ["T2", "T1"])])
    assert derived.tenant == "T1" and derived.notice is not None and "auditTenant" in derived.notice
    assert event_tenant(None, [_planned("K1", [])], [_planned("K2", ["T3"])]).tenant == "T3"
    none = event_tenant(None, [_planned("K1", [])])
    assert none.tenant is None and none.notice is not None and "not written" in none.notice
    assert unclaimed_caveat(None, [_planned("K1", [])]) is not None
    assert (
        unclaimed_caveat("T9", [_planned("K1", [])]) is None and unclaimed_caveat(None, [_planned("K1", ["T"])]) is None
    )


def _events(emulator: Any) -> list[dict[str, Any]]:
    return [r for r in emulator.audit.all(occurred_as_string=False) if r["action"] == "DescopeReconcileApply"]


def test_an_apply_without_a_tenant_takes_one_of_the_changed_keys_and_says_how_to_set_it(
    start_emulator: Any, tmp_path: Path
) -> None:
    emulator = start_emulator([{"id": "K1", "name": "old", "keyTenants": [{"tenantId": "T1", "roleNames": []}]}])
    desired = write_desired(tmp_path / "d", [{"id": "K1", "name": "new"}])
    apply = run_cli(["apply", str(desired)], cli_env(emulator))
    assert apply.code == 0, apply.output
    [event] = _events(emulator)
    assert event["tenants"] == ["T1"]
    assert apply.stderr.count("auditTenant") == 1 and "recorded under tenant T1" in apply.stderr


def test_an_apply_with_no_tenant_anywhere_writes_no_event_and_attribution_does_not_call_its_change_a_hand_edit(
    start_emulator: Any, tmp_path: Path
) -> None:
    emulator = start_emulator([{"id": "K1", "name": "old"}])
    desired = write_desired(tmp_path / "d", [{"id": "K1", "name": "new"}])
    env = cli_env(emulator)
    apply = run_cli(["apply", str(desired)], env)
    assert apply.code == 0, apply.output  # a warning, never a failure
    assert _events(emulator) == [] and not [r for r in emulator.recorded() if r.path == "/v1/mgmt/audit/event"]
    assert apply.stderr.count("auditTenant") == 1 and "the apply event is not written" in apply.stderr
    # the tool's own change, seen by the next plan: not "not this tool" without a caveat
    drifted = write_desired(tmp_path / "e", [{"id": "K1", "name": "newer"}])
    plan = run_cli(["plan", str(drifted), "--report", str(tmp_path / "r.json")], env)
    assert plan.code == 2, plan.output
    trail = load_report(tmp_path / "r.json")["trail"]["attribution"]
    assert trail["status"] == "partial" and "may be its own" in trail["reason"] and "auditTenant" in trail["reason"]
    assert "attribution partial" in plan.stdout
    # with the setting, the next apply writes its event under it
    assert run_cli(["apply", str(drifted), "--audit-tenant", "T9"], env).code == 0
    assert [e["tenants"] for e in _events(emulator)] == [["T9"]]


# --- audit windows ----------------------------------------------------------------------------------
def test_audit_windows_start_inside_30_days_and_never_end_in_the_future(start_emulator: Any, tmp_path: Path) -> None:
    now = 10**13
    assert search_window(None, now) == (now - 30 * DAY_MS + WINDOW_MARGIN_MS, now)
    assert search_window(now - 31 * DAY_MS, now)[0] == now - 30 * DAY_MS + WINDOW_MARGIN_MS
    assert search_window(now - 5, now) == (now - 5, now)
    emulator = start_emulator([{"id": "K1", "name": "old", "keyTenants": [{"tenantId": "T1", "roleNames": []}]}])
    desired = write_desired(tmp_path / "d", [{"id": "K1", "name": "new"}])
    assert run_cli(["apply", str(desired)], cli_env(emulator)).code == 0
    searches = [r for r in emulator.recorded() if r.path == "/v1/mgmt/audit/search"]
    assert len(searches) == 2  # attribution, then the overwritten check
    for request in searches:
        sent = request.at * 1000
        assert request.body["to"] <= sent, "to is never in the future"
        assert request.body["from"] >= sent - 30 * DAY_MS + WINDOW_MARGIN_MS - 60_000, "from stays inside 30 days"


# --- declared custom attributes ---------------------------------------------------------------------
ATTRIBUTES = [
    {"name": "team", "displayName": "Team", "type": "string"},
    {"name": "level", "type": "singleselect", "options": [{"label": "gold", "value": "gold"}, "silver"]},
    {"name": "score", "type": "number"},
]


def _declared_emulator(start_emulator: Any, keys: list[dict[str, Any]], **config: Any) -> Any:
    emulator = start_emulator(keys, **config)
    for raw in ATTRIBUTES:
        emulator.attributes.declare(parse_declared(raw))
    return emulator


def test_the_declarations_a_run_needs_are_read_at_once_not_one_round_trip_after_another(
    start_emulator: Any, tmp_path: Path
) -> None:
    """Each lookup is a round trip before the first write: they are in flight together (as many as
    the run has connections: a plan's two). The server answers neither until both have arrived; one
    after another, the first would never be answered."""
    emulator = _declared_emulator(start_emulator, [{"id": "K1", "name": "a"}])
    together = threading.Barrier(2, timeout=20)

    def hold(call: Call) -> Answer:
        together.wait()
        return call.forward()

    emulator.intercept("/v1/mgmt/accesskey/attribute", hold)
    attributes = {"team": "x", "level": "gold"}
    desired = write_desired(tmp_path / "d", [{"id": "K1", "name": "a", "customAttributes": attributes}])
    result = run_cli(["plan", str(desired.parent)], cli_env(emulator))
    assert result.code == 2, result.output  # the attributes to add: nothing refused
    assert [r.path for r in emulator.recorded()].count("/v1/mgmt/accesskey/attribute") == 2


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_the_declarations_are_read_beside_the_search_not_after_it(
    command: str, start_emulator: Any, tmp_path: Path
) -> None:
    """The desired names are known before the project is read: their lookups go out with the
    search (one round trip before the first write, not two). The server answers the search only
    once a lookup has arrived; read after it, no lookup would ever come."""
    emulator = _declared_emulator(start_emulator, [{"id": "K1", "name": "a", "customAttributes": {"team": "x"}}])
    looked_up = threading.Event()

    def note(call: Call) -> Answer:
        looked_up.set()
        return call.forward()

    def search(call: Call) -> Answer:
        assert looked_up.wait(timeout=20), "the search was sent alone"
        return call.forward()

    emulator.intercept("/v1/mgmt/accesskey/attribute", note)
    emulator.intercept("/v1/mgmt/accesskey/search", search)
    desired = write_desired(tmp_path / "d", [{"id": "K1", "name": "b", "customAttributes": {"team": "y"}}])
    result = run_cli([command, str(desired.parent)], cli_env(emulator))
    assert result.code == (2 if command == "plan" else 0), result.output
    paths = [r.path for r in emulator.recorded()]
    assert paths.count("/v1/mgmt/accesskey/attribute") == 1  # `team`: held by a key too, so no probe
    assert paths.count("/v1/mgmt/accesskey/search") == 1


def test_a_search_that_fails_leaves_no_lookup_behind(start_emulator: Any, tmp_path: Path) -> None:
    """The lookups in flight beside a search that fails are cancelled: the run ends with the
    search's error, nothing written, and no task left pending."""
    emulator = _declared_emulator(start_emulator, [{"id": "K1", "name": "a"}])
    release = threading.Event()

    def slow(call: Call) -> Answer:
        release.wait(timeout=20)
        return call.forward()

    emulator.intercept("/v1/mgmt/accesskey/attribute", slow)
    emulator.intercept("/v1/mgmt/accesskey/search", lambda call: Answer(200, {"keys": "not a list"}))
    desired = write_desired(tmp_path / "d", [{"id": "K1", "name": "b", "customAttributes": {"team": "y"}}])
    try:
        result = run_cli(["apply", str(desired.parent)], cli_env(emulator))
    finally:
        release.set()
    assert result.code == 1, result.output
    assert "the answer is not as documented" in result.stderr
    assert "Task was destroyed" not in result.output + result.stderr
    assert emulator.updates_for("K1") == []


def test_plan_and_apply_refuse_undeclared_names_wrong_types_and_options_located_before_any_write(
    start_emulator: Any, tmp_path: Path
) -> None:
    emulator = _declared_emulator(start_emulator, [{"id": "K1", "name": "a"}])
    bad = {"team": "infra", "teem": "x", "level": "bronze", "score": "high"}
    desired = write_desired(tmp_path / "d", [{"id": "K1", "name": "b", "customAttributes": bad}])
    for command in ("plan", "apply"):
        result = run_cli([command, str(desired)], cli_env(emulator))
        assert result.code == 1, result.output
        lines = [line for line in result.stderr.splitlines() if ": error: " in line]
        assert [line.rsplit("[", 1)[1] for line in lines] == [
            "customAttributes.level]",
            "customAttributes.score]",
            "customAttributes.teem]",
        ]
        assert all(line.startswith(f"{desired}:3:") for line in lines), lines
        assert "takes one of its options (gold, silver)" in result.stderr and "is not declared" in result.stderr
    assert emulator.updates_for("K1") == [] and emulator.store.load("K1")["name"] == "a"
    good = write_desired(tmp_path / "g", [{"id": "K1", "name": "b", "customAttributes": {"level": "gold", "score": 2}}])
    assert run_cli(["apply", str(good)], cli_env(emulator)).code == 0
    assert emulator.store.load("K1")["customAttributes"] == {"level": "gold", "score": 2}


def test_the_emulator_refuses_undeclared_names_and_wrong_values_as_the_api_does(start_emulator: Any) -> None:
    emulator = _declared_emulator(start_emulator, [{"id": "K1", "name": "a"}])
    auth = {"Authorization": emulator.auth_header}
    for attributes in ({"teem": "x"}, {"level": "bronze"}, {"score": "x"}):
        answer = http.post(
            emulator.url + "/v1/mgmt/accesskey/update", json={"id": "K1", "customAttributes": attributes}, headers=auth
        )
        assert answer.status_code == 400 and answer.json()["errorCode"] == "E011003", attributes
    found = http.get(emulator.url + "/v1/mgmt/accesskey/attribute", params={"name": "level"}, headers=auth).json()
    assert found["attribute"]["type"] == "singleselect" and found["attribute"]["options"][1]["value"] == "silver"
    missing = http.get(emulator.url + "/v1/mgmt/accesskey/attribute", params={"name": "nope"}, headers=auth)
    assert missing.status_code == 404
    # declared by the seed: every name a seeded key holds
    seeded = start_emulator([{"id": "K2", "customAttributes": {"env": "prod", "n": 3}}])
    assert [a["type"] for a in seeded.attributes.all()] == ["string", "number"]


def test_an_unusable_lookup_is_a_warning_not_a_refusal(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(
        [{"id": "K1", "name": "a", "customAttributes": {"team": "x"}}], attribute_lookup="missing"
    )
    desired = write_desired(tmp_path / "d", [{"id": "K1", "name": "a", "customAttributes": {"team": "x"}}])
    plan = run_cli(["plan", str(desired), "--no-attribution"], cli_env(emulator))
    assert plan.code == 0, plan.output
    assert "not checked against the project's declarations" in plan.stderr and "yet a key holds it" in plan.stderr


def test_export_writes_only_declared_attributes(start_emulator: Any, tmp_path: Path) -> None:
    keys = [{"id": "K1", "name": "a", "customAttributes": {"team": "x", "retired": "y"}}]
    emulator = start_emulator(keys)
    emulator.attributes = AttributeSchema([Declared("team", "Team", "string")])  # `retired` was deleted since
    out = tmp_path / "out.yaml"
    result = run_cli(["export", "--out", str(out)], cli_env(emulator))
    assert result.code == 0, result.output
    assert '"team": "x"' in out.read_text() and "retired" not in out.read_text()
    assert "no longer declared in the project: retired" in result.stderr


# --- any JSON in the claim and attribute maps, compared exactly --------------------------------------
ODD = {"none": None, "deep": {"list": [1, {"flag": True}], "empty": {}}, "n": 1}


def test_odd_claim_and_attribute_values_are_read_and_compared_exactly(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator([{"id": "K1", "name": "a", "customClaims": ODD, "customAttributes": {"x": None}}])
    unmanaged = write_desired(tmp_path / "d", [{"id": "K1", "name": "a"}])
    plan = run_cli(["plan", str(unmanaged), "--report", str(tmp_path / "r.json")], cli_env(emulator))
    assert plan.code == 0, plan.output  # read as they are: one such key does not stop the run
    managed = write_desired(tmp_path / "e", [{"id": "K1", "name": "a", "customClaims": {"n": 1}}])
    changed = run_cli(["plan", str(managed), "--report", str(tmp_path / "c.json")], cli_env(emulator))
    assert changed.code == 2, changed.output
    [key] = load_report(tmp_path / "c.json")["keys"]
    [change] = key["changes"]
    assert change["field"] == "customClaims" and change["before"] == ODD
    assert normalize_field("customClaims", ODD) == normalize_field("customClaims", json.loads(json.dumps(ODD)))
    assert normalize_field("customClaims", {"d": {"x": [True]}}) != normalize_field("customClaims", {"d": {"x": [1]}})
    assert normalize_field("customClaims", {"d": None}) != normalize_field("customClaims", {"d": {}})


# --- doctor ------------------------------------------------------------------------------------------
def _doctor(emulator: Any, key: str | None = None, **options: Any) -> Result:
    credentials = Credentials(emulator.config.project_id, key or emulator.config.management_key)
    return asyncio.run(run(DoctorOptions(credentials, emulator.url, **options)))


def _by_name(result: Result) -> dict[str, Any]:
    return {check.name: check for check in result.checks}


def _console(emulator: Any, key_id: str) -> None:
    body = {"id": key_id, "actorId": "U2alice", "changes": {"name": "by hand"}}
    assert http.post(f"{emulator.url}/_emulator/console", json=body).status_code == 200


def test_doctor_passes_on_a_project_that_fits_every_assumption(start_emulator: Any) -> None:
    keys = [
        {
            "id": "K1",
            "name": "a",
            "keyTenants": [{"tenantId": "T1", "roleNames": []}],
            "customAttributes": {"team": "x"},
        }
    ]
    emulator = start_emulator(keys)
    _console(emulator, "K1")
    result = _doctor(emulator, audit_tenant="T1")
    checks = _by_name(result)
    assert result.ok
    assert checks["license tier"].status is Status.PASS and "tier4" in checks["license tier"].detail
    assert checks["credentials"].status is Status.PASS and checks["search keys"].status is Status.PASS
    assert checks["audit search"].status is Status.PASS and checks["clock"].status is Status.PASS
    shape = checks["audit record shape"]
    assert (
        shape.status is Status.PASS and "key id in externalIds" in shape.detail and "occurred is a str" in shape.detail
    )
    assert "actor named by actorId" in shape.detail
    assert (
        checks["declared attributes"].status is Status.PASS
        and "machine name (found team)" in checks["declared attributes"].detail
    )
    assert checks["apply event"].status is Status.UNKNOWN and "tenant T1 (configured)" in checks["apply event"].detail
    assert checks["whole-key answers"].status is Status.PASS
    assert checks["status of keys not editable"].status is Status.UNKNOWN


def test_doctor_fails_with_credentials_that_do_not_work(start_emulator: Any) -> None:
    emulator = start_emulator([])
    result = _doctor(emulator, key="K2wrong")
    checks = _by_name(result)
    assert not result.ok and checks["credentials"].status is Status.FAIL and checks["credentials"].needed
    assert checks["license tier"].status is Status.WARN


def test_doctor_warns_on_each_assumption_that_does_not_hold(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(
        [{"id": "K1", "name": "a", "customAttributes": {"team": "x"}, "editable": False}],
        license_shape="refused",
        audit_forbidden=True,
        attribute_lookup="missing",
    )
    result = _doctor(emulator)
    checks = _by_name(result)
    assert result.ok, "none of these stops a plan or an apply"
    assert checks["license tier"].status is Status.WARN and "lowest bucket" in checks["license tier"].detail
    assert checks["audit search"].status is Status.WARN and checks["audit record shape"].status is Status.UNKNOWN
    assert checks["apply event"].status is Status.WARN and "auditTenant" in checks["apply event"].detail
    assert (
        checks["declared attributes"].status is Status.WARN and "display name" in checks["declared attributes"].detail
    )
    assert "1 key(s) not editable" in checks["status of keys not editable"].detail


def test_doctor_reads_the_older_record_shape_and_says_where_the_key_id_is(start_emulator: Any) -> None:
    emulator = start_emulator(
        [{"id": "K1", "name": "a"}], occurred_as_string=False, audit_key_id_places=("data.accessKeyId",)
    )
    _console(emulator, "K1")
    shape = _by_name(_doctor(emulator))["audit record shape"]
    assert "key id in data.accessKeyId" in shape.detail and "occurred is a int" in shape.detail


def test_doctor_fails_on_desired_attributes_the_project_does_not_declare(start_emulator: Any, tmp_path: Path) -> None:
    from reconcile.job.load import load_desired  # noqa: PLC0415

    emulator = _declared_emulator(start_emulator, [{"id": "K1", "name": "a", "customAttributes": {"team": "x"}}])
    desired = write_desired(tmp_path / "d", [{"id": "K1", "name": "a", "customAttributes": {"teem": "x"}}])
    result = _doctor(emulator, desired=load_desired([str(desired)]).state)
    check = _by_name(result)["declared attributes"]
    assert not result.ok and check.status is Status.FAIL and check.needed and "teem" in check.detail


def test_doctor_clock_region_and_tls_checks() -> None:
    now = time.time()
    assert clock_check(License("tier1", date=formatdate(now, usegmt=True)), now).status is Status.PASS
    assert clock_check(License("tier1", date=formatdate(now - 30, usegmt=True)), now).status is Status.WARN
    assert clock_check(License("tier1", date=formatdate(now - 7200, usegmt=True)), now).status is Status.FAIL
    assert clock_check(License("tier1"), now).status is Status.UNKNOWN
    long_id = "P2abcd" + "x" * 30
    assert "region 2abc" in region_check(long_id, "https://api.2abc.descope.com", False).detail
    assert region_check(long_id, "https://api.descope.com", True).status is Status.WARN
    assert region_check("P2short", "https://api.descope.com", False).status is Status.PASS
    assert tls_check("https://api.descope.com", License("tier1", tls="TLSv1.3")).status is Status.PASS
    assert tls_check("https://api.descope.com", License(None, "no answer")).status is Status.UNKNOWN
    assert tls_check("http://127.0.0.1:1", License("tier1")).status is Status.WARN


def test_doctor_on_the_command_line_text_and_json(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator([{"id": "K1", "name": "a"}])
    text = run_cli(["doctor"], cli_env(emulator), cwd=tmp_path)
    assert text.code == 0, text.output
    assert "ok   credentials (needed)" in text.stdout and text.stdout.strip().endswith("passes.")
    as_json = run_cli(["doctor", "--format", "json"], cli_env(emulator), cwd=tmp_path)
    document = json.loads(as_json.stdout)
    assert document["ok"] is True and {c["name"] for c in document["checks"]} >= {"TLS", "clock", "audit search"}
    failing = run_cli(["doctor"], cli_env(emulator, DESCOPE_MANAGEMENT_KEY="K2wrong"), cwd=tmp_path)
    assert failing.code == 1 and "FAIL credentials" in failing.stdout
    assert emulator.updates_for("K1") == [] and not [r for r in emulator.recorded() if r.path.endswith("/event")]


def test_doctor_with_a_config_checks_every_target_with_its_own_audit_tenant(
    start_emulator: Any, tmp_path: Path
) -> None:
    emulator = _declared_emulator(start_emulator, [{"id": "K1", "name": "a"}])
    other = _declared_emulator(  # a project each, one management key (KEY) for both
        start_emulator, [{"id": "K1", "name": "a"}], project_id="P2other", management_key=emulator.config.management_key
    )
    for name, attribute in (("dev", "team"), ("prod", "teem")):
        write_desired(tmp_path / "desired" / name, [{"id": "K1", "name": "a", "customAttributes": {attribute: "x"}}])
    dev, prod = (
        f"projectId: {e.config.project_id}\n    managementKeyEnv: KEY\n    baseUrl: {e.url}" for e in (emulator, other)
    )
    (tmp_path / "descope-reconcile.yaml").write_text(
        f"version: 1\ntargets:\n  dev:\n    {dev}\n    paths: [desired/dev]\n    auditTenant: T7\n"
        f"  prod:\n    {prod}\n    paths: [desired/prod]\n"
    )
    result = run_cli(["doctor"], {**cli_env(None), "KEY": emulator.config.management_key}, cwd=tmp_path)
    assert result.code == 1, result.output
    assert "[dev]   ?    apply event: tenant T7 (configured)" in result.stdout
    assert "[prod]   FAIL declared attributes (needed)" in result.stdout and "teem" in result.stdout
    assert "[dev] Doctor: every check a plan or apply needs passes." in result.stdout
