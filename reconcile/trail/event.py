"""The event an apply writes into the project's trail (POST /v1/mgmt/audit/event), so that the
trail itself tells a reviewed change from a hand edit. Pure: the caller sends it.

`data` holds what `attribution.tool_run` reads back: the run, the commit and repository, the
GitHub run when there is one, counts per outcome, the changed key ids (at most `MAX_LISTED_KEYS`,
and how many more), the window the writes happened in, each listed key's writes (kind, sent,
answered), and the actor Descope recorded for them, only when the run proved it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconcile.trail.records import EVENT_ACTION, EVENT_ACTOR
from reconcile.trail.writes import Timeline

MAX_LISTED_KEYS = 100


@dataclass(frozen=True)
class RunSource:
    """Where a run came from: its id, the desired files' commit, and the CI run, when known."""

    run_id: str
    version: str
    commit: str | None = None
    repository: str | None = None  # GITHUB_REPOSITORY, else the git remote
    github_run_id: str | None = None
    github_server: str | None = None

    @classmethod
    def of(cls, run_id: str, version: str, git: Mapping[str, Any] | None, env: Mapping[str, str]) -> RunSource:
        return cls(
            run_id=run_id,
            version=version,
            commit=git.get("commit") if git else None,
            repository=env.get("GITHUB_REPOSITORY") or (git.get("remote") if git else None),
            github_run_id=env.get("GITHUB_RUN_ID") or None,
            github_server=env.get("GITHUB_SERVER_URL") or None,
        )

    @property
    def run_url(self) -> str | None:
        if self.github_server and self.github_run_id and self.repository and "/" in self.repository:
            return f"{self.github_server.rstrip('/')}/{self.repository}/actions/runs/{self.github_run_id}"
        return None


def apply_event(  # noqa: PLR0913 (keyword-only: one per field of the event)
    source: RunSource,
    *,
    outcomes: Mapping[str, int],
    changed: Sequence[str],
    timeline: Timeline,
    writer: str | None,  # proven only: an unproven writer is never recorded
    overwritten: int,
    warn: bool,
    tenant: str | None = None,
) -> dict[str, Any]:
    """The CreateAuditRequest body for one apply that changed keys."""
    first, last = timeline.span() or (0, 0)
    listed = sorted(changed)[:MAX_LISTED_KEYS]
    data: dict[str, Any] = {
        "tool": EVENT_ACTOR,
        "version": source.version,
        "runId": source.run_id,
        "commit": source.commit,
        "repository": source.repository,
        "githubRunId": source.github_run_id,
        "githubServerUrl": source.github_server,
        "runUrl": source.run_url,
        "outcomes": dict(sorted(outcomes.items())),
        "changedKeyIds": listed,
        "changedKeysNotListed": len(changed) - len(listed),
        "writesFrom": first,
        "writesTo": last,
        "writes": {
            key_id: [[write.kind.value, write.sent, write.done] for write in timeline.writes.get(key_id, ())]
            for key_id in listed
        },
        "writerActorId": writer,
        "overwritten": overwritten,
    }
    body: dict[str, Any] = {
        "action": EVENT_ACTION,
        "type": "warn" if warn else "info",
        "actorId": EVENT_ACTOR,
        "data": {name: value for name, value in data.items() if value is not None},
    }
    if tenant:
        body["tenantId"] = tenant
    return body
