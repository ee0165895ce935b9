"""The trail stage, pure: records read, changes attributed to people or to this tool's runs,
overwritten changes found, the apply event built, and what people see of it escaped."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from reconcile.errors import TransportError
from reconcile.job.session import AUDIT_MAX_ATTEMPTS, RetrySettings, Session
from reconcile.job.trail import TrailSettings, attribute_keys, check_overwrites
from reconcile.output.escape import md_text
from reconcile.output.report import git_state
from reconcile.output.trail import attribution_json, describe, who_changed_what
from reconcile.trail.attribution import Claim, Found, attribute, covered, tool_run
from reconcile.trail.event import MAX_LISTED_KEYS, RunSource, apply_event
from reconcile.trail.findings import StepStatus
from reconcile.trail.overwrite import find_overwrites
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
from reconcile.trail.writes import CLOCK_SKEW_MS, Timeline, WriteKind

ME = "mgmt-0123abcd"  # the actor Descope records for this tool's management key


def record(key: Any, at: int, actor: str = "U2alice", action: str = "AccessKeyModified", **extra: Any) -> Record:
    return parse_record({"action": action, "actorId": actor, "occurred": at, "data": {"accessKeyId": key}, **extra})


def event(at: int, changed: list[str], start: int, end: int, writer: str | None = ME, **data: Any) -> Record:
    """An apply event whose every listed key had one update between `start` and `end`."""
    writes = {key: [["update", start, end]] for key in changed} if isinstance(changed, list) else {}
    fields = {
        "runId": "R1",
        "commit": "c" * 40,
        "changedKeyIds": changed,
        "writesFrom": start,
        "writesTo": end,
        "writes": writes,
    }
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


def test_an_apply_event_claims_its_own_write_by_key_kind_window_and_actor() -> None:
    runs = [event(10_000, ["K1", "K2"], 5_000, 6_000)]
    own = attribute(["K1"], [*runs, record("K1", 5_500, ME)], KEY_ACTIONS, complete=True)["K1"]
    assert own.claim is Claim.OWN and own.run is not None and own.run.run_id == "R1"
    other = attribute(["K1"], [*runs, record("K1", 5_600, "U2alice")], KEY_ACTIONS, complete=True)["K1"]
    assert other.claim is Claim.OTHER and other.run is None
    late = 6_000 + CLOCK_SKEW_MS + 1
    assert attribute(["K1"], [*runs, record("K1", late, ME)], KEY_ACTIONS, complete=True)["K1"].claim is Claim.OTHER
    assert attribute(["K3"], [*runs, record("K3", 5_500, ME)], KEY_ACTIONS, complete=True)["K3"].claim is Claim.OTHER
    deleted = record("K1", 5_500, ME, action="AccessKeyDeleted")
    assert attribute(["K1"], [*runs, deleted], KEY_ACTIONS, complete=True)["K1"].claim is Claim.OTHER, "kind"


def test_a_run_that_did_not_prove_its_writer_claims_only_the_one_record_of_its_write() -> None:
    blind = [event(10_000, ["K1"], 5_000, 6_000, writer=None)]
    alone = attribute(["K1"], [*blind, record("K1", 5_500, ME)], KEY_ACTIONS, complete=True)["K1"]
    assert alone.claim is Claim.OWN
    # someone else's change right after the run's write: which record is the run's cannot be told
    both = [*blind, record("K1", 6_200, "U2alice"), record("K1", 5_500, ME)]
    latest = attribute(["K1"], both, KEY_ACTIONS, complete=True)["K1"]
    assert latest.claim is Claim.UNKNOWN and latest.change is not None and latest.change.actor == "U2alice"
    text = describe(attribution_json(latest), str)
    assert "by U2alice" in text and "(not checked: this tool wrote this key then, in descope-reconcile run R1" in text
    assert attribution_json(latest)["change"]["byThisTool"] is None


def test_an_event_of_an_older_version_claims_by_its_span_and_its_writer() -> None:
    old = parse_record(
        {
            "action": EVENT_ACTION,
            "actorId": EVENT_ACTOR,
            "occurred": 10_000,
            "data": {
                "runId": "R0",
                "changedKeyIds": ["K1"],
                "writesFrom": 5_000,
                "writesTo": 6_000,
                "writerActorId": ME,
            },
        }
    )
    assert attribute(["K1"], [old, record("K1", 5_500, ME)], KEY_ACTIONS, complete=True)["K1"].claim is Claim.OWN
    assert attribute(["K7"], [old, record("K7", 5_500, ME)], KEY_ACTIONS, complete=True)["K7"].claim is Claim.OTHER


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


def _timeline(kind: WriteKind = WriteKind.UPDATE, **keys: tuple[int, int, int]) -> Timeline:
    timeline = Timeline()
    for key_id, (read, sent, done) in keys.items():
        timeline.mark_read([key_id], read)
        timeline.mark_write(key_id, kind, sent, done)
    return timeline


def test_another_actors_change_between_read_and_write_is_overwritten() -> None:
    timeline = _timeline(K1=(1_000, 3_000, 4_500), K2=(1_000, 3_100, 4_400))
    records = [
        record("K1", 500, "U2before"),  # before the read: the plan saw it
        record("K1", 3_050, "U2bob", remoteAddress="192.0.2.1"),  # while the write was in flight
        record("K1", 4_490, ME),  # this run's write, served last
        record("K2", 4_390, ME),  # the one record of K2's write: it proves the writer
        record("K1", 9_000, "U2after"),  # after the write: new drift, not overwritten
    ]
    check = find_overwrites(timeline, records, KEY_ACTIONS)
    assert check.writer == ME and check.not_checked == {}
    assert [(o.key_id, o.change.actor, o.change.remote) for o in check.overwritten] == [("K1", "U2bob", "192.0.2.1")]


def test_a_single_write_with_another_record_beside_it_is_not_checked_never_overwritten() -> None:
    """The vote this replaces took U2bob's later edit, nearer the answer, for the run's own."""
    timeline = _timeline(K1=(1_000, 3_000, 4_000))
    records = [record("K1", 3_010, ME), record("K1", 4_100, "U2bob")]
    check = find_overwrites(timeline, records, KEY_ACTIONS)
    assert check.writer is None and check.overwritten == () and list(check.not_checked) == ["K1"]


def test_a_write_the_trail_does_not_show_yet_is_not_checked() -> None:
    timeline = _timeline(K1=(1_000, 3_000, 4_000), K2=(1_000, 3_000, 4_000))
    check = find_overwrites(timeline, [record("K1", 3_990, ME), record("K2", 2_000, "U2bob")], KEY_ACTIONS)
    assert check.writer == ME and list(check.not_checked) == ["K2"] and check.overwritten == ()
    assert list(find_overwrites(timeline, [], KEY_ACTIONS).not_checked) == ["K1", "K2"]
    capped = find_overwrites(timeline, [record("K1", 3_990, ME)], KEY_ACTIONS, read_since=2_000)
    assert "not read to the end" in capped.not_checked["K1"]


@pytest.mark.parametrize(
    ("kind", "action"),
    [
        (WriteKind.STATUS, "AccessKeyModified"),
        (WriteKind.DELETE, "AccessKeyDeleted"),
        (WriteKind.ROTATE, "AccessKeyModified"),
    ],
)
def test_a_write_that_pins_no_field_after_someone_elses_change_is_not_an_overwrite(
    kind: WriteKind, action: str
) -> None:
    timeline = _timeline(kind, K1=(1_000, 3_000, 4_000), K2=(1_000, 3_000, 4_000))
    records = [record("K1", 2_000, "U2bob"), record("K1", 3_500, ME, action), record("K2", 3_500, ME, action)]
    check = find_overwrites(timeline, records, KEY_ACTIONS)
    assert check.overwritten == () and [(c.key_id, c.write) for c in check.meanwhile] == [("K1", kind)]
    assert check.writer == ME and check.not_checked == {}


def test_a_record_of_another_kind_is_not_the_runs_write() -> None:
    """The run deleted K1: a modification in the delete's window is someone else's, never its own."""
    timeline = _timeline(WriteKind.DELETE, K1=(1_000, 3_000, 4_000))
    check = find_overwrites(timeline, [record("K1", 3_500, ME)], KEY_ACTIONS)
    assert check.writer is None and list(check.not_checked) == ["K1"]


def test_the_same_actors_other_change_in_between_is_overwritten_too() -> None:
    """Another run with the same management key: its change is not this run's write."""
    timeline = _timeline(K1=(1_000, 3_000, 4_000), K2=(1_000, 3_000, 4_000))
    records = [record("K1", 1_500, ME), record("K1", 3_500, ME), record("K2", 3_500, ME)]
    check = find_overwrites(timeline, records, KEY_ACTIONS)
    assert [(o.key_id, o.change.occurred) for o in check.overwritten] == [("K1", 1_500)]


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
    timeline.mark_write("K000", WriteKind.STATUS, 22, 25)
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
    assert data["writes"]["K000"] == [["update", 10, 20], ["status", 22, 25]] and data["writes"]["K002"] == []
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
    assert text == f"changed 1970-01-01 00:00:05.500 UTC by {ME} (descope-reconcile run R1, commit cccccccccccc)"
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


BASE = int(time.time() * 1000) - 120_000  # two minutes ago


def test_a_page_repeated_is_read_once_and_an_overwritten_change_said_once() -> None:
    def raw(key: str, at: int, actor: str, ident: str) -> dict[str, Any]:
        return {
            "ID": ident,
            "action": "AccessKeyModified",
            "actorId": actor,
            "occurred": BASE + at,  # (within the window the check searches: the last 30 days)
            "data": {"accessKeyId": key},
        }

    filler = [raw(f"N{i}", 1, "U2bot", f"f{i}") for i in range(PAGE_SIZE - 2)]
    client = _RepeatingTrail([raw("K1", 1_050, ME, "own"), raw("K1", 120, "U2bob", "bob"), *filler])
    settings = TrailSettings(search=True, pages=5, actions=KEY_ACTIONS, event=False, tenant=None)

    async def check() -> Any:
        session = Session(client, RetrySettings(rate=100, max_attempts=6, deadline=300, timeout=1))  # type: ignore[arg-type]
        return await check_overwrites(session, _timeline(K1=(BASE + 100, BASE + 1_000, BASE + 1_100)), settings)

    step, found = asyncio.run(check())
    assert [(item.key_id, item.change.actor) for item in found.overwritten] == [("K1", "U2bob")]
    assert client.searches == 2, "a page of nothing new ends the reading: the audit budget is 10 a minute"
    assert step.status is StepStatus.PARTIAL and step.records == PAGE_SIZE
