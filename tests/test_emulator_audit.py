"""The emulator's audit trail: records of API and console changes, search, its limit and its 403."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import httpx
import pytest

from tests.support import http
from tests.test_emulator import post

ACCESSKEY = "/v1/mgmt/accesskey"
SEARCH = "/v1/mgmt/audit/search"
DAY_MS = 24 * 3600 * 1000
NO_LIMIT = {"audit_search_window": None}


def search(emulator: Any, **body: Any) -> dict[str, Any]:
    response = post(emulator, SEARCH, body)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def admin(emulator: Any, name: str, body: Any) -> httpx.Response:
    return http.post(f"{emulator.url}/_emulator/{name}", json=body)


def test_every_api_mutation_is_recorded_with_its_actor(start_emulator: Any) -> None:
    seed = [{"id": f"K{i}", "keyTenants": [{"tenantId": f"T{i}"}]} for i in range(4)]
    emulator = start_emulator(seed, **NO_LIMIT)
    created = post(emulator, f"{ACCESSKEY}/create", {"name": "new"}).json()["key"]["id"]
    for path, body in [
        ("update", {"id": "K0", "name": "x"}),
        ("deactivate/batch", {"ids": ["K0", "K1"]}),
        ("activate", {"id": "K0"}),
        ("rotate", {"id": "K1"}),
        ("delete", {"id": created}),
        ("delete/batch", {"ids": ["K2", "K3"]}),
    ]:
        assert post(emulator, f"{ACCESSKEY}/{path}", body).status_code == 200
    post(emulator, f"{ACCESSKEY}/update", {"id": "K404", "name": "x"})  # refused: not recorded
    found = search(emulator, oldestFirst=True, size=100)
    got = [(r["action"], r["externalIds"], r["tenants"]) for r in found["audits"]]
    assert got == [  # the key ids in externalIds, as the wire has them
        ("AccessKeyCreated", [created], []),
        ("AccessKeyModified", ["K0"], ["T0"]),
        ("AccessKeyModified", ["K0"], ["T0"]),  # a batch status change: one record per key
        ("AccessKeyModified", ["K1"], ["T1"]),
        ("AccessKeyModified", ["K0"], ["T0"]),
        ("AccessKeyModified", ["K1"], ["T1"]),
        ("AccessKeyDeleted", [created], []),
        ("AccessKeysDeleted", ["K2", "K3"], ["T2", "T3"]),  # one record, the ids as a list
    ]
    actor = "mgmt-" + hashlib.sha256(emulator.config.management_key.encode()).hexdigest()[:8]
    record = found["audits"][0]
    assert {r["actorId"] for r in found["audits"]} == {actor} and found["total"] == 8
    assert set(record) == {
        *("ID", "projectId", "userId", "action", "occurred", "device", "method", "geo", "remoteAddress"),
        *("externalIds", "tenants", "data", "type", "actorId"),
    }
    assert (record["projectId"], record["remoteAddress"], record["type"]) == (
        emulator.config.project_id,
        "127.0.0.1",
        "info",
    )
    # a numeric string, as on the wire
    assert isinstance(record["occurred"], str) and abs(int(record["occurred"]) - time.time() * 1000) < 10_000
    assert record["data"] == {}
    assert emulator.config.management_key not in str(found)


def test_actor_names_extra_keys_and_where_the_key_id_goes(start_emulator: Any) -> None:
    emulator = start_emulator(
        [{"id": "K1"}, {"id": "K2"}, {"id": "K3"}],
        extra_management_keys=("K2second-pipeline",),
        management_key="K2emulator-management-key",
        actor_names={"K2emulator-management-key": "ci-reconciler"},
        audit_key_id_places=("userId", "externalIds", "data.id"),
        occurred_as_string=True,
        **NO_LIMIT,
    )
    second = f"Bearer {emulator.config.project_id}:K2second-pipeline"
    post(emulator, f"{ACCESSKEY}/update", {"id": "K1", "name": "x"})
    post(emulator, f"{ACCESSKEY}/update", {"id": "K1", "name": "y"}, auth=second)
    post(emulator, f"{ACCESSKEY}/delete/batch", {"ids": ["K2", "K3"]})
    first, other, batch = search(emulator, oldestFirst=True)["audits"]
    assert first["actorId"] == "ci-reconciler"
    assert other["actorId"] == "mgmt-" + hashlib.sha256(b"K2second-pipeline").hexdigest()[:8]
    assert (first["userId"], first["externalIds"], first["data"]) == ("K1", ["K1"], {"id": "K1"})
    assert (batch["userId"], batch["externalIds"], batch["data"]) == ("", ["K2", "K3"], {"id": ["K2", "K3"]})
    assert isinstance(first["occurred"], str) and first["occurred"].isdigit()
    assert [r["actorId"] for r in search(emulator, actorIds=["ci-reconciler"])["audits"]] == ["ci-reconciler"] * 2


@pytest.mark.slow
def test_search_filters_pages_and_the_30_day_horizon(start_emulator: Any) -> None:
    emulator = start_emulator([], **NO_LIMIT)
    now = int(time.time() * 1000)
    records = [
        {"action": "AccessKeyModified", "actorId": "alice", "userId": "U1", "occurred": now - 31 * DAY_MS},
        {"action": "AccessKeyModified", "actorId": "alice", "userId": "U1", "occurred": str(now - 29 * DAY_MS)},
        {"action": "AccessKeyDeleted", "actorId": "bob", "userId": "U2", "occurred": now - 2 * DAY_MS},
        {"action": "LoginSucceed", "actorId": "bob", "data": {"note": "Needle in Zürich"}, "occurred": now - DAY_MS},
    ]
    stored = admin(emulator, "audit", {"records": records}).json()["audits"]
    assert len(stored) == 4 and stored[1]["occurred"] == now - 29 * DAY_MS

    def ids(**body: Any) -> list[int]:
        return [stored.index(next(s for s in stored if s["ID"] == r["ID"])) for r in search(emulator, **body)["audits"]]

    assert ids() == [3, 2, 1]  # newest first; the 31-day-old one is beyond the trail
    assert ids(oldestFirst=True, **{"from": 0}) == [1, 2, 3]
    assert ids(actions=["AccessKeyModified", "AccessKeyDeleted"]) == [2, 1]
    assert ids(excludedActions=["LoginSucceed"], actorIds=["bob"]) == [2]
    assert ids(userIds=["U1"]) == [1]
    assert ids(text="needle") == [3] and ids(text="ZÜRICH") == [3]
    assert ids(**{"from": str(now - 3 * DAY_MS), "to": now - DAY_MS - 1}) == [2]
    assert ids(size=1, page=1) == [2] and search(emulator, size=1)["total"] == 3
    assert ids(size=2, page=5) == []
    for bad in ({"from": "yesterday"}, {"size": -1}, {"actions": "x"}, {"oldestFirst": "yes"}):
        response = post(emulator, SEARCH, bad)
        assert response.status_code == 400 and response.json()["errorCode"] == "E011003", bad


def test_page_size_defaults_to_1000_and_is_cut_at_1000(start_emulator: Any) -> None:
    emulator = start_emulator([], **NO_LIMIT)
    admin(emulator, "audit", {"records": [{"action": "A"}] * 1005})
    assert len(search(emulator)["audits"]) == 1000  # the Go SDK's documented default
    assert len(search(emulator, size=7)["audits"]) == 7
    big = search(emulator, size=5000)
    assert len(big["audits"]) == 1000 and big["total"] == 1005


def test_hostile_raw_records_come_back_as_given(start_emulator: Any) -> None:
    emulator = start_emulator([], **NO_LIMIT)
    hostile = {"action": "AccessKeyModified", "occurred": "not-a-time", "data": "K1 as text", "externalIds": None}
    admin(emulator, "audit", {"records": [hostile, {"action": "A", "userId": ["not", "a", "string"]}]})
    found = search(emulator, userIds=["K1"], oldestFirst=True)
    assert found["total"] == 0
    first = search(emulator, oldestFirst=True)["audits"][0]
    assert {name: first[name] for name in hostile} == hostile
    assert admin(emulator, "audit", {"records": "x"}).status_code == 400


def test_create_event_validates_and_is_searchable(start_emulator: Any) -> None:
    emulator = start_emulator([], **NO_LIMIT)
    event = {"action": "Reconciled", "type": "warn", "actorId": "ci", "tenantId": "T1", "data": {"run": 7}}
    assert post(emulator, "/v1/mgmt/audit/event", event).json() == {}
    [record] = search(emulator, actions=["Reconciled"])["audits"]
    assert (record["type"], record["actorId"], record["tenants"], record["data"]) == ("warn", "ci", ["T1"], {"run": 7})
    for bad in ({**event, "type": "debug"}, {**event, "action": ""}, {"type": "info"}, {**event, "data": "x"}):
        assert post(emulator, "/v1/mgmt/audit/event", bad).status_code == 400, bad
    assert len(emulator.audit) == 1


def test_console_changes_are_made_and_recorded_as_another_actor(start_emulator: Any) -> None:
    emulator = start_emulator([{"id": "K1", "name": "a"}, {"id": "K2"}], **NO_LIMIT)
    change = {"id": "K1", "changes": {"name": "by-hand", "status": "inactive"}, "actorId": "U2alice"}
    answer = admin(emulator, "console", {**change, "remoteAddress": "203.0.113.9"}).json()
    assert (answer["key"]["name"], answer["key"]["status"]) == ("by-hand", "inactive")
    assert emulator.store.load("K1") == answer["key"]
    deleted = admin(emulator, "console", {"id": "K2", "delete": True}).json()
    assert deleted["key"] is None and len(emulator.store) == 1
    modified, removed = search(emulator, oldestFirst=True)["audits"]
    assert (modified["actorId"], modified["remoteAddress"], modified["device"]) == ("U2alice", "203.0.113.9", "Desktop")
    assert (modified["action"], modified["data"], modified) == (
        "AccessKeyModified",
        {},
        {**answer["audit"], "occurred": str(answer["audit"]["occurred"])},
    )
    assert (removed["action"], removed["actorId"]) == ("AccessKeyDeleted", "U2consoleAdmin")
    for bad in (
        {"id": "K1"},
        {"id": "K1", "changes": {"name": 5}},
        {"id": "K1", "changes": {"status": "gone"}},
        {"id": "K1", "changes": {"name": "x"}, "delete": True},
    ):
        assert admin(emulator, "console", bad).status_code == 400, bad
    assert admin(emulator, "console", {"id": "K404", "changes": {"name": "x"}}).status_code == 404
    assert len(emulator.audit) == 2


def test_audit_search_can_be_forbidden_by_config_or_at_run_time(start_emulator: Any) -> None:
    emulator = start_emulator([], audit_forbidden=True, **NO_LIMIT)
    refused = post(emulator, SEARCH, {})
    assert refused.status_code == 403 and refused.json()["errorCode"] == "E011006"
    assert admin(emulator, "config", {"audit_forbidden": False}).json()["config"]["audit_forbidden"] is False
    assert post(emulator, SEARCH, {}).status_code == 200
    admin(emulator, "config", {"audit_forbidden": True})
    assert post(emulator, SEARCH, {}).status_code == 403
    assert post(emulator, "/v1/mgmt/audit/event", {"action": "A", "type": "info"}).status_code == 200


@pytest.mark.parametrize("retry_after", [True, False])
def test_audit_search_has_its_own_limit_of_10_a_minute(start_emulator: Any, retry_after: bool) -> None:
    emulator = start_emulator([], retry_after=retry_after)
    assert all(post(emulator, SEARCH, {}).status_code == 200 for _ in range(10))
    throttled = post(emulator, SEARCH, {})
    assert throttled.status_code == 429 and throttled.json()["errorCode"] == "E130429"
    assert throttled.headers.get("Retry-After") == ("60" if retry_after else None)
    assert post(emulator, f"{ACCESSKEY}/search", {}).status_code == 200  # other paths are not held back
    stats = http.get(emulator.url + "/_emulator/stats").json()
    assert stats["throttled"] == {"auditSearch": 1, "total": 1} and stats["blocks"]["auditSearch"] == 1
