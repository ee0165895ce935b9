"""A run's connection to its project: whose credentials (a config target's sources, else the
environment's), the client, and the session around it (budgets, retry policy, stop signal)."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from reconcile.client.descope import (
    ENVIRONMENT,
    Credentials,
    CredentialSource,
    DescopeClient,
    base_url_for,
    credentials_from_env,
    warm_tls,
)
from reconcile.client.redact import redactor
from reconcile.config.targets import TargetConfig
from reconcile.job.options import Remote
from reconcile.job.session import RetrySettings, Session

log = logging.getLogger("reconcile")


@dataclass(frozen=True)
class Target:
    project_id: str
    base_url: str


def _source(config: TargetConfig) -> CredentialSource:
    """A config target's credentials: only the variable or file it names (not the DESCOPE_* ones)."""
    return CredentialSource(
        project_id=config.project_id,
        project_id_env=config.project_id_env,
        key_env=config.management_key_env,
        key_file_env="",
        key_file=config.management_key_file,
        key_file_label="managementKeyFile",
    )


def credentials_for(config: TargetConfig | None) -> tuple[Credentials, str]:
    """A run's credentials and base URL: its config target's, else the environment's. The key joins
    the redaction filter at once: it is process-wide, so with several targets every key is scrubbed
    from every line."""
    credentials = credentials_from_env(os.environ, _source(config) if config else ENVIRONMENT)
    redactor.add(credentials.management_key)
    if config is None:
        return credentials, base_url_for(credentials.project_id, os.environ)
    # A target's base URL is its own (or the default and regional rule), never DESCOPE_BASE_URL.
    override = {"DESCOPE_BASE_URL": config.base_url} if config.base_url else {}
    return credentials, base_url_for(credentials.project_id, override)


def prepare() -> None:
    """Before a run reads its desired files: what its connection needs that can be made meanwhile
    (the CA bundle, on a thread of its own)."""
    warm_tls()


@asynccontextmanager
async def connect(remote: Remote, *, concurrency: int = 1) -> AsyncIterator[tuple[Session, Target]]:
    """The session for one run; `concurrency` writes in flight at once."""
    credentials, base_url = credentials_for(remote.target)
    target = Target(credentials.project_id, base_url)
    connections = concurrency + 1  # one more for the audit search beside the updates
    settings = RetrySettings(remote.rate, remote.max_attempts, remote.key_deadline, remote.timeout)
    client = DescopeClient(credentials, target.base_url, timeout=remote.timeout, max_connections=connections)
    async with client:
        session = Session(client, settings)
        with session.signals_stop_the_run():
            log.debug("reading access keys from %s", target.base_url)
            yield session, target
