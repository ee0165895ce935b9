"""The local server: auth, validation, update semantics, the official SDK, its command line."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconcile.desired.loader import ParsedFile, parse_text
from reconcile.emulator import Answer, Call
from reconcile.emulator.__main__ import load_seed
from reconcile.emulator.attributes import Declared
from tests.support import http


def post(emulator: Any, path: str, body: Any, auth: str | None = None, timeout: float = 5.0) -> httpx.Response:
    headers = {"Authorization": auth if auth is not None else emulator.auth_header}
    return http.post(emulator.url + path, json=body, headers=headers, timeout=timeout)


def exchange(emulator: Any, cleartext: str, project_id: str | None = None) -> httpx.Response:
    """The auth API's exchange: the access key itself is the credential."""
    auth = f"Bearer {project_id or emulator.config.project_id}:{cleartext}"
    return http.post(
        emulator.url + "/v1/auth/accesskey/exchange", json={"loginOptions": {}}, headers={"Authorization": auth}
    )


@pytest.mark.parametrize("auth", ["", "Bearer P2x:wrong", "Bearer only-project"])
def test_rejects_bad_auth_with_a_descope_error_body(start_emulator: Any, auth: str) -> None:
    emulator = start_emulator([{"id": "K1"}])
    response = post(emulator, "/v1/mgmt/accesskey/search", {}, auth=auth)
    assert response.status_code == 401
    assert set(response.json()) == {"errorCode", "errorDescription", "errorMessage"}


def test_update_semantics_merge_keeps_and_replace_clears(start_emulator: Any) -> None:
    seed = [{"id": "K1", "name": "a", "description": "d", "roleNames": ["r"]}]
    merge = start_emulator(seed, update_semantics="merge")
    replace = start_emulator(seed, update_semantics="replace")
    for emulator in (merge, replace):
        assert (
            post(emulator, "/v1/mgmt/accesskey/update", {"id": "K1", "name": "b", "description": None}).status_code
            == 200
        )
    kept, cleared = merge.store.load("K1"), replace.store.load("K1")
    assert (kept["name"], kept["description"], kept["roleNames"]) == ("b", "d", ["r"])
    assert (cleared["name"], cleared["description"], cleared["roleNames"]) == ("b", "", [])


def test_accepts_roles_with_tenants_and_rejects_unknown_ids(start_emulator: Any) -> None:
    """The Python SDK says tenant roles take precedence when both are given: the server accepts both."""
    emulator = start_emulator([{"id": "K1", "roleNames": ["r"]}])
    both = post(emulator, "/v1/mgmt/accesskey/update", {"id": "K1", "keyTenants": [{"tenantId": "T"}]})
    assert both.status_code == 200
    assert post(emulator, "/v1/mgmt/accesskey/update", {"id": "K404", "name": "x"}).status_code == 404
    assert emulator.store.load("K1")["keyTenants"] == [{"tenantId": "T", "roleNames": [], "tenantName": "T"}]
    assert emulator.store.load("K1")["roleNames"] == ["r"]


def test_status_endpoints_and_batches(start_emulator: Any) -> None:
    emulator = start_emulator([{"id": "K1"}, {"id": "K2"}])
    assert post(emulator, "/v1/mgmt/accesskey/deactivate/batch", {"ids": ["K1", "K2"]}).status_code == 200
    assert post(emulator, "/v1/mgmt/accesskey/activate", {"id": "K2"}).status_code == 200
    assert [k["status"] for k in emulator.store.all()] == ["inactive", "active"]


def test_fault_after_apply_changes_the_key_yet_answers_an_error(start_emulator: Any) -> None:
    emulator = start_emulator([{"id": "K1", "name": "a"}], fault_rate=1.0, fault_kinds=("503",), fault_after_apply=1.0)
    assert post(emulator, "/v1/mgmt/accesskey/update", {"id": "K1", "name": "b"}).status_code == 503
    assert emulator.store.load("K1")["name"] == "b"


def test_the_official_python_sdk_works_against_it(start_emulator: Any) -> None:
    emulator = start_emulator(
        [{"id": "K1", "name": "a", "customClaims": {"x": "1"}}, {"id": "K2", "name": "b"}], update_semantics="merge"
    )
    from descope import DescopeClient  # noqa: PLC0415 - 0.33 s to import: each test worker paid it at collection

    client = DescopeClient(
        project_id=emulator.config.project_id,
        management_key=emulator.config.management_key,
        base_url=emulator.url,
    )
    keys = client.mgmt.access_key.search_all_access_keys()["keys"]
    assert sorted(k["id"] for k in keys) == ["K1", "K2"]
    assert client.mgmt.access_key.load("K1")["key"]["customClaims"] == {"x": "1"}
    client.mgmt.access_key.update("K1", name="renamed", description="via sdk", custom_claims={"x": "2"})
    key = emulator.store.load("K1")
    assert (key["name"], key["description"], key["customClaims"]) == ("renamed", "via sdk", {"x": "2"})
    update = emulator.updates_for("K1")[0]
    assert update.body == {"id": "K1", "name": "renamed", "description": "via sdk", "customClaims": {"x": "2"}}


def test_the_official_python_sdk_creates_rotates_deletes_and_reads_the_trail(start_emulator: Any) -> None:
    emulator = start_emulator([{"id": "K1", "name": "a"}], tenant_names={"T1": "One"})
    emulator.attributes.declare(Declared("team", "Team", "string"))
    from descope import AssociatedTenant, DescopeClient  # noqa: PLC0415 - as above

    client = DescopeClient(
        project_id=emulator.config.project_id,
        management_key=emulator.config.management_key,
        base_url=emulator.url,
    )
    keys = client.mgmt.access_key
    created = keys.create(
        name="sdk-key",
        key_tenants=[AssociatedTenant("T1", ["reader"])],
        user_id="U1",
        custom_attributes={"team": "infra"},
    )
    key_id = created["key"]["id"]
    assert created["key"]["keyTenants"] == [{"tenantId": "T1", "roleNames": ["reader"], "tenantName": "One"}]
    assert exchange(emulator, created["cleartext"]).status_code == 200
    found = keys.search_all_access_keys(tenant_ids=["T1"], bound_user_id="U1", custom_attributes={"team": "infra"})
    assert [k["id"] for k in found["keys"]] == [key_id]
    rotated = keys.rotate(key_id)
    assert rotated["key"]["id"] == key_id and exchange(emulator, created["cleartext"]).status_code == 401
    keys.deactivate(key_id)
    keys.delete(key_id)
    keys.delete_batch(["K1"])
    assert emulator.store.all() == []
    client.mgmt.audit.create_event(action="Reconciled", type="info", actor_id="ci", tenant_id="T1", data={"n": 1})
    audits = client.mgmt.audit.search(actions=["AccessKeyCreated", "AccessKeyModified", "AccessKeyDeleted"])["audits"]
    assert len(audits) == 4 and all(a["loginIds"] == [key_id] for a in audits)  # the SDK renames externalIds
    assert audits[0]["occurred"].year >= 2024  # the SDK reads occurred as a string
    everything = client.mgmt.audit.search(from_ts=datetime.now() - timedelta(days=1))["audits"]
    assert [a["action"] for a in everything][:2] == ["Reconciled", "AccessKeysDeleted"]


def test_seed_is_read_as_yaml_1_2(tmp_path: Path) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text("tenants: {T1: One}\nkeys:\n  - {id: K1, name: yes, description: 2024-01-01, cleartext: s3}\n")
    loaded = load_seed(seed)
    assert loaded["keys"][0]["name"] == "yes" and loaded["keys"][0]["description"] == "2024-01-01"
    assert load_seed(_write(tmp_path / "empty.yaml", "keys:\n")) == {"keys": [], "tenants": {}, "attributes": None}


# A scalar in a seed reads as it reads in a desired file: one reader, YAML 1.2 (the seed once read
# `1_000` as 1000 and refused a tab after a colon, as YAML 1.1 does).
SEED_SCALARS = ["1_000", "0b101", "0o17", "017", "0x1F", "+0x1F", ".iNf", "yes", "on", "~", "2024-01-01", "'1_000'"]


def test_a_seed_reads_as_the_desired_files_do(emulator_process: Any, tmp_path: Path) -> None:
    claims = "".join(f"      c{i}: {scalar}\n" for i, scalar in enumerate(SEED_SCALARS))
    key = f"  - id: K1\n    name:\tx\n    customClaims:\n{claims}"
    seed = _write(tmp_path / "seed.yaml", f"keys:\n{key}")
    desired = parse_text("d.yaml", f"version: 1\nkeys:\n{key}".encode())
    assert isinstance(desired, ParsedFile) and not desired.problems
    served = http.get(emulator_process("--seed", str(seed)) + "/_emulator/keys").json()["keys"][0]
    assert served["name"] == "x"
    assert served["customClaims"] == desired.data["keys"][0]["customClaims"]
    assert served["customClaims"]["c0"] == "1_000"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("missing.yaml", None, "cannot read the seed"),
        ("broken.yaml", "keys: [", ":2:1: YAML syntax error"),
        ("twice.yaml", "keys: []\nkeys: []\n", ":2:1: duplicate key 'keys'"),
        ("broken.json", "{", "not a valid JSON file"),
        ("list.yaml", "- id: K1\n", "a seed is a mapping with a `keys` list"),
        ("tenants.yaml", "tenants: {T1: 5}\n", "a `tenants` mapping of id to name"),
        ("noid.yaml", "keys: [{name: a}]\n", "seed key #0 has no id"),
        ("dup.yaml", "keys: [{id: K1}, {id: K1}]\n", "appears more than once"),
        ("binary.yaml", b"\xff\xfe\x00", "cannot read the seed"),
    ],
)
def test_a_bad_seed_is_one_line_and_exit_2(tmp_path: Path, name: str, text: str | bytes | None, message: str) -> None:
    seed = tmp_path / name
    if isinstance(text, bytes):
        seed.write_bytes(text)
    elif text is not None:
        seed.write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "reconcile.emulator", "--seed", str(seed)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"python -m reconcile.emulator: error: {seed}") and message in done.stderr


def test_help_teaches_every_switch() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "reconcile.emulator", "--help"], capture_output=True, text=True, check=True
    )
    for switch in (
        *("--window", "--block", "--audit-window", "--audit-block", "--audit-forbidden", "--occurred-as-number"),
        *("--unlabelled-window", "--license", "/v1/mgmt/license", "/v1/mgmt/accesskey/attribute"),
        *("--audit-key-id-in", "--actor-id", "--extra-management-key", "--slow-applies", "slow-504"),
        *("/v1/mgmt/accesskey/create", "/v1/auth/accesskey/exchange", "/v1/mgmt/audit/search", "/_emulator/console"),
    ):
        assert switch in done.stdout, switch


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--block", "5"], "--block needs --window"), (["--window", "ten"], "COUNT/SECONDS"), (["--faults", "418"], "")],
)
def test_bad_switches_are_usage_errors(args: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "reconcile.emulator", *args], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_run_time_switches_over_http(emulator_process: Any) -> None:
    url = emulator_process("--audit-key-id-in", "externalIds")
    config = http.get(url + "/_emulator/config").json()["config"]
    assert config["audit_key_id_places"] == ["externalIds"] and config["fault_rate"] == 0.0
    assert "management_key" not in config
    changed = http.post(url + "/_emulator/config", json={"fault_rate": 1.0, "fault_kinds": ["503"]})
    assert changed.json()["config"]["fault_kinds"] == ["503"]
    auth = {"Authorization": "Bearer P2emulator0000000000000000000:K2emulator-management-key"}
    assert http.post(url + "/v1/mgmt/accesskey/search", json={}, headers=auth).status_code == 503
    for bad in ({"fault_rate": 2}, {"fault_kinds": ["418"]}, {"management_key": "x"}, {"fault_rate": 0, "bogus": 1}):
        refused = http.post(url + "/_emulator/config", json=bad)
        assert refused.status_code == 400, bad
    assert http.get(url + "/_emulator/config").json()["config"]["fault_rate"] == 1.0  # a bad batch changed nothing


def test_command_line_prints_url_first_and_serves_the_seed(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"keys": [{"id": "K1", "name": "a"}]}))
    server = subprocess.Popen(
        [sys.executable, "-m", "reconcile.emulator", "--seed", str(seed), "--port", "0", "--management-key", "K2cli"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        response = http.post(
            url + "/v1/mgmt/accesskey/search",
            json={},
            headers={"Authorization": "Bearer P2emulator0000000000000000000:K2cli"},
        )
        assert [k["id"] for k in response.json()["keys"]] == ["K1"]
        assert http.get(url + "/_emulator/stats").json()["requests"] == {"/v1/mgmt/accesskey/search": {"200": 1}}
    finally:
        server.terminate()
        assert server.wait(timeout=10) == 0


def test_the_emulators_own_failure_is_answered_500_and_noted_never_a_dropped_connection(start_emulator: Any) -> None:
    """A failure inside the emulator (here a hook's bug) is answered as a server answers its own bug,
    named, and noted where the test fixture looks (it fails a test that leaves one): a connection
    closed without an answer would read as a network fault and send a client down its retry path."""
    emulator = start_emulator([{"id": "K1", "name": "one"}])

    def broken(_call: Call) -> Answer:
        raise KeyError("no-such-field")

    emulator.intercept("/v1/mgmt/accesskey/search", broken)
    answered = post(emulator, "/v1/mgmt/accesskey/search", {})
    assert answered.status_code == 500 and "KeyError" in answered.json()["errorMessage"]
    assert emulator.stats()["internalErrors"] == 1 and "no-such-field" in emulator.internal_errors[0]
    emulator.intercept("/v1/mgmt/accesskey/search", lambda _call: Answer(200, {"keys": {1, 2}}))  # no JSON
    unsendable = post(emulator, "/v1/mgmt/accesskey/search", {})
    assert unsendable.status_code == 500 and "TypeError" in unsendable.json()["errorMessage"]
    assert [r.status for r in emulator.recorded()] == [500, 500], "recorded as answered, never 200"
    emulator.intercept("/v1/mgmt/accesskey/search", None)
    assert post(emulator, "/v1/mgmt/accesskey/search", {}).status_code == 200, "the server goes on"
    assert len(emulator.internal_errors) == 2
    emulator.internal_errors.clear()  # seen: the fixture would fail this test for it
    host, port = emulator.url.removeprefix("http://").split(":")
    for length in ("abc", "-5"):  # the client's error: answered 400, never the emulator's failure
        with socket.create_connection((host, int(port)), timeout=10) as conversation:
            conversation.sendall(
                f"POST /v1/mgmt/accesskey/search HTTP/1.1\r\nContent-Length: {length}\r\n\r\n".encode()
            )
            assert conversation.recv(100).startswith(b"HTTP/1.1 400 Bad Content-Length"), length
    assert emulator.internal_errors == []


def test_a_hook_sees_one_path_nests_with_prefix_hooks_and_faults_only_its_request(start_emulator: Any) -> None:
    """`Emulator.intercept`: the hook of the path first, then the prefix's, then the emulator; a
    fault forwarded by a hook is that request's alone; removing the hook restores the plain answer."""
    emulator = start_emulator([{"id": "K1", "name": "one"}, {"id": "K2", "name": "two"}])
    seen: list[str] = []

    def outer(call: Call) -> Answer:
        seen.append(f"prefix {call.path}")
        return call.forward()

    def on_update(call: Call) -> Answer:
        seen.append(f"update {call.body['id']}")
        if call.body["id"] == "K1":
            return call.forward(fault="503")
        return call.forward({**call.body, "name": "hooked"})

    emulator.intercept("/v1/mgmt/*", outer)
    emulator.intercept("/v1/mgmt/accesskey/update", on_update)
    assert post(emulator, "/v1/mgmt/accesskey/update", {"id": "K1", "name": "x"}).status_code == 503
    answered = post(emulator, "/v1/mgmt/accesskey/update", {"id": "K2", "name": "x"})
    assert answered.status_code == 200 and answered.json()["key"]["name"] == "hooked"
    assert post(emulator, "/v1/mgmt/accesskey/search", {}).status_code == 200
    assert seen == [
        "update K1",
        "prefix /v1/mgmt/accesskey/update",
        "update K2",
        "prefix /v1/mgmt/accesskey/update",
        "prefix /v1/mgmt/accesskey/search",
    ]
    assert emulator.store.load("K1")["name"] == "one"  # the fault (fault_after_apply 0) made no change
    assert [(r.status, r.fault) for r in emulator.recorded()] == [(503, "503"), (200, None), (200, None)]
    assert emulator.stats()["faults"] == {"503": 1}

    emulator.intercept("/v1/mgmt/accesskey/update", None)
    emulator.intercept("/v1/mgmt/*", None)
    again = post(emulator, "/v1/mgmt/accesskey/update", {"id": "K1", "name": "plain"})
    assert again.status_code == 200 and again.json()["key"]["name"] == "plain" and len(seen) == 5
