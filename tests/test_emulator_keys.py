"""Key lifecycle on the emulator: create, rotate, delete, exchange, search filters; secrets hashed."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any

import pytest

from reconcile.emulator.attributes import Declared
from tests.support import http
from tests.test_emulator import exchange, post

ACCESSKEY = "/v1/mgmt/accesskey"
# What the Python SDK sends for create: every field, null when unset.
SDK_CREATE = {
    "name": "deployer",
    "expireTime": 0,
    "roleNames": ["deploy"],
    "keyTenants": [],
    "userId": None,
    "customClaims": None,
    "description": None,
    "permittedIps": None,
    "customAttributes": None,
}


def create(emulator: Any, **fields: Any) -> dict[str, Any]:
    response = post(emulator, f"{ACCESSKEY}/create", {**SDK_CREATE, **fields})
    assert response.status_code == 200, response.text
    created: dict[str, Any] = response.json()
    return created


def test_create_answers_the_key_and_its_secret_once(start_emulator: Any) -> None:
    emulator = start_emulator([], tenant_names={"T1": "One"})
    emulator.attributes.declare(Declared("team", "Team", "string"))
    later = int(time.time()) + 3600
    created = create(
        emulator,
        keyTenants=[{"tenantId": "T1", "roleNames": ["r"]}],
        roleNames=[],
        userId="U1",
        expireTime=str(later),  # the OpenAPI types it as a string
        customAttributes={"team": "infra"},
    )
    key = created["key"]
    assert key["id"].startswith("K2") and len(key["id"]) == 28
    assert abs(key["createdTime"] - time.time()) < 5 and key["expireTime"] == later
    assert (key["boundUserId"], key["status"], key["editable"]) == ("U1", "active", True)
    assert key["keyTenants"] == [{"tenantId": "T1", "roleNames": ["r"], "tenantName": "One"}]
    assert key["createdBy"] == "mgmt-" + hashlib.sha256(emulator.config.management_key.encode()).hexdigest()[:8]
    assert key["clientId"] and key["description"] == "" and key["customAttributes"] == {"team": "infra"}
    assert emulator.store.load(key["id"]) == key
    assert exchange(emulator, created["cleartext"]).status_code == 200
    assert "cleartext" not in emulator.store.load(key["id"])


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"name": ""}, "E011003"),
        ({"name": None}, "E011003"),
        ({"roleNames": "admin"}, "E011003"),
        ({"expireTime": -5}, "E011003"),
        ({"expireTime": "soon"}, "E011003"),
        ({"expireTime": 1_000_000}, "E011003"),  # in the past
        ({"bogus": 1}, "E011003"),
        ({"customClaims": {"x": [1]}}, "E011003"),
        ({"customAttributes": {"undeclared": "x"}}, "E011003"),  # the project declares no attribute
    ],
)
def test_create_validates_like_update(start_emulator: Any, fields: dict[str, Any], code: str) -> None:
    emulator = start_emulator([])
    response = post(emulator, f"{ACCESSKEY}/create", {**SDK_CREATE, **fields})
    assert response.status_code == 400 and response.json()["errorCode"] == code
    assert len(emulator.store) == 0 and len(emulator.audit) == 0


def test_rotate_keeps_the_id_and_kills_the_old_secret_at_once(start_emulator: Any) -> None:
    emulator = start_emulator([{"id": "K1", "name": "a", "cleartext": "first"}])
    assert exchange(emulator, "first").status_code == 200
    rotated = post(emulator, f"{ACCESSKEY}/rotate", {"id": "K1"}).json()
    assert rotated["key"] == emulator.store.load("K1") and rotated["cleartext"] != "first"
    assert exchange(emulator, "first").status_code == 401
    assert exchange(emulator, rotated["cleartext"]).status_code == 200
    assert post(emulator, f"{ACCESSKEY}/rotate", {"id": "K404"}).status_code == 404
    assert post(emulator, f"{ACCESSKEY}/rotate", {}).json()["errorCode"] == "E011002"


def test_delete_single_and_batch_are_all_or_nothing(start_emulator: Any) -> None:
    emulator = start_emulator([{"id": f"K{i}", "cleartext": f"s{i}"} for i in range(4)])
    assert post(emulator, f"{ACCESSKEY}/delete", {"id": "K404"}).status_code == 404
    assert post(emulator, f"{ACCESSKEY}/delete", {"id": "K0"}).json() == {}
    assert exchange(emulator, "s0").status_code == 401
    unknown = post(emulator, f"{ACCESSKEY}/delete/batch", {"ids": ["K1", "K404"]})
    assert unknown.status_code == 404 and len(emulator.store) == 3  # K1 survived: strict
    assert post(emulator, f"{ACCESSKEY}/delete/batch", {"ids": []}).status_code == 400
    assert post(emulator, f"{ACCESSKEY}/delete/batch", {"ids": ["K1", "K2"]}).json() == {}
    assert [key["id"] for key in emulator.store.all()] == ["K3"]


def test_not_editable_keys_refuse_rotate_and_delete(start_emulator: Any) -> None:
    emulator = start_emulator([{"id": "K1", "editable": False, "cleartext": "s"}])
    for path in ("rotate", "delete"):
        response = post(emulator, f"{ACCESSKEY}/{path}", {"id": "K1"})
        assert response.status_code == 400 and response.json()["errorCode"] == "E011004"
    assert exchange(emulator, "s").status_code == 200


def test_exchange_refuses_every_key_that_may_not_be_used(start_emulator: Any) -> None:
    seed = [
        {"id": "Kok", "cleartext": "ok", "roleNames": ["r"], "customClaims": {"iss": "forged", "team": "a"}},
        {"id": "Koff", "cleartext": "off", "status": "inactive"},
        {"id": "Kold", "cleartext": "old", "expireTime": int(time.time()) - 10},
        {"id": "Kip", "cleartext": "ip", "permittedIps": ["10.0.0.0/8", "not-an-ip"]},
        {"id": "Kloop", "cleartext": "loop", "permittedIps": ["127.0.0.0/8"]},
    ]
    emulator = start_emulator(seed)
    for cleartext in ("wrong", "off", "old", "ip"):
        response = exchange(emulator, cleartext)
        assert response.status_code == 401 and response.json()["errorCode"] == "E011002", cleartext
    assert exchange(emulator, "ok", project_id="P2other").status_code == 401
    assert exchange(emulator, emulator.config.management_key).status_code == 401  # not an access key
    assert exchange(emulator, "loop").status_code == 200
    answer = exchange(emulator, "ok").json()
    assert set(answer) == {"keyId", "sessionJwt", "expiration"} and answer["expiration"] > time.time()
    assert answer["keyId"] == "Kok"
    header, claims, signature = answer["sessionJwt"].split(".")
    payload = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    assert (payload["sub"], payload["iss"], payload["roles"], payload["team"]) == (
        "Kok",
        emulator.config.project_id,
        ["r"],
        "a",
    )
    assert header and signature


def test_search_honours_the_documented_filters(start_emulator: Any) -> None:
    seed = [
        {"id": "K1", "name": "a", "keyTenants": [{"tenantId": "T1"}], "customAttributes": {"team": "x", "n": 1}},
        {"id": "K2", "name": "b", "keyTenants": [{"tenantId": "T2"}], "boundUserId": "U1", "createdBy": "alice"},
        {"id": "K3", "name": "c", "roleNames": ["r"], "customAttributes": {"team": "x", "n": True}},
    ]
    emulator = start_emulator(seed)

    def ids(**filters: Any) -> list[str]:
        response = post(emulator, f"{ACCESSKEY}/search", filters)
        assert response.status_code == 200, response.text
        return [key["id"] for key in response.json()["keys"]]

    assert ids() == ["K1", "K2", "K3"]
    assert ids(tenantIds=["T2", "T9"]) == ["K2"]
    assert ids(customAttributes={"team": "x"}) == ["K1", "K3"]
    assert ids(customAttributes={"team": "x", "n": 1}) == ["K1"]  # true is not 1
    assert ids(boundUserId="U1") == ["K2"]
    assert ids(creatingUser="alice") == ["K2"]
    assert ids(tenantIds=[], boundUserId=None, creatingUser=None, customAttributes=None, sort=[{"field": "x"}]) == [
        "K1",
        "K2",
        "K3",
    ]
    assert post(emulator, f"{ACCESSKEY}/search", {"tenantIds": "T1"}).status_code == 400


def test_cleartexts_are_kept_only_as_digests_and_never_shown(start_emulator: Any) -> None:
    emulator = start_emulator([{"id": "K1", "cleartext": "seeded-secret-1"}])
    created = create(emulator)["cleartext"]
    rotated = post(emulator, f"{ACCESSKEY}/rotate", {"id": "K1"}).json()["cleartext"]
    exchange(emulator, rotated)
    dumps = [
        http.get(emulator.url + f"/_emulator/{name}").text for name in ("stats", "keys", "requests", "audit", "config")
    ]
    state = repr(vars(emulator.store)) + repr(emulator.requests) + repr(vars(emulator.audit))
    for secret in ("seeded-secret-1", created, rotated):
        assert all(secret not in text for text in [*dumps, state])
    assert hashlib.sha256(rotated.encode()).hexdigest() in state  # what is kept: the digest


def test_a_view_of_a_key_shares_nothing_with_the_store() -> None:
    """Views are copied without copy.deepcopy (a search copies every key): a hook or a test that
    changes one, at any depth, changes no stored key."""
    from reconcile.emulator.store import KeyStore  # noqa: PLC0415

    seed = {
        "id": "K1",
        "roleNames": ["a"],
        "keyTenants": [{"tenantId": "T1", "roleNames": ["r"]}],
        "customClaims": {"deep": {"list": [1, {"x": [True]}]}},
    }
    store = KeyStore([seed], tenant_names={"T1": "Tenant one"})
    view = store.search({})[0]
    assert view["keyTenants"] == [{"tenantId": "T1", "roleNames": ["r"], "tenantName": "Tenant one"}]
    view["roleNames"].append("b")
    view["keyTenants"][0]["roleNames"].append("s")
    view["customClaims"]["deep"]["list"][1]["x"].append(False)
    again = store.load("K1")
    assert again["roleNames"] == ["a"] and again["keyTenants"][0]["roleNames"] == ["r"]
    assert again["customClaims"] == {"deep": {"list": [1, {"x": [True]}]}}
    assert "tenantName" not in store._keys["K1"]["keyTenants"][0]


def _search_bytes(emulator: Any, filters: dict[str, Any]) -> tuple[bytes, bytes]:
    """The bytes a search sends (each key's JSON made when it was written) and the reference: the
    JSON of the views made now."""
    response = post(emulator, f"{ACCESSKEY}/search", filters)
    assert response.status_code == 200, response.text
    return response.content, json.dumps({"keys": emulator.store.search(filters)}).encode()


def test_a_search_sends_the_json_of_its_views_after_every_kind_of_write(start_emulator: Any) -> None:
    seed = [
        {"id": "K1", "name": "caf\u00e9 \u2603 \U0001f600", "keyTenants": [{"tenantId": "T1", "roleNames": ["r"]}]},
        {"id": "K2", "keyTenants": [{"tenantName": "stale", "tenantId": "T9"}], "customClaims": {"f": 1.5, "i": 2**70}},
        {"id": "K3", "customAttributes": {"team": "x", "n": True, "z": None}, "extra": {'"quoted"': ["\\", "\n"]}},
        {"id": "K4", "status": "inactive", "editable": False, "expireTime": 4102444800, "boundUserId": "U1"},
    ]
    emulator = start_emulator(seed, tenant_names={"T1": "Tenant \u00fcn"})
    key_id = create(emulator, name="new", keyTenants=[{"tenantId": "T1"}], customClaims={"a": 1.25, "b": "\u00e9"})[
        "key"
    ]["id"]
    writes: list[tuple[str, Any]] = [
        (f"{ACCESSKEY}/update", {"id": "K1", "name": "renamed", "roleNames": ["a", "b"]}),
        (f"{ACCESSKEY}/update", {"id": key_id, "keyTenants": [{"tenantId": "T2", "roleNames": []}]}),
        (f"{ACCESSKEY}/deactivate", {"id": "K1"}),
        (f"{ACCESSKEY}/activate/batch", {"ids": ["K1", "K4", "K1"]}),
        (f"{ACCESSKEY}/rotate", {"id": "K2"}),
        (f"{ACCESSKEY}/delete", {"id": "K3"}),
        ("/_emulator/config", {"update_semantics": "replace"}),
        (f"{ACCESSKEY}/update", {"id": "K2", "name": "replaced"}),
        ("/_emulator/console", {"id": "K1", "changes": {"description": "by hand", "status": "inactive"}}),
        ("/_emulator/console", {"id": "K2", "changes": {"status": "active"}}),
        ("/_emulator/console", {"id": key_id, "delete": True}),
        (f"{ACCESSKEY}/create", {"name": "last", "customAttributes": {"team": "y"}}),
        (f"{ACCESSKEY}/delete/batch", {"ids": ["K1", "K2"]}),
    ]
    for path, body in [("", None), *writes]:
        if body is not None:
            assert post(emulator, path, body).status_code == 200, (path, body)
        for filters in ({}, {"tenantIds": ["T1", "T2"]}, {"text": "E"}, {"customAttributes": {"team": "y"}}):
            sent, reference = _search_bytes(emulator, filters)
            assert sent == reference, (path, body, filters)
    assert b'"keys": []' not in _search_bytes(emulator, {})[0]


def test_a_hook_reads_and_changes_a_search_answer_as_it_was_when_made(start_emulator: Any) -> None:
    """The views behind the bytes are made only when a hook reads the body, from the keys as they were."""
    emulator = start_emulator([{"id": "K1", "name": "before"}])

    def hook(call: Any) -> Any:
        answer = call.forward()
        emulator.store.update({"id": "K1", "name": "after"}, "merge")  # a write after the search ran
        answer.body["keys"].append({"id": "K9"})
        return answer

    emulator.intercept(f"{ACCESSKEY}/search", hook)
    assert [(k["id"], k.get("name")) for k in post(emulator, f"{ACCESSKEY}/search", {}).json()["keys"]] == [
        ("K1", "before"),
        ("K9", None),
    ]
    emulator.intercept(f"{ACCESSKEY}/search", lambda call: call.forward())  # a hook that reads nothing
    assert post(emulator, f"{ACCESSKEY}/search", {}).json()["keys"][0]["name"] == "after"


def test_a_key_without_json_is_searched_the_reference_way() -> None:
    """A seeded value JSON cannot show makes no JSON ahead: the search's views fail as they did."""
    from reconcile.emulator.store import KeyStore  # noqa: PLC0415

    store = KeyStore([{"id": "K1"}, {"id": "K2", "customClaims": {"when": {1, 2}}}])
    found = store.found({})
    assert found.answer_json() is None and [view["id"] for view in found.views()] == ["K1", "K2"]
    assert store.found({"text": "K1"}).answer_json() == json.dumps({"keys": store.search({"text": "K1"})}).encode()
