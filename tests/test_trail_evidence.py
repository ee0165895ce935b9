"""Issue 20's reproductions, through the real command line against the emulator: the tool's own
records in the trail are told by evidence (key, kind of change, the write's window, the writer once
proven), never by proximity or a vote; what it cannot tell it says (`not checked`); status changes
are never overwrites; creates and rotations are credited; a partial read says so; the apply event
never holds a finished run.

Where a lagging, partial or crowded trail is needed, the emulator's answers are intercepted:
another actor's change made at an exact moment of the run, the run's own records held back from
searches, a search answer cut short, a 429 on the event."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reconcile.emulator.answers import Answer
from reconcile.emulator.config import actor_id_for
from reconcile.emulator.server import Call, Emulator
from tests.conftest import cli_env, load_report, run_cli, write_desired

KEYS_SEARCH = "/v1/mgmt/accesskey/search"
UPDATE = "/v1/mgmt/accesskey/update"
AUDIT_SEARCH = "/v1/mgmt/audit/search"
AUDIT_EVENT = "/v1/mgmt/audit/event"
Hook = Callable[[str, Any, Answer], Answer]


def hook(emulator: Emulator, after: Hook) -> None:
    """Every API answer passes through `after(path, body, answer)` before it is sent."""

    def answer(call: Call) -> Answer:
        return after(call.path, call.body, call.forward())

    emulator.intercept("/v1/*", answer)


def console(emulator: Emulator, key_id: str, actor: str, **changes: Any) -> None:
    """A change "made in the console" by another actor, from inside the server (any thread)."""
    body = {"id": key_id, "actorId": actor, "remoteAddress": "203.0.113.7", "changes": changes}
    answer = Emulator.answer(emulator, "POST", "/_emulator/console", "", {}, body)
    assert answer.status == 200, answer.body


def writer(emulator: Emulator) -> str:
    return actor_id_for(emulator.config, emulator.config.management_key)


def events(emulator: Emulator) -> list[dict[str, Any]]:
    return [r for r in emulator.audit.all(occurred_as_string=False) if r["action"] == "DescopeReconcileApply"]


def test_someone_elses_edit_just_after_the_write_is_never_the_tools_own(start_emulator: Any, tmp_path: Path) -> None:
    """1, false overwrite: the update is served, U2bob edits the key, then the answer comes back.
    The vote took U2bob's record (nearest the answer) for the run's own: exit 4 for the run's own
    write, U2bob recorded as the tool's writer, and the next plan credited U2bob's edit to the tool."""
    emulator = start_emulator([{"id": "K1", "name": "old"}])

    def edit_before_answering(path: str, body: Any, answer: Answer) -> Answer:
        if path == UPDATE:
            console(emulator, "K1", "U2bob", name="bob's, just after the tool's write")
            time.sleep(0.3)
        return answer

    hook(emulator, edit_before_answering)
    desired = write_desired(tmp_path / "desired", [{"id": "K1", "name": "new"}]).parent
    env = cli_env(emulator)
    apply = run_cli(["apply", "--audit-tenant", "T0", str(desired), "--report", str(tmp_path / "r.json")], env)
    assert apply.code == 0, apply.output
    assert "[overwritten]" not in apply.stdout and "K1  [not checked]" in apply.stdout
    key = load_report(tmp_path / "r.json")["keys"][0]
    assert "overwritten" not in key and "does not prove" in key["notChecked"]
    assert "writerActorId" not in events(emulator)[-1]["data"], "an unproven writer is never recorded"
    assert emulator.store.load("K1")["name"].startswith("bob's"), "bob's edit stands"

    plan = run_cli(["plan", str(desired), "--report", str(tmp_path / "p.json")], env)
    assert plan.code == 2, plan.output
    change = load_report(tmp_path / "p.json")["keys"][0]["attribution"]["change"]
    assert change["actorId"] == "U2bob" and change["byThisTool"] is not True
    assert "by U2bob from 203.0.113.7" in plan.stdout and "(descope-reconcile run" not in plan.stdout


def test_a_lagging_trail_never_hides_an_overwrite_as_clean(start_emulator: Any, tmp_path: Path) -> None:
    """1, missed overwrite: U2bob's change lands between the read and the write; the trail does not
    show the run's own record yet. The vote took U2bob's change for the run's write: exit 0, clean."""
    emulator = start_emulator([{"id": "K1", "name": "old"}])
    me = writer(emulator)

    def bob_meanwhile_and_a_lagging_trail(path: str, body: Any, answer: Answer) -> Answer:
        if path == KEYS_SEARCH:
            console(emulator, "K1", "U2bob", description="bob's, after the read")
            time.sleep(1.2)  # the write goes out over a second later: past the clock allowance, inside the old 2 s
        if path == AUDIT_SEARCH and answer.status == 200:
            shown = [r for r in answer.body["audits"] if r["actorId"] != me]
            answer.body = {"audits": shown, "total": len(shown)}
        return answer

    hook(emulator, bob_meanwhile_and_a_lagging_trail)
    desired = write_desired(tmp_path / "desired", [{"id": "K1", "name": "new"}]).parent
    args = [
        "apply",
        "--audit-tenant",
        "T0",
        str(desired),
        "--report",
        str(tmp_path / "r.json"),
        "--summary",
        str(tmp_path / "s.md"),
    ]
    apply = run_cli(args, cli_env(emulator))
    assert apply.code == 0, apply.output  # the exit code is unchanged; the check says it could not be made
    assert "K1  [not checked]" in apply.stdout and "overwritten check partial: 1 key(s) not checked" in apply.stdout
    report = load_report(tmp_path / "r.json")
    assert report["trail"]["overwriteCheck"]["status"] == "partial" and "notChecked" in report["keys"][0]
    assert any(w.startswith("overwritten check partial") for w in report["warnings"])
    assert "### Not checked for overwrites" in (tmp_path / "s.md").read_text()
    assert "writerActorId" not in events(emulator)[-1]["data"]


def test_after_no_attribution_a_nearby_edit_is_not_credited_and_the_actor_is_always_shown(
    start_emulator: Any, tmp_path: Path
) -> None:
    """1: an event without a writer credited any change to a listed key within ±2 s to the tool,
    and a change credited to the tool named only the run in the text and Markdown."""
    emulator = start_emulator([{"id": "K1", "name": "old"}, {"id": "K2", "name": "old"}])
    desired = write_desired(tmp_path / "desired", [{"id": "K1", "name": "new"}, {"id": "K2", "name": "new"}]).parent
    env = cli_env(emulator)
    apply = run_cli(["apply", "--audit-tenant", "T0", str(desired), "--no-attribution"], env)
    assert apply.code == 0, apply.output
    console(emulator, "K1", "U2carol", name="carol's")  # within a second of the run's write to K1
    write_desired(desired, [{"id": "K1", "name": "new"}, {"id": "K2", "name": "newer"}])

    args = ["plan", str(desired), "--report", str(tmp_path / "p.json"), "--summary", str(tmp_path / "s.md")]
    plan = run_cli(args, env)
    assert plan.code == 2, plan.output
    by_id = {key["id"]: key["attribution"]["change"] for key in load_report(tmp_path / "p.json")["keys"]}
    assert by_id["K1"]["actorId"] == "U2carol" and by_id["K1"]["byThisTool"] is not True
    # K2's one record in the window of the run's write to it: the run's own, its actor named too
    assert by_id["K2"]["byThisTool"] is True and by_id["K2"]["actorId"] == writer(emulator)
    for shown in (plan.stdout, (tmp_path / "s.md").read_text()):
        assert f"by {writer(emulator)} from " in shown and "(descope-reconcile run " in shown
        assert "by U2carol from 203.0.113.7" in shown


def test_a_deactivate_after_someone_elses_edit_is_not_an_overwrite(start_emulator: Any, tmp_path: Path) -> None:
    """2: a status change pins no other field: U2dave's description stays, and the run says he
    changed the key before its deactivate, with exit 0 (it was `overwritten`, exit 4)."""
    emulator = start_emulator([{"id": "K1", "name": "one"}, {"id": "K2", "name": "two"}])

    def dave_after_the_read(path: str, body: Any, answer: Answer) -> Answer:
        if path == KEYS_SEARCH:
            console(emulator, "K1", "U2dave", description="dave's")
            time.sleep(1.2)
        return answer

    hook(emulator, dave_after_the_read)
    keys = [{"id": "K1", "name": "one", "status": "inactive"}, {"id": "K2", "name": "two", "status": "inactive"}]
    desired = write_desired(tmp_path / "desired", keys).parent
    args = [
        "apply",
        "--audit-tenant",
        "T0",
        str(desired),
        "--report",
        str(tmp_path / "r.json"),
        "--summary",
        str(tmp_path / "s.md"),
    ]
    apply = run_cli(args, cli_env(emulator))
    assert apply.code == 0, apply.output
    assert "[overwritten]" not in apply.stdout and "K1  [changed meanwhile] changed " in apply.stdout
    assert "by U2dave from 203.0.113.7, before this run's status (not reverted)" in apply.stdout
    report = load_report(tmp_path / "r.json")
    key = next(key for key in report["keys"] if key["id"] == "K1")
    assert report["summary"]["overwritten"] == 0 and "overwritten" not in key
    assert [(c["actorId"], c["beforeThisRun"]) for c in key["changedMeanwhile"]] == [("U2dave", "status")]
    assert "### Changed by someone else meanwhile" in (tmp_path / "s.md").read_text()
    assert emulator.store.load("K1")["description"] == "dave's"
    assert events(emulator)[-1]["data"]["writerActorId"] == writer(emulator), "K2's lone record proves it"


def test_creates_and_rotations_are_timed_and_credited(start_emulator: Any, tmp_path: Path) -> None:
    """3: a create was not timed and `rotate` wrote no event: both read later as hand edits."""
    emulator = start_emulator([{"id": "K1", "name": "one"}])
    desired = write_desired(tmp_path / "desired", [{"id": "K1", "name": "one"}, {"name": "fresh"}]).parent
    env = cli_env(emulator)
    secrets = ["--secrets-out", str(tmp_path / "s.jsonl"), "--report", str(tmp_path / "r.json")]
    apply = run_cli(["apply", "--audit-tenant", "T0", str(desired), *secrets], env)
    assert apply.code == 0, apply.output
    new_id = next(key["id"] for key in emulator.store.all() if key["name"] == "fresh")
    data = events(emulator)[-1]["data"]
    assert data["changedKeyIds"] == [new_id] and [w[0] for w in data["writes"][new_id]] == ["create"]
    assert data["writerActorId"] == writer(emulator), "the record of a key only this run created proves the writer"

    rotate = run_cli(["rotate", "--audit-tenant", "T0", "--ids", "K1", *secrets], env)
    assert rotate.code == 0, rotate.output
    data = events(emulator)[-1]["data"]
    assert data["outcomes"] == {"rotated": 1} and [w[0] for w in data["writes"]["K1"]] == ["rotate"]

    write_desired(desired, [{"id": "K1", "name": "one-renamed"}, {"id": new_id, "name": "fresh-renamed"}])
    plan = run_cli(["plan", str(desired), "--report", str(tmp_path / "p.json")], env)
    assert plan.code == 2, plan.output
    by_id = {key["id"]: key["attribution"]["change"] for key in load_report(tmp_path / "p.json")["keys"]}
    assert by_id["K1"]["byThisTool"] is True and by_id["K1"]["action"] == "AccessKeyModified"
    assert by_id[new_id]["byThisTool"] is True and by_id[new_id]["action"] == "AccessKeyCreated"
    assert "(not this tool)" not in plan.stdout


def test_a_read_short_of_the_answers_total_says_partial_never_no_change(start_emulator: Any, tmp_path: Path) -> None:
    """4: the server says `total` 3 and sends one record, then an empty page: that was "no change
    found in the last 30 days"."""
    emulator = start_emulator([{"id": "K1", "name": "old"}])
    console(emulator, "K1", "U2erin", name="erin's")
    console(emulator, "K1", "U2erin", name="old")  # the key as it was: K1 drifts only by the file below
    emulator.audit.add({"action": "AccessKeyModified", "actorId": "U2bot", "data": {"accessKeyId": "N1"}})

    def cut_short(path: str, body: Any, answer: Answer) -> Answer:
        if path == AUDIT_SEARCH and answer.status == 200:
            answer.body = {"audits": answer.body["audits"][:1], "total": answer.body["total"]}
        return answer

    hook(emulator, cut_short)
    desired = write_desired(tmp_path / "desired", [{"id": "K1", "name": "new"}]).parent
    plan = run_cli(["plan", str(desired), "--report", str(tmp_path / "r.json")], cli_env(emulator))
    assert plan.code == 2, plan.output
    assert "no change found in the last 30 days" not in plan.stdout
    assert "partial: no change found in the records read" in plan.stdout
    step = load_report(tmp_path / "r.json")["trail"]["attribution"]
    assert step["status"] == "partial" and "read 1 of the 3 records the trail holds" in step["reason"]
    assert load_report(tmp_path / "r.json")["keys"][0]["attribution"]["found"] == "notReached"


def test_a_throttled_apply_event_never_holds_a_finished_run(start_emulator: Any, tmp_path: Path) -> None:
    """5: a 429 with Retry-After: 100 on the event held the finished run (and its lock) for 201 s."""
    emulator = start_emulator([{"id": "K1", "name": "old"}])

    def throttle_the_event(path: str, body: Any, answer: Answer) -> Answer:
        if path == AUDIT_EVENT:
            body = {"errorCode": "E130429", "errorDescription": "Too many requests"}
            return Answer(429, body, headers={"Retry-After": "100"})
        return answer

    hook(emulator, throttle_the_event)
    desired = write_desired(tmp_path / "desired", [{"id": "K1", "name": "new"}]).parent
    started = time.monotonic()
    apply = run_cli(
        ["apply", "--audit-tenant", "T0", str(desired), "--report", str(tmp_path / "r.json")],
        cli_env(emulator),
        timeout=60,
    )
    took = time.monotonic() - started
    assert apply.code == 0, apply.output
    assert took < 20, f"the finished run waited {took:.0f} s for its event"
    event = load_report(tmp_path / "r.json")["trail"]["event"]
    assert event["status"] == "failed" and "429" in event["reason"]
    assert "warning: could not write the DescopeReconcileApply event" in apply.stderr
