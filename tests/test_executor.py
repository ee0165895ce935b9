"""The executor (reconcile/apply/executor.py) against a fake client: the order and size of its
batches, the re-check before each batch, and a deletion batch whose answer is lost. No server, no
network: each test drives one plan through `Executor.run` and reads what the client was asked."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from reconcile.apply.calls import KeyResult
from reconcile.apply.executor import BATCH_SIZE, GONE_REASON, STALE_REASON, Executor
from reconcile.apply.limiter import Limits
from reconcile.apply.retry import RetryPolicy
from reconcile.errors import NotFoundError, ServerError, TransportError
from reconcile.model import PruneScope, SourceLocation
from reconcile.plan.diff import KeyPlan, Outcome, plan_prune
from reconcile.secrets.secret import Secret
from tests import test_plan as plan_tests

SCOPE_AT = SourceLocation("desired/keys.yaml", 3)


def server_key(key_id: str, **fields: Any) -> dict[str, Any]:
    return plan_tests.server_key(id=key_id, name=f"ci-{key_id}", **fields)


class FakeClient:
    """A project's keys in memory, every call logged as (operation, ids). `lose_deletes` answers
    that many deletion batches with a lost answer (after deleting, when `lost_after_delete`)."""

    def __init__(self, keys: Sequence[Mapping[str, Any]]) -> None:
        self.keys = {str(key["id"]): dict(key) for key in keys}
        self.calls: list[tuple[str, tuple[str, ...]]] = []
        self.lose_deletes = 0
        self.lost_after_delete = True

    async def search_access_keys(self) -> list[dict[str, Any]]:
        self.calls.append(("search", ()))
        return [dict(key) for key in self.keys.values()]

    async def load_access_key(self, key_id: str) -> dict[str, Any]:
        self.calls.append(("load", (key_id,)))
        if key_id not in self.keys:
            raise NotFoundError(404, f"no key {key_id}", error_code="E011004")
        return dict(self.keys[key_id])

    async def update_access_key(self, request_body: Mapping[str, Any]) -> dict[str, Any]:
        key_id = str(request_body["id"])
        self.calls.append(("update", (key_id,)))
        self.keys[key_id].update(request_body)
        return dict(self.keys[key_id])

    async def set_status(self, key_ids: Sequence[str], status: str) -> None:
        self.calls.append((status, tuple(key_ids)))
        for key_id in key_ids:
            self.keys[key_id]["status"] = status

    async def delete_access_keys(self, key_ids: Sequence[str]) -> None:
        self.calls.append(("delete", tuple(key_ids)))
        if unknown := [key_id for key_id in key_ids if key_id not in self.keys]:  # all or nothing, as the API
            raise NotFoundError(404, f"unknown keys {unknown}", error_code="E011004")
        if self.lose_deletes and not self.lost_after_delete:
            self.lose_deletes -= 1
            raise ServerError(503, "unavailable")
        for key_id in key_ids:
            del self.keys[key_id]
        if self.lose_deletes:
            self.lose_deletes -= 1
            raise TransportError("the connection dropped before the answer", ambiguous=True)

    async def create_access_key(self, request_body: Mapping[str, Any]) -> tuple[dict[str, Any], Secret]:
        raise AssertionError("no plan here creates a key")

    async def rotate_access_key(self, key_id: str) -> tuple[dict[str, Any], Secret]:
        raise AssertionError("no plan here rotates a key")

    def batches(self, operation: str) -> list[tuple[str, ...]]:
        return [ids for name, ids in self.calls if name == operation]


def pruned(keys: Sequence[Mapping[str, Any]], action: str) -> list[KeyPlan]:
    """The plan of a prune scope that owns every key: each deleted or deactivated."""
    scope = PruneScope(SCOPE_AT, action=action, name_prefix="ci-")
    return [plan_prune(key, [scope]) for key in keys]


def run(
    client: FakeClient, plan: Sequence[KeyPlan], *, recheck: bool = False, max_attempts: int = 3
) -> list[KeyResult]:
    async def go() -> list[KeyResult]:
        policy = RetryPolicy(
            Limits(10_000), max_attempts=max_attempts, deadline=30, stop=asyncio.Event(), backoff=lambda _: 0.0
        )
        return await Executor(client, policy, concurrency=4, recheck=recheck).run(plan)

    return asyncio.run(go())


def outcomes(results: Sequence[KeyResult]) -> dict[str, Outcome]:
    return {str(result.plan.key.id): result.outcome for result in results}


@pytest.mark.parametrize("count", [BATCH_SIZE, BATCH_SIZE + 1, 2 * BATCH_SIZE + 50])
def test_status_changes_and_deletions_go_in_batches_of_at_most_100_statuses_first(count: int) -> None:
    keys = [server_key(f"K{i:04d}") for i in range(2 * count)]
    client = FakeClient(keys)
    plan = pruned(keys[:count], "deactivate") + pruned(keys[count:], "delete")
    results = run(client, plan)

    expected = [min(BATCH_SIZE, count - start) for start in range(0, count, BATCH_SIZE)]
    assert [len(ids) for ids in client.batches("inactive")] == expected
    assert [len(ids) for ids in client.batches("delete")] == expected
    assert sorted(sum(client.batches("inactive"), ())) == [key["id"] for key in keys[:count]]
    assert sorted(sum(client.batches("delete"), ())) == [key["id"] for key in keys[count:]]
    operations = [name for name, _ in client.calls]
    assert operations == ["inactive"] * len(expected) + ["delete"] * len(expected)  # deletions last
    assert set(outcomes(results[:count]).values()) == {Outcome.DEACTIVATED}
    assert set(outcomes(results[count:]).values()) == {Outcome.DELETED}
    assert [str(result.plan.key.id) for result in results] == [key["id"] for key in keys]  # in plan order
    assert all(result.attempts == 1 for result in results)


def test_a_deletion_batch_whose_answer_is_lost_counts_the_keys_that_are_gone() -> None:
    """Deleted, answer lost: the retry is refused (the ids are unknown now); one search shows the
    keys are gone, so they are deleted, not failed, and nothing is deleted twice."""
    keys = [server_key(f"K{i}") for i in range(3)]
    client = FakeClient([*keys, server_key("K9")])
    client.lose_deletes = 1
    results = run(client, pruned(keys, "delete"))

    assert client.batches("delete") == [("K0", "K1", "K2"), ("K0", "K1", "K2")]  # sent, then retried
    assert [name for name, _ in client.calls][-1] == "search"  # then looked for
    assert outcomes(results) == {"K0": Outcome.DELETED, "K1": Outcome.DELETED, "K2": Outcome.DELETED}
    assert all(result.attempts == 2 and result.error is None for result in results)
    assert set(client.keys) == {"K9"}


def test_a_deletion_batch_that_failed_without_deleting_stays_failed() -> None:
    keys = [server_key(f"K{i}") for i in range(2)]
    client = FakeClient(keys)
    client.lose_deletes, client.lost_after_delete = 5, False  # every attempt: a 503, nothing deleted
    results = run(client, pruned(keys, "delete"), max_attempts=2)

    assert len(client.batches("delete")) == 2 and client.batches("search") == [()]
    assert outcomes(results) == {"K0": Outcome.FAILED, "K1": Outcome.FAILED}
    errors = [result.error for result in results]
    assert all(error is not None and error.status == 503 and "gave up after 2" in error.message for error in errors)
    assert set(client.keys) == {"K0", "K1"}


@pytest.mark.parametrize("action", ["deactivate", "delete"])
def test_with_recheck_each_key_is_read_before_its_batch_and_a_moved_or_gone_key_is_left_out(action: str) -> None:
    keys = [server_key(f"K{i}") for i in range(4)]
    client = FakeClient(keys)
    plan = pruned(keys, action)
    client.keys["K1"]["description"] = "changed by hand after the plan"
    del client.keys["K2"]  # deleted by someone else after the plan
    results = run(client, plan, recheck=True)

    batch = client.batches("inactive" if action == "deactivate" else "delete")
    assert batch == [("K0", "K3")]
    reads = [ids[0] for name, ids in client.calls if name == "load"]
    assert sorted(reads) == ["K0", "K1", "K2", "K3"]
    assert [name for name, _ in client.calls][: len(reads)] == ["load"] * len(reads)  # every read before the batch
    done = Outcome.DEACTIVATED if action == "deactivate" else Outcome.DELETED
    assert outcomes(results) == {"K0": done, "K1": Outcome.STALE, "K2": Outcome.STALE, "K3": done}
    reasons = {str(result.plan.key.id): result.error.message for result in results if result.error}
    assert reasons == {"K1": STALE_REASON, "K2": GONE_REASON}
    assert client.keys["K1"]["description"] == "changed by hand after the plan"
    assert ("K1" in client.keys) and client.keys["K1"]["status"] == "active"  # not written at all


def test_without_recheck_no_key_is_read_before_a_batch() -> None:
    keys = [server_key(f"K{i}") for i in range(3)]
    client = FakeClient(keys)
    run(client, pruned(keys, "deactivate"))
    assert [name for name, _ in client.calls] == ["inactive"]
