"""Sinks, the journal's view of unsettled secrets, identity by name and prune scopes (no network)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from reconcile.apply.journal import unsettled
from reconcile.client.redact import scrub
from reconcile.desired.loader import ParsedFile, parse_text
from reconcile.desired.validation import build_desired_state
from reconcile.errors import ConfigError
from reconcile.model import DesiredKey, DesiredState, PruneScope, SourceLocation
from reconcile.plan.diff import Outcome, compute_plan
from reconcile.secrets.secret import Secret
from reconcile.secrets.sinks import DeliveryFailed, Issued, SecretsCommand, SecretsFile, Sinks

HERE = SourceLocation("desired/keys.yaml", 3)


def issued(value: str = "the-cleartext", key_id: str = "K1") -> Issued:
    return Issued(key_id, "ci", Secret(value), "run1", "2030-01-01T00:00:00+00:00")


def test_secrets_file_is_private_appended_and_never_followed(tmp_path: Path) -> None:
    path = tmp_path / "new" / "secrets.jsonl"
    sink = SecretsFile(path, "P1")
    sink.deliver(issued("first"))
    sink.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = SecretsFile(path, "P1")
    again.deliver(issued("second", "K2"))
    again.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(line["id"], line["projectId"], line["cleartext"]) for line in lines] == [
        ("K1", "P1", "first"),
        ("K2", "P1", "second"),
    ]
    link = tmp_path / "link.jsonl"
    link.symlink_to(path)
    with pytest.raises(ConfigError, match="symbolic link"):
        SecretsFile(link, "P1")
    loose = tmp_path / "loose.jsonl"
    loose.write_text("")
    loose.chmod(0o644)
    SecretsFile(loose, "P1").close()
    assert stat.S_IMODE(loose.stat().st_mode) == 0o600  # private again before a secret goes in
    with pytest.raises(ConfigError, match="not a regular file"):
        SecretsFile(Path(os.devnull), "P1")


def test_a_closed_secrets_file_takes_no_late_secret_and_never_writes_where_its_number_went(tmp_path: Path) -> None:
    """A delivery left running in its thread after the run closed the file fails as undelivered; the
    descriptor's number, by then another file's, is never written to; closing twice closes once."""
    sink = SecretsFile(tmp_path / "secrets.jsonl", "P1")
    number = sink._lines.fileno()
    sink.close()
    other = os.open(tmp_path / "other", os.O_RDWR | os.O_CREAT, 0o600)  # the lowest free number: the old one
    try:
        assert other == number
        with pytest.raises(DeliveryFailed, match="is closed"):
            sink.deliver(issued("late"))
        sink.close()
        os.write(other, b"still open")
    finally:
        os.close(other)
    assert (tmp_path / "other").read_bytes() == b"still open"
    assert (tmp_path / "secrets.jsonl").read_text() == ""


def test_secrets_command_gets_stdin_and_failures_are_masked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESCOPE_MANAGEMENT_KEY", "K2-management")
    out = tmp_path / "out"
    SecretsCommand(f'cat > {out}; env > {out}.env; echo "$#" >> {out}.env', "P1", scrub=scrub).deliver(issued())
    assert out.read_text() == "the-cleartext"
    environment = (tmp_path / "out.env").read_text()
    assert "KEY_ID=K1" in environment and "KEY_NAME=ci" in environment and "KEY_PROJECT_ID=P1" in environment
    assert "K2-management" not in environment and "the-cleartext" not in environment
    with pytest.raises(DeliveryFailed, match=r"exited with 7: got \*\*\* / bye \(a variable it needs"):
        SecretsCommand('read s; echo "got $s" >&2; echo bye >&2; exit 7', "P1", scrub=scrub).deliver(issued())
    with pytest.raises(DeliveryFailed, match=r"did not finish in 0\.5 s"):
        SecretsCommand("sleep 30", "P1", scrub=scrub, timeout=0.5).deliver(issued())


def test_every_sink_is_tried_and_the_failure_says_which_took_it(tmp_path: Path) -> None:
    sinks = Sinks.open(tmp_path / "s.jsonl", "exit 1", project_id="P1", scrub=scrub)
    assert sinks is not None and sinks.options == [
        "--secrets-out",
        str(tmp_path / "s.jsonl"),
        "--secrets-command",
        "exit 1",
    ]
    with pytest.raises(DeliveryFailed, match=r"exited with 1 .*\(delivered to --secrets-out only\)"):
        sinks.deliver(issued())
    sinks.close()
    assert Sinks.open(None, None, project_id="P1", scrub=scrub) is None


def record(event: str, key_id: str | None, name: str = "ci", run: str = "r1", op: str = "create") -> dict[str, Any]:
    return {"type": "secret", "event": event, "op": op, "id": key_id, "name": name, "runId": run, "at": "t"}


@pytest.mark.parametrize(
    ("records", "flagged"),
    [
        ([record("requested", None), record("issued", "K1"), record("delivered", "K1")], []),
        ([record("requested", None), record("issued", "K1")], ["K1"]),  # killed before delivery
        ([record("requested", None)], ["K1"]),  # killed before the answer: found by name
        ([record("requested", None), record("failed", None)], []),  # nothing was created
        ([record("issued", "K1"), record("undelivered", "K1")], ["K1"]),
        (
            [
                record("issued", "K1"),
                record("undelivered", "K1"),
                *[record(e, "K1", run="r2", op="rotate") for e in ("requested", "issued", "delivered")],
            ],
            [],
        ),
        (
            [
                record("undelivered", "K1"),
                record("requested", "K1", run="r2", op="rotate"),
                record("failed", "K1", run="r2", op="rotate"),
            ],
            ["K1"],
        ),
        ([record("requested", "K1", op="rotate")], ["K1"]),  # a rotation's answer never read
        ([record("issued", "K9")], []),  # the key is gone: nothing to recover
    ],
)
def test_unsettled_secrets(records: list[dict[str, Any]], flagged: list[str]) -> None:
    observed = [{"id": "K1", "name": "ci"}, {"id": "K2", "name": "other"}]
    assert [
        u.id for u in unsettled([{"type": "start", "runId": "r1", "sinks": ["--secrets-out", "f"]}, *records], observed)
    ] == flagged


def parsed(text: str, path: str = "keys.yaml") -> ParsedFile:
    result = parse_text(path, text.encode())
    assert isinstance(result, ParsedFile)
    return result


def test_a_name_that_identifies_a_key_is_unique_across_files() -> None:
    first = parsed(
        "version: 1\nkeys:\n  - name: ci\n  - id: K1\n    name: shared\n  - id: K2\n    name: shared\n", "a.yaml"
    )
    second = parsed("version: 1\nkeys:\n  - name: ci\n    description: again\n  - name: shared\n", "b.yaml")
    _, problems = build_desired_state([first, second])
    assert [(p.path, p.line, p.message) for p in problems] == [
        ("b.yaml", 3, "key name `ci` is already used at a.yaml:3: a key without an id is identified by its name"),
        ("b.yaml", 5, "key name `shared` is already used at a.yaml:4: a key without an id is identified by its name"),
    ]  # two keys with ids may share a name; a key without one may not
    _, missing = build_desired_state([parsed("version: 1\nkeys:\n  - description: who am I\n")])
    assert [(p.line, p.message) for p in missing] == [
        (3, "a key needs an `id`, or a `name` to be identified by (and created with, if no key has it)")
    ]


def test_prune_scope_criteria_are_anded_and_compared_with_types() -> None:
    scope = PruneScope(HERE, "delete", "app-", frozenset({"T1", "T2"}), {"tier": 1})
    key = {"id": "K1", "name": "app-x", "keyTenants": [{"tenantId": "T2"}], "customAttributes": {"tier": 1.0}}
    assert scope.contains(key)
    assert not scope.contains({**key, "name": "web-x"})
    assert not scope.contains({**key, "keyTenants": []})
    assert not scope.contains({**key, "customAttributes": {"tier": "1"}})
    assert not scope.contains({**key, "customAttributes": {"tier": True}})


def test_a_key_in_two_scopes_is_deleted_only_when_both_say_delete() -> None:
    observed = [{"id": "K1", "name": "app-x", "status": "active"}, {"id": "K2", "name": "app-y", "status": "inactive"}]
    deleting, deactivating = PruneScope(HERE, "delete", "app-"), PruneScope(HERE, "deactivate", "app-x")
    plan = compute_plan(DesiredState((), (deleting, deactivating)), observed)
    assert [(k.key.id, k.outcome) for k in plan.keys] == [("K1", Outcome.DEACTIVATE), ("K2", Outcome.DELETE)]
    named = DesiredState((DesiredKey(None, {"name": "app-x"}, HERE),), (deleting,))
    assert [(k.key.id, k.outcome) for k in compute_plan(named, observed).keys] == [
        ("K1", Outcome.UNCHANGED),
        ("K2", Outcome.DELETE),
    ]
