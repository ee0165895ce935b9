"""The trail stage, pure: records read, changes attributed to people or to this tool's runs,
overwritten changes found, the apply event built, and what people see of it escaped."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import pytest

from reconcile.errors import TransportError
from reconcile.job.session import AUDIT_MAX_ATTEMPTS, RetrySettings, Session
from reconcile.job.trail import TrailSettings, attribute_keys, check_overwrites
from reconcile.output.escape import md_text
from reconcile.output.report import git_state
from reconcile.output.trail import attribution_json, describe, who_changed_what
from reconcile.trail.attribution import MATCH_MARGIN_MS, Found, attribute, covered, tool_run
from reconcile.trail.event import MAX_LISTED_KEYS, RunSource, apply_event
from reconcile.trail.findings import StepStatus
from reconcile.trail.overwrite import Timeline, find_overwrites
from reconcile.trail.records import (
    EVENT_ACTION,
    EVENT_ACTOR,
    KEY_ACTIONS,
    PAGE_SIZE,
    Record,
    TrailShapeError,
    occurred_ms,
    parse_page,
    parse_record,
)

ME = "mgmt-0123abcd"  # the actor Descope records for this tool's management key


def record(key: Any, at: int, actor: str = "U2alice", action: str = "AccessKeyModified", **extra: Any) -> Record:
    return parse_record({"action": action, "actorId": actor, "occurred": at, "data": {"accessKeyId": key}, **extra})


def event(at: int, changed: list[str], start: int, end: int, writer: str | None = ME, **data: Any) -> Record:
    fields = {"runId": "R1", "commit": "c" * 40, "changedKeyIds": changed, "writesFrom": start, "writesTo": end}
    fields.update({"writerActorId": writer} if writer else {})
    return parse_record({"action": EVENT_ACTION, "actorId": EVENT_ACTOR, "occurred": at, "data": {**fields, **data}})


# --- records ---


@pytest.mark.parametrize(("value", "ms"), [(1712345678901, 1712345678901), ("1712345678901", 1712345678901), (5.0, 5)])
def test_occurred_is_milliseconds_as_a_number_or_a_string(value: Any, ms: int) -> None:
    assert occurred_ms(value) == ms


@pytest.mark.parametrize(
    "value",
    [
        True,
        None,
        "yesterday",
        "1.5",
        "-3",
        1.5,
        "١٢",
        [1],
        -1,
        10**20,
        10**400,
        1e300,
        float("inf"),
        "9" * 5000,
        "99999999999999999",
    ],
)
def test_occurred_in_any_other_form_is_a_shape_error(value: Any) -> None:
    with pytest.raises(TrailShapeError):
        occurred_ms(value)


def test_a_key_id_is_found_anywhere_a_record_may_hold_it() -> None:
    raw = {
        "action": "AccessKeysDeleted",
        "occurred": 1,
        "userId": "K1",
        "externalIds": ["K2"],
        "data": {"deleted": {"ids": ["K3", {"deep": "K4"}]}, "K5": "not a value", "n": 5},
    }
    names = parse_record(raw).names
    assert {"K1", "K2", "K3", "K4"} <= names and "K5" not in names, "values only, never mapping keys"
    assert parse_record({"action": "A", "occurred": 1, "externalIds": None, "userId": None}).names == frozenset()


@pytest.mark.parametrize(
    "raw",
    [
        "a string",
        {"occurred": 1},
        {"action": "A", "occurred": 1, "data": "K1 as text"},
        {"action": "A", "occurred": 1, "externalIds": [1]},
        {"action": "A", "occurred": 1, "userId": ["K1"]},
        {"action": "A", "occurred": 1, "actorId": 7},
    ],
)
def test_a_record_in_another_shape_is_refused(raw: Any) -> None:
    with pytest.raises(TrailShapeError):
        parse_record(raw)


def test_pages_are_checked_too() -> None:
    assert parse_page({}) == ([], None)
    bodies: list[Any] = [[], {"audits": {}}, {"audits": [], "total": True}, {"audits": [], "total": "3"}]
    for body in bodies:
        with pytest.raises(TrailShapeError):
            parse_page(body)


# --- attribution ---


def test_the_latest_change_wins_whatever_order_the_page_lists() -> None:
    records = [record("K1", 100, "U2old"), record("K1", 300, "U2new"), record("K1", 200, "U2mid")]
    found = attribute(["K1"], records, KEY_ACTIONS, complete=True)["K1"]
    assert found.found is Found.CHANGED and found.change is not None and found.change.actor == "U2new"
    assert found.run is None


def test_only_configured_actions_count_and_absence_depends_on_completeness() -> None:
    records = [record("K1", 100, action="LoginSucceed")]
    assert attribute(["K1"], records, KEY_ACTIONS, complete=True)["K1"].found is Found.NONE
    assert attribute(["K1"], records, KEY_ACTIONS, complete=False)["K1"].found is Found.NOT_REACHED
    assert attribute(["K1"], records, ["LoginSucceed"], complete=True)["K1"].found is Found.CHANGED


def test_an_apply_event_claims_its_own_write_by_key_window_and_actor() -> None:
    runs = [event(10_000, ["K1", "K2"], 5_000, 6_000)]
    own = attribute(["K1"], [*runs, record("K1", 5_500, ME)], KEY_ACTIONS, complete=True)["K1"]
    assert own.run is not None and own.run.run_id == "R1"
    assert not attribute(["K1"], [*runs, record("K1", 5_600, "U2alice")], KEY_ACTIONS, complete=True)["K1"].run
    late = 6_000 + MATCH_MARGIN_MS + 1
    assert not attribute(["K1"], [*runs, record("K1", late, ME)], KEY_ACTIONS, complete=True)["K1"].run
    assert not attribute(["K3"], [*runs, record("K3", 5_500, ME)], KEY_ACTIONS, complete=True)["K3"].run


def test_an_event_that_could_not_name_every_key_claims_its_actors_writes_in_its_window() -> None:
    runs = [event(10_000, ["K1"], 5_000, 6_000, changedKeysNotListed=3)]
    assert attribute(["K7"], [*runs, record("K7", 5_500, ME)], KEY_ACTIONS, complete=True)["K7"].run
    blind = [event(10_000, ["K1"], 5_000, 6_000, writer=None, changedKeysNotListed=3)]
    assert not attribute(["K7"], [*blind, record("K7", 5_500, ME)], KEY_ACTIONS, complete=True)["K7"].run
    assert attribute(["K1"], [*blind, record("K1", 5_500, "U2x")], KEY_ACTIONS, complete=True)["K1"].run


def test_only_this_tools_events_describe_runs() -> None:
    forged = parse_record({"action": EVENT_ACTION, "actorId": "U2eve", "occurred": 1, "data": {"runId": "R"}})
    assert tool_run(forged) is None
    assert tool_run(event(1, ["K1"], 0, 1)) is not None
    assert tool_run(event(1, "K1", 0, 1)) is None  # type: ignore[arg-type]
    broken = parse_record({"action": EVENT_ACTION, "actorId": EVENT_ACTOR, "occurred": 1, "data": {"runId": "R"}})
    assert tool_run(broken) is None


def test_paging_stops_once_every_key_has_its_latest_change() -> None:
    page = [record("K1", 3), record("K2", 2), event(1, ["K3"], 0, 1)]
    assert covered(["K1", "K2"], page, KEY_ACTIONS)
    assert not covered(["K1", "K3"], page, KEY_ACTIONS), "an event names keys but is not a change"


# --- overwritten changes ---


def _timeline(**keys: tuple[int, int, int]) -> Timeline:
    timeline = Timeline()
    for key_id, (read, sent, done) in keys.items():
        timeline.mark_read([key_id], read)
        timeline.mark_sent(key_id, sent)
        timeline.mark_done(key_id, done)
    return timeline


def test_another_actors_change_between_read_and_write_is_overwritten() -> None:
    timeline = _timeline(K1=(1_000, 3_000, 4_500), K2=(1_000, 3_100, 4_400))
    records = [
        record("K1", 500, "U2before"),  # before the read: the plan saw it
        record("K1", 3_050, "U2bob", remoteAddress="192.0.2.1"),  # while the write was in flight
        record("K1", 4_490, ME),  # this run's write, served last
        record("K2", 4_390, ME),
        record("K1", 9_000, "U2after"),  # after the write: new drift, not overwritten
    ]
    check = find_overwrites(timeline, records, KEY_ACTIONS)
    assert check.writer == ME and check.unseen == ()
    assert [(o.key_id, o.change.actor, o.change.remote) for o in check.overwritten] == [("K1", "U2bob", "192.0.2.1")]


def test_keys_whose_write_the_trail_does_not_show_are_not_checked() -> None:
    timeline = _timeline(K1=(1_000, 3_000, 4_000), K2=(1_000, 3_000, 4_000))
    check = find_overwrites(timeline, [record("K1", 3_990, ME), record("K2", 2_000, "U2bob")], KEY_ACTIONS)
    assert check.writer == ME and check.unseen == ("K2",) and check.overwritten == ()
    assert find_overwrites(timeline, [], KEY_ACTIONS).unseen == ("K1", "K2")


# --- the event ---


def test_the_event_names_the_run_caps_the_keys_and_leaves_out_what_is_unknown() -> None:
    source = RunSource.of(
        "R1",
        "1.2.3",
        {"commit": "c" * 40, "dirty": False, "remote": "https://example.com/x.git"},
        {"GITHUB_REPOSITORY": "acme/keys", "GITHUB_RUN_ID": "42", "GITHUB_SERVER_URL": "https://github.com/"},
    )
    changed = [f"K{i:03}" for i in range(MAX_LISTED_KEYS + 5)]
    timeline = _timeline(K000=(1, 10, 20), K001=(1, 15, 30))
    body = apply_event(
        source, outcomes={"updated": 105}, changed=changed, timeline=timeline, writer=None, overwritten=0, warn=False
    )
    data = body["data"]
    assert (body["action"], body["actorId"], body["type"]) == (
        EVENT_ACTION,
        EVENT_ACTOR,
        "info",
    ) and "tenantId" not in body
    assert len(data["changedKeyIds"]) == MAX_LISTED_KEYS and data["changedKeysNotListed"] == 5
    assert (data["writesFrom"], data["writesTo"]) == (10, 30) and "writerActorId" not in data
    assert data["repository"] == "acme/keys" and data["runUrl"] == "https://github.com/acme/keys/actions/runs/42"
    local = RunSource.of("R2", "1.2.3", {"commit": "d" * 40, "remote": "git@example.com:x.git"}, {})
    body = apply_event(
        local, outcomes={}, changed=["K1"], timeline=timeline, writer=ME, overwritten=1, warn=True, tenant="T1"
    )
    assert body["tenantId"] == "T1" and body["type"] == "warn"
    assert body["data"]["repository"] == "git@example.com:x.git" and "runUrl" not in body["data"]


def test_the_git_remote_is_named_without_its_credentials(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(
        ["git", "-C", str(tmp_path), "commit", "-q", "--allow-empty", "-m", "x"],
        check=True,
        env={
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@e",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@e",
            "PATH": "/usr/bin:/bin",
        },
    )
    url = "https://x-access-token:ghs_SECRET@github.com:8443/acme/keys.git"
    subprocess.run(["git", "-C", str(tmp_path), "remote", "add", "origin", url], check=True)
    (tmp_path / "keys.yaml").write_text("version: 1\nkeys: []\n")
    state = git_state([str(tmp_path / "keys.yaml")])
    assert state is not None and state["remote"] == "https://github.com:8443/acme/keys.git"


# --- what people see ---


def test_descriptions_say_whose_change_it_was_and_escape_the_trail() -> None:
    own = attribute(["K1"], [event(10_000, ["K1"], 5_000, 6_000), record("K1", 5_500, ME)], KEY_ACTIONS, complete=True)
    text = describe(attribution_json(own["K1"]), str)
    assert text.startswith("changed 1970-01-01 00:00:05.500 UTC by descope-reconcile run R1, commit cccccccccccc")
    hostile = "U2*eve*|<b>`"
    other = attribute(["K1"], [record("K1", 1, hostile, remoteAddress="[x](http://evil)")], KEY_ACTIONS, complete=True)
    markdown = describe(attribution_json(other["K1"]), md_text)
    assert "U2\\*eve\\*\\|\\<b\\>\\`" in markdown and "\\[x\\](http://evil)" in markdown
    assert markdown.endswith("(not this tool)")
    lines = who_changed_what([], {"status": "unavailable", "reason": "HTTP 403 <no>", "pages": 0, "records": 0})
    assert "> attribution unavailable: HTTP 403 \\<no\\>" in lines
    assert who_changed_what([], {"status": "notNeeded", "reason": None, "pages": 0, "records": 0}) == []


# --- degrading, never failing ---


class _SilentTrail:
    """A client whose audit search never answers (a timeout each time)."""

    def __init__(self) -> None:
        self.searches = 0

    async def search_audit(self, query: Any) -> Any:
        self.searches += 1
        raise TransportError("POST /v1/mgmt/audit/search: no complete answer: ReadTimeout", ambiguous=True)


def test_an_audit_search_that_times_out_makes_attribution_unavailable_after_two_attempts() -> None:
    client = _SilentTrail()
    settings = TrailSettings(search=True, pages=5, actions=KEY_ACTIONS, event=False, tenant=None)

    async def attribute() -> Any:
        session = Session(client, RetrySettings(rate=100, max_attempts=6, deadline=300, timeout=1))  # type: ignore[arg-type]
        return await attribute_keys(session, ["K1"], settings)

    step, found = asyncio.run(attribute())
    assert step.status is StepStatus.UNAVAILABLE and found == {}
    assert step.reason is not None and step.reason.startswith("audit search failed: ") and "ReadTimeout" in step.reason
    assert client.searches == AUDIT_MAX_ATTEMPTS


class _RepeatingTrail:
    """A server that ignores `page`: every search answers the same full page, and `total` says more."""

    def __init__(self, audits: list[dict[str, Any]]) -> None:
        self.audits, self.searches = audits, 0

    async def search_audit(self, query: Any) -> Any:
        self.searches += 1
        return {"audits": self.audits, "total": 10 * len(self.audits)}


def test_a_page_repeated_is_read_once_and_an_overwritten_change_said_once() -> None:
    def raw(key: str, at: int, actor: str, ident: str) -> dict[str, Any]:
        return {
            "ID": ident,
            "action": "AccessKeyModified",
            "actorId": actor,
            "occurred": at,
            "data": {"accessKeyId": key},
        }

    filler = [raw(f"N{i}", 1, "U2bot", f"f{i}") for i in range(PAGE_SIZE - 2)]
    client = _RepeatingTrail([raw("K1", 150, ME, "own"), raw("K1", 120, "U2bob", "bob"), *filler])
    settings = TrailSettings(search=True, pages=5, actions=KEY_ACTIONS, event=False, tenant=None)

    async def check() -> Any:
        session = Session(client, RetrySettings(rate=100, max_attempts=6, deadline=300, timeout=1))  # type: ignore[arg-type]
        return await check_overwrites(session, _timeline(K1=(100, 140, 160)), settings)

    step, found = asyncio.run(check())
    assert [(item.key_id, item.change.actor) for item in found.overwritten] == [("K1", "U2bob")]
    assert client.searches == 2, "a page of nothing new ends the reading: the audit budget is 10 a minute"
    assert step.status is StepStatus.PARTIAL and step.records == PAGE_SIZE
