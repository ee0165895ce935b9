"""The policy applied where a command needs it: the desired files (validate), the live project
(audit), a plan's changes (plan, apply). The rules are `reconcile.policy`'s; this places each
violation in the files. Imported only when a policy is configured."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from reconcile.desired.loader import ParsedFile
from reconcile.desired.validation import json_path
from reconcile.job.load import LoadedDesired
from reconcile.model import DesiredKey, DesiredState
from reconcile.plan.diff import Plan
from reconcile.policy.changes import plan_verdict
from reconcile.policy.findings import Finding, Where, finding
from reconcile.policy.policy import Policy
from reconcile.policy.rotation import secret_since
from reconcile.policy.rules import Context, KeyPath


class _Places:
    """Where each desired key's fields are written: in its item, else in its file's `defaults`."""

    def __init__(self, parsed: Sequence[ParsedFile]) -> None:
        self._files = {item.path: item for item in parsed}
        self._indexes: dict[str, dict[tuple[int, int], int]] = {}

    def _index(self, file: ParsedFile, key: DesiredKey) -> int | None:
        if file.path not in self._indexes:
            self._indexes[file.path] = {position: index for index, position in enumerate(file.key_lines())}
        return self._indexes[file.path].get((key.source.line, key.source.column))

    def where(self, key: DesiredKey, path: KeyPath) -> Where:
        file = self._files.get(key.source.path)
        index = self._index(file, key) if file is not None else None
        if file is None or index is None:
            return key.source.path, key.source.line, key.source.column, ""
        item = file.data["keys"][index]
        defaults = file.data.get("defaults") or {}
        in_defaults = bool(path) and path[0] not in item and path[0] in defaults
        document_path: list[str | int] = ["defaults", *path] if in_defaults else ["keys", index, *path]
        line, column = file.locate(document_path)
        return file.path, line, column, json_path(document_path)


def _as_written(key: DesiredKey) -> dict[str, Any]:
    return {**({"id": key.id} if key.id is not None else {}), **key.fields}


def check_desired(policy: Policy, loaded: LoadedDesired, now: datetime) -> list[Finding]:
    """Every desired key against the policy, each violation at its file, line and column."""
    places = _Places(loaded.parsed)
    context = Context(now)
    return sorted(
        finding(violation, key.label, places.where(key, violation.path))
        for key in loaded.state.keys
        for violation in policy.check(_as_written(key), key.waivers, context)
    )


def check_live(
    policy: Policy,
    observed: Iterable[Mapping[str, Any]],
    desired: DesiredState,
    now: datetime,
    rotated: Mapping[str, float] | None = None,
) -> list[Finding]:
    """Every key of the project (unmanaged ones too), with the waivers of the desired key naming it;
    `rotated`: the latest rotation of each key the journal proves."""
    by_id = {key.id: key for key in desired.keys if key.id is not None}
    by_name = {str(key.fields.get("name")): key for key in desired.keys if key.id is None}
    found = []
    for live in observed:
        key_id = str(live.get("id"))
        desired_key = by_id.get(key_id) or by_name.get(str(live.get("name")))
        context = Context(now, live=True, secret_since=secret_since(live, rotated or {}))
        waivers = desired_key.waivers if desired_key else ()
        source = desired_key.source if desired_key else None
        where: Where = (source.path, source.line, source.column, "") if source else ("", 0, 0, "")
        found += [finding(violation, key_id, where) for violation in policy.check(live, waivers, context)]
    return sorted(found)


def check_plan(policy: Policy, plan: Plan, observed: Iterable[Mapping[str, Any]], now: datetime) -> list[Finding]:
    """The violations the plan's changes would introduce, and those its keys already have."""
    verdict = plan_verdict(policy, plan, observed, Context(now))
    found = []
    for key in verdict.keys:
        where: Where = (key.key.source.path, key.key.source.line, key.key.source.column, "")
        found += [finding(violation, key.label, where, "introduced") for violation in key.introduced]
        found += [finding(violation, key.label, where, "existing") for violation in key.existing]
    return sorted(found)
