"""The audit trail through the real command line against the local server: who changed a drifted
key (plan, apply, audit, the drift workflow's job summary), the event every apply records, the
changes an apply overwrote, and attribution that degrades but never fails a run."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from reconcile.emulator import Answer, Call, Window
from reconcile.emulator.config import actor_id_for
from tests.answer_stub import AnswerStub, json_answer
from tests.conftest import cli_env, load_report, run_cli, write_desired
from tests.support import UPDATE, http, start_process
from tests.test_action import run_action_step
from tests.test_ci_files import inputs_for, step_named, workflow

AUDIT_SEARCH = "/v1/mgmt/audit/search"
AUDIT_EVENT = "/v1/mgmt/audit/event"
# Descope requires a tenant on the apply event; these projects have none to choose from (see test_dialect.py).
TENANT = ("--audit-tenant", "T0")
HOSTILE_ACTOR = "U2\x1b[2Jeve\n::error::pwned|`x`"


def console(emulator: Any, key_id: str, actor: str, remote: str = "203.0.113.7", **changes: Any) -> None:
    """A change "made in the console" by another actor (or a deletion: `delete=True`)."""
    body: dict[str, Any] = {"id": key_id, "actorId": actor, "remoteAddress": remote}
    body.update({"delete": True} if changes.pop("delete", False) else {"changes": changes})
    response = http.post(f"{emulator.url}/_emulator/console", json=body)
    assert response.status_code == 200, response.text


def audit_requests(emulator: Any) -> list[Any]:
    return [r for r in emulator.recorded() if r.path.startswith("/v1/mgmt/audit/")]


def test_console_drift_is_named_in_plan_report_summary_and_audit(start_emulator: Any, tmp_path: Path) -> None:
    keys = [{"id": "K1", "name": "one"}, {"id": "K2", "name": "two"}, {"id": "K3", "name": "three"}]
    emulator = start_emulator(keys)
    desired = write_desired(tmp_path / "desired", [*keys, {"id": "K9", "name": "never-created"}]).parent
    console(emulator, "K1", "U2alice", name="edited by hand")
    console(emulator, "K2", HOSTILE_ACTOR, remote="198.51.100.9", name="renamed")
    console(emulator, "K3", "U2alice", delete=True)
    env = cli_env(emulator)

    plan = run_cli(
        ["plan", *TENANT, str(desired), "--report", str(tmp_path / "r.json"), "--summary", str(tmp_path / "s.md")], env
    )
    assert plan.code == 1, plan.output  # K3 and K9 are missing: an error, with their attribution all the same
    assert "    last change: changed " in plan.stdout and "by U2alice from 203.0.113.7 (not this tool)" in plan.stdout
    assert "deleted " in plan.stdout and "no change found in the last 30 days" in plan.stdout
    assert "\x1b" not in plan.stdout and "\n::error" not in plan.stdout, "trail text is escaped on a terminal"
    report = load_report(tmp_path / "r.json")
    by_id = {key["id"]: key for key in report["keys"]}
    change = by_id["K1"]["attribution"]["change"]
    assert (change["actorId"], change["remoteAddress"], change["byThisTool"]) == ("U2alice", "203.0.113.7", False)
    assert by_id["K2"]["attribution"]["change"]["actorId"] == HOSTILE_ACTOR
    assert by_id["K3"]["attribution"]["change"]["action"] == "AccessKeyDeleted"
    assert by_id["K9"]["attribution"] == {"found": "none", "change": None}
    assert report["trail"]["attribution"]["status"] == "done" and report["warnings"] == []
    summary = (tmp_path / "s.md").read_text()
    assert "### Who changed what" in summary and "by U2alice from 203.0.113.7 (not this tool)" in summary
    assert "\x1b" not in summary and "\\|\\`x\\`" in summary, "a hostile actor id is Markdown-escaped"

    audit = run_cli(["audit", *TENANT, str(desired), "--out", str(tmp_path / "a.json")], env)
    assert audit.code == 0, audit.output
    assert "### Who changed what" in audit.stdout and "U2alice" in audit.stdout
    found = json.loads((tmp_path / "a.json").read_text())
    assert {entry["id"] for entry in found["whoChangedWhat"]} == {"K1", "K2", "K3", "K9"}
    assert found["attribution"]["status"] == "done"
    assert len(audit_requests(emulator)) == 2, "one search per run: every latest change is on the first page"


def _git_repo(folder: Path) -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=True)
        return done.stdout.strip()

    git("init", "-q")
    git("-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "x")
    git("add", "-A")
    git("-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "-m", "desired")
    return git("rev-parse", "HEAD")


def test_apply_asks_git_once_beside_its_writes_and_its_event_and_report_carry_it(
    start_emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The desired files' git state is asked for once (started before the writes, to run beside them),
    and both the apply event and the report carry it."""
    emulator = start_emulator([{"id": "K1", "name": "old"}])
    desired = write_desired(tmp_path / "repo" / "desired", [{"id": "K1", "name": "new"}])
    commit = _git_repo(tmp_path / "repo")
    token_url = "https://x-access-token:ghs_SECRET@github.com/acme/keys.git"
    subprocess.run(["git", "-C", str(tmp_path / "repo"), "remote", "add", "origin", token_url], check=True)
    asked: list[list[str]] = []
    popen = subprocess.Popen

    def counted(args: list[str], **kwargs: Any) -> Any:
        asked.append(args)
        return popen(args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", counted)
    apply = run_cli(["apply", *TENANT, str(desired.parent), "--report", str(tmp_path / "r.json")], cli_env(emulator))
    monkeypatch.undo()
    assert apply.code == 0, apply.output
    assert [args[3:] for args in asked if args[0] == "git"] == [
        ["rev-parse", "HEAD"],
        ["status", "--porcelain", "--", str(desired.resolve())],
        ["remote", "get-url", "origin"],
    ]
    state = {"commit": commit, "dirty": False, "remote": "https://github.com/acme/keys.git"}
    assert load_report(tmp_path / "r.json")["desired"]["git"] == state
    data = emulator.audit.all(occurred_as_string=False)[-1]["data"]
    assert (data["commit"], data["repository"]) == (commit, state["remote"])


def test_apply_records_its_event_and_the_next_audit_tells_it_from_a_hand_edit(
    start_emulator: Any, tmp_path: Path
) -> None:
    emulator = start_emulator([{"id": "K1", "name": "old"}, {"id": "K2", "name": "two"}])
    desired = write_desired(tmp_path / "repo" / "desired", [{"id": "K1", "name": "new"}, {"id": "K2", "name": "two"}])
    commit = _git_repo(tmp_path / "repo")
    github = {"GITHUB_REPOSITORY": "acme/keys", "GITHUB_RUN_ID": "42", "GITHUB_SERVER_URL": "https://github.example"}
    env = cli_env(emulator, **github)

    apply = run_cli(["apply", *TENANT, str(desired.parent), "--report", str(tmp_path / "apply.json")], env)
    assert apply.code == 0, apply.output
    report = load_report(tmp_path / "apply.json")
    assert report["trail"]["event"]["status"] == "done" and report["trail"]["overwriteCheck"]["status"] == "done", (
        report["trail"],
        [(r.method, r.path, r.status, r.at) for r in emulator.recorded()],
    )
    event = emulator.audit.all(occurred_as_string=False)[-1]
    assert (event["action"], event["actorId"], event["type"]) == ("DescopeReconcileApply", "descope-reconcile", "info")
    data = event["data"]
    assert data["runId"] == report["run"]["id"] and data["commit"] == commit
    assert data["repository"] == "acme/keys" and data["runUrl"] == "https://github.example/acme/keys/actions/runs/42"
    assert data["outcomes"] == {"updated": 1} and data["changedKeyIds"] == ["K1"] and data["changedKeysNotListed"] == 0
    assert data["writerActorId"] == actor_id_for(emulator.config, emulator.config.management_key)
    assert emulator.config.management_key not in json.dumps(event)

    console(emulator, "K2", "U2mallory", name="hand-edit")
    write_desired(desired.parent, [{"id": "K1", "name": "newer"}, {"id": "K2", "name": "two"}])  # not applied yet
    audit = run_cli(["audit", *TENANT, str(desired.parent), "--out", str(tmp_path / "audit.json")], env)
    assert audit.code == 0, audit.output
    writer = actor_id_for(emulator.config, emulator.config.management_key)
    reviewed = f"(descope-reconcile run {report['run']['id']}, commit {commit[:12]} (acme/keys))"
    assert f"by {writer} from " in audit.stdout, "the actor is shown beside the run that made the change"
    assert reviewed in audit.stdout and "by U2mallory from 203.0.113.7 (not this tool)" in audit.stdout
    entries = {
        e["id"]: e["attribution"]["change"] for e in json.loads((tmp_path / "audit.json").read_text())["whoChangedWhat"]
    }
    assert entries["K1"]["byThisTool"] and entries["K1"]["run"]["commit"] == commit
    assert not entries["K2"]["byThisTool"] and entries["K2"]["run"] is None

    again = run_cli(["apply", *TENANT, str(desired.parent), "--audit-tenant", "T9", "--attribution-pages", "1"], env)
    assert again.code == 0, again.output
    assert emulator.audit.all(occurred_as_string=False)[-1]["tenants"] == ["T9"]
    before, asked = len(emulator.audit), len(audit_requests(emulator))
    write_desired(desired.parent, [{"id": "K1", "name": "quiet"}, {"id": "K2", "name": "quiet"}])
    quiet = run_cli(["apply", *TENANT, str(desired.parent), "--no-audit-event", "--no-attribution"], env)
    assert quiet.code == 0, quiet.output
    assert len(emulator.audit) == before + 2, "the two updates only: no event"
    assert len(audit_requests(emulator)) == asked, "and no search"


@pytest.mark.parametrize(("writes", "ahead_ms"), [("create", 0), ("create", 300), ("update", 0)])
def test_the_overwritten_check_waits_out_the_clock_allowance_only_when_the_trail_needs_it(
    writes: str, ahead_ms: int, start_emulator: Any, tmp_path: Path
) -> None:
    """A run that read none of the keys it wrote (creates) reads one page right after its writes:
    when it holds this run's record of every write (a server clock not ahead of ours), that is the
    check, at once. A clock ahead keeps the last writes' records after the search's `to`: the run
    waits out the allowance and reads again. A run that updated keys it read always waits: a change
    made just before its write may reach the trail's index after the run's own record."""
    seeded = [{"id": f"K{i}", "name": f"old{i}"} for i in range(3)]
    emulator = start_emulator(seeded if writes == "update" else [], audit_clock_ahead_ms=ahead_ms)
    wanted = [{"id": f"K{i}", "name": f"new{i}"} for i in range(3)] if writes == "update" else [{"name": "n0"}]
    desired = write_desired(tmp_path / "d", wanted)
    sink = ["--secrets-out", str(tmp_path / "secrets.jsonl")] if writes == "create" else []
    report = tmp_path / "r.json"
    apply = run_cli(["apply", *TENANT, str(desired.parent), "--report", str(report), *sink], cli_env(emulator))
    assert apply.code == 0, apply.output
    check = load_report(report)["trail"]["overwriteCheck"]
    assert check["status"] == "done", check
    last_write = max(r.at for r in emulator.recorded() if r.method == "POST" and "/accesskey/" in r.path)
    after = [r for r in audit_requests(emulator) if r.path == AUDIT_SEARCH and r.at > last_write]
    assert len(after) == (2 if ahead_ms else 1), [(r.at, r.body) for r in after]
    if ahead_ms or writes == "update":  # the last search waited out the allowance (CLOCK_SKEW_MS)
        assert after[-1].at - last_write >= 0.5


def test_a_change_the_trail_indexes_late_is_still_found_overwritten(start_emulator: Any, tmp_path: Path) -> None:
    """Another actor changes K1 just before this run's update; the trail shows that change 400 ms
    late, after the run's own records (an index that is not in time order). An apply that updated
    keys it read waits out the allowance before its check, so the change is found, never "clean"."""
    emulator = start_emulator([{"id": "K1", "name": "old"}, {"id": "K2", "name": "two"}])
    edited: list[bool] = []

    def edit_first(call: Call) -> Answer:
        if not edited and call.body.get("id") == "K1":
            edited.append(True)
            console(emulator, "K1", "U2bob", description="meanwhile")
        return call.forward()

    def late_for_bob(call: Call) -> Answer:
        answer = call.forward()
        body = dict(answer.body if answer.body is not None else json.loads(answer.raw or b"{}"))
        now = time.time() * 1000
        fresh = [a for a in body["audits"] if a["actorId"] == "U2bob" and now - float(a["occurred"]) < 400]
        body["audits"] = [a for a in body["audits"] if a not in fresh]
        body["total"] = len(body["audits"])
        return Answer(answer.status, body, headers=answer.headers)

    emulator.intercept(UPDATE, edit_first)
    emulator.intercept(AUDIT_SEARCH, late_for_bob)
    desired = write_desired(tmp_path / "d", [{"id": "K1", "name": "new"}, {"id": "K2", "name": "2"}]).parent
    apply = run_cli(["apply", *TENANT, str(desired), "--report", str(tmp_path / "a.json")], cli_env(emulator))
    assert edited and apply.code == 4, apply.output
    assert load_report(tmp_path / "a.json")["summary"]["overwritten"] == 1


def test_a_refused_second_read_keeps_what_the_first_page_told(start_emulator: Any, tmp_path: Path) -> None:
    """The first page lacked the last write's record (a clock ahead), and the read after the wait
    was refused (the audit budget spent): the check says what the first page told, never less
    (`unavailable`)."""
    emulator = start_emulator([], audit_clock_ahead_ms=300)
    searches: list[int] = []

    def second_refused(call: Call) -> Answer:
        searches.append(1)
        return call.forward() if len(searches) < 2 else Answer(200, {"audits": "not a list"})

    emulator.intercept(AUDIT_SEARCH, second_refused)
    desired = write_desired(tmp_path / "desired", [{"name": "n0"}]).parent
    sink = ["--secrets-out", str(tmp_path / "secrets.jsonl")]
    apply = run_cli(["apply", *TENANT, str(desired), "--report", str(tmp_path / "a.json"), *sink], cli_env(emulator))
    assert apply.code == 0, apply.output
    check = load_report(tmp_path / "a.json")["trail"]["overwriteCheck"]
    assert len(searches) == 2 and check["status"] == "done", check  # a create: nothing to overwrite


def test_a_403_on_audit_search_leaves_every_command_working(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator([{"id": "K1", "name": "old"}], audit_forbidden=True)
    desired = write_desired(tmp_path / "desired", [{"id": "K1", "name": "new"}]).parent
    env = cli_env(emulator)
    plan = run_cli(
        ["plan", *TENANT, str(desired), "--report", str(tmp_path / "p.json"), "--summary", str(tmp_path / "s.md")], env
    )
    assert plan.code == 2, plan.output
    assert "attribution unavailable: the management key may not search the audit trail: HTTP 403" in plan.stdout
    report = load_report(tmp_path / "p.json")
    assert report["trail"]["attribution"]["status"] == "unavailable"
    assert report["warnings"][0].startswith("attribution unavailable: ") and "attribution" not in report["keys"][0]
    assert "> attribution unavailable: the management key may not search" in (tmp_path / "s.md").read_text()

    audit = run_cli(["audit", *TENANT, str(desired)], env)
    assert audit.code == 0 and "attribution unavailable" in audit.stdout, audit.output
    apply = run_cli(["apply", *TENANT, str(desired), "--report", str(tmp_path / "a.json")], env)
    assert apply.code == 0, apply.output
    trail = load_report(tmp_path / "a.json")["trail"]
    assert trail["overwriteCheck"]["status"] == "unavailable" and trail["event"]["status"] == "done"
    assert emulator.store.load("K1")["name"] == "new"


def test_an_overwritten_check_whose_first_page_fails_is_unavailable_at_once(
    start_emulator: Any, tmp_path: Path
) -> None:
    """The trail answered attribution, then not the check's first page: the check is unavailable,
    and the trail is not asked again once the clock allowance has passed (it would not prove more)."""
    emulator = start_emulator([{"id": "K1", "name": "old"}])
    searches: list[float] = []

    def then_garbage(call: Call) -> Answer:
        searches.append(time.monotonic())
        return call.forward() if len(searches) == 1 else Answer(200, {"audits": "not a list"})

    emulator.intercept(AUDIT_SEARCH, then_garbage)
    desired = write_desired(tmp_path / "desired", [{"id": "K1", "name": "new"}]).parent
    apply = run_cli(["apply", *TENANT, str(desired), "--report", str(tmp_path / "a.json")], cli_env(emulator))
    assert apply.code == 0, apply.output
    trail = load_report(tmp_path / "a.json")["trail"]
    assert trail["attribution"]["status"] == "done" and trail["overwriteCheck"]["status"] == "unavailable", trail
    assert len(searches) == 2, "attribution, then the check's first page only"


@pytest.mark.slow
def test_a_console_change_between_the_read_and_the_write_is_reported_overwritten(
    start_emulator: Any, tmp_path: Path
) -> None:
    """Every API request stalls 1.5 s before it is served: the console change lands after the
    server answered the apply's read and before it serves the apply's write."""
    emulator = start_emulator(
        [{"id": "K1", "name": "old"}, {"id": "K2", "name": "two"}],
        fault_rate=1.0,
        fault_kinds=("slow",),
        slow_seconds=1.5,
        slow_applies="after",
    )
    # K2's write, with no other change beside it, proves which actor the run's writes are by: K1's
    # window then holds two records, and the run's own is told from U2bob's by that actor alone
    desired = write_desired(tmp_path / "desired", [{"id": "K1", "name": "new"}, {"id": "K2", "name": "2"}]).parent
    args = ["apply", str(desired), *TENANT, "--report", str(tmp_path / "r.json"), "--summary", str(tmp_path / "s.md")]
    apply = start_process(args, cli_env(emulator))  # the console change comes while it runs
    deadline = time.monotonic() + 30
    while not any(r.path == "/v1/mgmt/accesskey/search" for r in emulator.recorded()):
        assert time.monotonic() < deadline and apply.poll() is None, "the apply never read the keys"
        time.sleep(0.01)
    console(emulator, "K1", "U2bob", remote="192.0.2.44", description="set in the console meanwhile")
    stdout, _ = apply.communicate(timeout=60)

    assert apply.returncode == 4, stdout
    assert "! K1  [overwritten] changed " in stdout and "by U2bob from 192.0.2.44" in stdout
    assert stdout.strip().splitlines()[-1] == "Apply: 2 updated; 1 change(s) by someone else overwritten (exit 4)."
    assert emulator.store.load("K1")["description"] == "", "the update pinned every field: the change is gone"
    report = load_report(tmp_path / "r.json")
    key = next(key for key in report["keys"] if key["id"] == "K1")
    assert key["outcome"] == "updated" and [c["actorId"] for c in key["overwritten"]] == ["U2bob"]
    assert report["summary"]["overwritten"] == 1
    summary = (tmp_path / "s.md").read_text()
    assert "### Overwritten changes" in summary and "by U2bob from 192.0.2.44" in summary
    event = emulator.audit.all(occurred_as_string=False)[-1]
    assert event["action"] == "DescopeReconcileApply" and event["type"] == "warn" and event["data"]["overwritten"] == 1


def test_attribution_pages_past_the_first_page_and_stops_at_the_cap(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator([{"id": "K1", "name": "old"}], audit_search_window=None)
    console(emulator, "K1", "U2alice", name="hand")
    noise = [{"action": "AccessKeyModified", "actorId": "U2bot", "data": {"accessKeyId": f"N{i}"}} for i in range(1200)]
    assert http.post(f"{emulator.url}/_emulator/audit", json={"records": noise}).status_code == 200
    desired = write_desired(tmp_path / "desired", [{"id": "K1", "name": "new"}]).parent
    env = cli_env(emulator)

    plan = run_cli(["plan", *TENANT, str(desired), "--report", str(tmp_path / "r.json")], env)
    assert plan.code == 2 and "by U2alice" in plan.stdout, plan.output
    assert load_report(tmp_path / "r.json")["trail"]["attribution"] | {"reason": None} == {
        "status": "done",
        "reason": None,
        "pages": 2,
        "records": 1201,
    }
    pages = [r.body["page"] for r in audit_requests(emulator)]
    assert pages == [0, 1] and all(r.body["size"] == 1000 for r in audit_requests(emulator))
    body = audit_requests(emulator)[0].body
    assert body["actions"][-1] == "DescopeReconcileApply" and isinstance(body["from"], int)
    assert 29.9 * 86400_000 < body["to"] - body["from"] <= 30 * 86400_000

    capped = run_cli(
        ["plan", *TENANT, str(desired), "--report", str(tmp_path / "c.json"), "--attribution-pages", "1"], env
    )
    assert capped.code == 2, capped.output
    assert "partial: no change found in the records read" in capped.stdout
    trail = load_report(tmp_path / "c.json")["trail"]["attribution"]
    assert trail["status"] == "partial" and trail["pages"] == 1


def test_throttled_or_strange_audit_answers_degrade_with_the_same_exit_code(
    start_emulator: Any, tmp_path: Path
) -> None:
    emulator = start_emulator([{"id": "K1", "name": "old"}], audit_search_window=Window(1, 60.0, 60.0))
    strange = {"action": "AccessKeyModified", "occurred": "yesterday", "data": {"accessKeyId": "K1"}}
    assert http.post(f"{emulator.url}/_emulator/audit", json={"records": [strange]}).status_code == 200
    desired = write_desired(tmp_path / "desired", [{"id": "K1", "name": "new"}]).parent
    env = cli_env(emulator)

    first = run_cli(["plan", *TENANT, str(desired)], env)
    assert first.code == 2, first.output
    assert "attribution unavailable: unexpected record shape: occurred is 'yesterday', not milliseconds" in first.stdout
    second = run_cli(["plan", *TENANT, str(desired)], env)  # the server's window allows one audit search a minute
    assert second.code == 2, second.output
    assert "attribution unavailable: audit search throttled: HTTP 429" in second.stdout
    assert [r.status for r in audit_requests(emulator)] == [200, 429], "a 429 is not retried: no minute's wait"


@pytest.mark.slow
def test_the_drift_workflow_job_summary_says_who_changed_what(start_emulator: Any, tmp_path: Path) -> None:
    """drift.yml's own steps, through the action's run step: plan and audit both write the section."""
    emulator = start_emulator([{"id": "K1", "name": "reviewed"}])
    write_desired(tmp_path / "desired", [{"id": "K1", "name": "reviewed"}])
    console(emulator, "K1", "U2alice", name="changed by hand")
    for name, exit_code in (("Plan", "2"), ("Audit", "0")):
        inputs = {**inputs_for(step_named(workflow("drift.yml"), name), "dev"), "target": "", "paths": "desired/"}
        run = run_action_step("run", inputs, tmp_path, tmp_path / name, env=cli_env(emulator))
        assert run.outputs["exit-code"] == exit_code, run.output
        assert "### Who changed what" in run.summary, name
        assert "by U2alice from 203.0.113.7 (not this tool)" in run.summary, name


@pytest.mark.slow
def test_an_occurred_no_date_can_show_degrades_instead_of_crashing(tmp_path: Path) -> None:
    """A server that ignores `from`/`to` and sends a time past year 9999 (or before 1970): every
    command still ends as it would have, attribution unavailable, no traceback."""
    desired = write_desired(tmp_path / "desired", [{"id": "K1", "name": "new"}]).parent
    for occurred in (10**20, -99999999999999, "9" * 5000):
        record = {"action": "AccessKeyModified", "actorId": "U2x", "occurred": occurred, "data": {"accessKeyId": "K1"}}
        answers = {
            "POST /v1/mgmt/accesskey/search": json_answer({"keys": [{"id": "K1", "name": "old"}]}),
            f"POST {AUDIT_SEARCH}": json_answer({"audits": [record]}),
        }
        with AnswerStub(answers) as stub:
            env = stub.env(cli_env(None))
            plan = run_cli(["plan", *TENANT, str(desired), "--summary", str(tmp_path / "s.md")], env)
            audit = run_cli(["audit", *TENANT, str(desired)], env)
        assert plan.code == 2, plan.output
        assert "attribution unavailable: unexpected record shape: occurred is" in plan.stdout
        assert audit.code == 0, audit.output
        assert "Traceback" not in plan.output + audit.output


def test_an_unconfirmed_write_is_still_this_tools_change_in_the_trail(start_emulator: Any, tmp_path: Path) -> None:
    """The server accepted the update but answered another key (`unconfirmed`): the write was made,
    so the event claims it, and the next audit does not call the tool's own write a hand edit."""
    emulator = start_emulator([{"id": "K1", "name": "old"}])

    def renaming_server(call: Call) -> Answer:
        return call.forward({**call.body, "name": "the server's idea"} if isinstance(call.body, dict) else None)

    emulator.intercept(UPDATE, renaming_server)
    desired = write_desired(tmp_path / "desired", [{"id": "K1", "name": "new"}]).parent
    env = cli_env(emulator)
    apply = run_cli(["apply", *TENANT, str(desired), "--report", str(tmp_path / "r.json")], env)
    assert apply.code == 1 and "K1  [unconfirmed]" in apply.stdout, apply.output
    events = [r for r in emulator.audit.all(occurred_as_string=False) if r["action"] == "DescopeReconcileApply"]
    assert len(events) == 1 and events[0]["data"]["changedKeyIds"] == ["K1"], events
    assert events[0]["type"] == "warn" and events[0]["data"]["outcomes"] == {"unconfirmed": 1}
    audit = run_cli(["audit", *TENANT, str(desired)], env)
    assert "(descope-reconcile run" in audit.stdout and "(not this tool)" not in audit.stdout, audit.output
