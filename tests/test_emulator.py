"""The local server: auth, validation, update semantics, the official SDK, its command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from descope import DescopeClient


def post(emulator: Any, path: str, body: Any, auth: str | None = None) -> httpx.Response:
    headers = {"Authorization": auth if auth is not None else emulator.auth_header}
    return httpx.post(emulator.url + path, json=body, headers=headers)


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


def test_rejects_roles_with_tenants_and_unknown_ids(start_emulator: Any) -> None:
    emulator = start_emulator([{"id": "K1", "roleNames": ["r"]}])
    both = post(emulator, "/v1/mgmt/accesskey/update", {"id": "K1", "keyTenants": [{"tenantId": "T"}]})
    assert both.status_code == 400
    assert post(emulator, "/v1/mgmt/accesskey/update", {"id": "K404", "name": "x"}).status_code == 404
    assert emulator.store.load("K1")["keyTenants"] == []


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
        response = httpx.post(
            url + "/v1/mgmt/accesskey/search",
            json={},
            headers={"Authorization": "Bearer P2emulator0000000000000000000:K2cli"},
        )
        assert [k["id"] for k in response.json()["keys"]] == ["K1"]
        assert httpx.get(url + "/_emulator/stats").json()["requests"] == {"/v1/mgmt/accesskey/search": {"200": 1}}
    finally:
        server.terminate()
        assert server.wait(timeout=10) == 0
