"""Faults never lie: whatever a faulted request answers, the server's state agrees with it.

A 200 means the change was made and the body is the real one (a slow answer is the real answer,
late: the old emulator answered a slow update with 200 `{}` and never made it). An error or a lost
answer means the change was not made, unless the fault struck after it was (`fault_after_apply`),
and then the request log and the audit trail both say it was.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from reconcile.emulator import FAULT_KINDS, Emulator
from tests.test_emulator import exchange, post

ACCESSKEY = "/v1/mgmt/accesskey"
SEED = [{"id": "K1", "name": "a", "cleartext": "old-secret"}]
# What the client sees, and what the request log says, for each fault that loses the answer.
LOST = {
    "500": (500, 500),
    "502": (502, 502),
    "503": (503, 503),
    "504": (504, 504),
    "close": ("dropped", "close"),
    "slow-504": (504, 504),
}


@dataclass(frozen=True)
class Mutation:
    path: str
    body: dict[str, Any]
    made: Callable[[Emulator], bool]  # the change is in the server's state
    real: Callable[[Emulator, Any], bool]  # a 200 body is the one the work produced


def _by_name(emulator: Emulator, name: str) -> dict[str, Any] | None:
    return next((key for key in emulator.store.all() if key["name"] == name), None)


MUTATIONS = {
    "update": Mutation(
        f"{ACCESSKEY}/update",
        {"id": "K1", "name": "renamed"},
        lambda e: e.store.load("K1")["name"] == "renamed",
        lambda e, body: body == {"key": e.store.load("K1")},
    ),
    "create": Mutation(
        f"{ACCESSKEY}/create",
        {"name": "new", "expireTime": 0, "roleNames": ["r"], "keyTenants": [], "userId": None},
        lambda e: _by_name(e, "new") is not None,
        lambda e, body: body["key"] == _by_name(e, "new") and exchange(e, body["cleartext"]).status_code == 200,
    ),
    "rotate": Mutation(
        f"{ACCESSKEY}/rotate",
        {"id": "K1"},
        lambda e: exchange(e, "old-secret").status_code == 401,
        lambda e, body: body["key"] == e.store.load("K1") and exchange(e, body["cleartext"]).status_code == 200,
    ),
    "delete": Mutation(
        f"{ACCESSKEY}/delete",
        {"id": "K1"},
        lambda e: len(e.store) == 0,
        lambda e, body: body == {},
    ),
    "deactivate-batch": Mutation(
        f"{ACCESSKEY}/deactivate/batch",
        {"ids": ["K1"]},
        lambda e: e.store.load("K1")["status"] == "inactive",
        lambda e, body: body == {},
    ),
    "audit-event": Mutation(
        "/v1/mgmt/audit/event",
        {"action": "Custom", "type": "info", "actorId": "someone", "tenantId": "T1"},
        lambda e: any(r["action"] == "Custom" for r in e.audit.all(occurred_as_string=False)),
        lambda e, body: body == {},
    ),
}


def send(emulator: Emulator, path: str, body: Any, timeout: float = 5.0) -> tuple[int | str, Any]:
    """(status, JSON body or text), or ("dropped", None) when no answer came."""
    try:
        response = post(emulator, path, body, timeout=timeout)
    except httpx.TransportError:
        return "dropped", None
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, response.text


@pytest.mark.parametrize("after_apply", [0.0, 1.0], ids=["not-applied", "applied-then-failed"])
@pytest.mark.parametrize("kind", FAULT_KINDS)
@pytest.mark.parametrize("name", MUTATIONS)
def test_a_faulted_mutation_answers_what_the_state_shows(
    start_emulator: Any, name: str, kind: str, after_apply: float
) -> None:
    mutation = MUTATIONS[name]
    emulator = start_emulator(
        SEED, fault_rate=1.0, fault_kinds=(kind,), fault_after_apply=after_apply, slow_seconds=0.3
    )
    status, body = send(emulator, mutation.path, mutation.body)  # the client waits longer than the stall
    [recorded] = emulator.requests
    emulator.config.fault_rate = 0.0  # the checks below talk to the server too
    made = mutation.made(emulator)
    if kind == "slow":  # late, but the real answer
        assert status == 200 and made and mutation.real(emulator, body)
        assert recorded.status == 200
    else:
        assert (status, recorded.status) == LOST[kind]
        assert made == (after_apply == 1.0)
    assert (recorded.fault, recorded.applied) == (kind, made)
    assert len(emulator.audit) == int(made)  # the trail tells what happened, not what was answered
    assert emulator.stats()["faults"].get("appliedThenFailed", 0) == int(made and kind != "slow")


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_a_faulted_read_is_either_the_real_answer_or_an_error(start_emulator: Any, kind: str) -> None:
    emulator = start_emulator(SEED, fault_rate=1.0, fault_kinds=(kind,), fault_after_apply=1.0, slow_seconds=0.3)
    status, body = send(emulator, f"{ACCESSKEY}/search", {})
    if kind == "slow":
        assert status == 200 and body == {"keys": emulator.store.all()}
    else:
        assert status != 200
    assert emulator.requests[0].applied is None  # a read changes nothing, faulted or not


@pytest.mark.parametrize("slow_applies", ["before", "after"])
def test_a_slow_rotate_the_client_gave_up_on_still_happens(start_emulator: Any, slow_applies: str) -> None:
    """The answer was lost, the rotate was not: before the stall, or at its end (after a retry
    could already have come and gone, the nastiest order for a client)."""
    emulator = start_emulator(SEED, fault_rate=1.0, fault_kinds=("slow",), slow_seconds=2.0, slow_applies=slow_applies)
    status, _ = send(emulator, f"{ACCESSKEY}/rotate", {"id": "K1"}, timeout=0.2)
    assert status == "dropped"
    emulator.config.fault_rate = 0.0
    assert exchange(emulator, "old-secret").status_code == (401 if slow_applies == "before" else 200)
    deadline = time.monotonic() + 5
    while not any(r.path.endswith("/rotate") for r in emulator.requests) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert exchange(emulator, "old-secret").status_code == 401
    [rotate] = [r for r in emulator.requests if r.path.endswith("/rotate")]
    assert (rotate.status, rotate.fault, rotate.applied) == (200, "slow", True)


def test_a_fault_refusing_invalid_work_stays_an_error(start_emulator: Any) -> None:
    """Applied-then-failed cannot make an invalid request succeed: nothing is changed."""
    emulator = start_emulator(SEED, fault_rate=1.0, fault_kinds=("503",), fault_after_apply=1.0)
    status, _ = send(emulator, f"{ACCESSKEY}/update", {"id": "K1", "name": 5})
    assert status == 503 and emulator.requests[0].applied is False
    assert emulator.store.load("K1")["name"] == "a" and len(emulator.audit) == 0


def test_a_request_that_never_fully_arrived_is_neither_made_nor_logged(start_emulator: Any) -> None:
    """A client killed mid-request: the real API never sees a request, so neither does the log."""
    emulator = start_emulator(SEED)
    host, port = emulator.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as connection:
        connection.sendall(
            f"POST {ACCESSKEY}/update HTTP/1.1\r\nHost: x\r\nAuthorization: {emulator.auth_header}\r\n"
            'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"id": "K1"'.encode()
        )
        connection.shutdown(socket.SHUT_WR)
        assert connection.recv(100) == b""  # closed without an answer
    assert emulator.requests == [] and emulator.store.load("K1")["name"] == "a"
