"""One project, one identity (issue 20): the project lock and the config's targets compare projects
however their address is spelled; `validate` refuses, located, what the network commands refuse."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

import pytest

from reconcile.config.identity import canonical_project
from reconcile.errors import ExitCode
from reconcile.job.lock import lock_dir, lock_path
from tests.conftest import cli_env, run_cli, write_desired

LONG_ID = "P2abcdefghijklmnopqrstuvwxyz01234"  # 33 characters: the SDKs use api.2abc.descope.com


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("http://127.0.0.1:8080", "http://localhost:8080/"),
        ("https://API.Descope.com", "https://api.descope.com:443"),
        ("", "https://api.descope.com."),
        ("https://api.2abc.descope.com", ""),
        ("http://[::1]:9", "http://127.0.0.2:9"),
    ],
)
def test_one_project_has_one_identity_however_its_address_is_spelled(one: str, other: str) -> None:
    assert canonical_project(one, LONG_ID) == canonical_project(other, LONG_ID)


@pytest.mark.parametrize(
    ("one", "other", "project"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8081", LONG_ID),
        ("https://api.descope.com", "https://api.descope.com", "P2other"),
        ("https://api.2abc.descope.com", "", "P2short"),  # a short id has no regional host
        ("https://api.descope.com/a", "https://api.descope.com/b", LONG_ID),
    ],
)
def test_other_projects_stay_apart(one: str, other: str, project: str) -> None:
    assert canonical_project(one, LONG_ID) != canonical_project(other, project)


def test_the_lock_is_one_per_project_however_its_url_is_spelled(start_emulator: Any, tmp_path: Path) -> None:
    """6: the lock was keyed by the URL's spelling: an apply through `localhost` ran beside one
    holding the lock through `127.0.0.1`."""
    emulator = start_emulator([{"id": "K1", "name": "old"}])
    desired = write_desired(tmp_path / "desired", [{"id": "K1", "name": "new"}]).parent
    env = cli_env(emulator, XDG_STATE_HOME=str(tmp_path / "state"))
    held = lock_path(lock_dir(env), emulator.url, emulator.config.project_id)
    held.parent.mkdir(parents=True)
    fd = os.open(held, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        spelled = emulator.url.replace("127.0.0.1", "LocalHost") + "/"
        apply = run_cli(["apply", str(desired)], {**env, "DESCOPE_BASE_URL": spelled})
    finally:
        os.close(fd)
    assert apply.code != ExitCode.OK and "another apply is changing this project" in apply.stderr, apply.output
    assert emulator.store.load("K1")["name"] == "old", "nothing was sent"


def _target(project: str, base_url: str | None = None) -> str:
    url = f"    baseUrl: {base_url}\n" if base_url else ""
    return f"    projectId: {project}\n    managementKeyEnv: KEY\n{url}    paths: [desired]\n"


def test_a_config_naming_one_project_in_two_targets_is_refused_located(tmp_path: Path) -> None:
    """6: two targets naming one project applied concurrently, the last write winning."""
    write_desired(tmp_path / "desired", [{"id": "K1", "name": "one"}])
    (tmp_path / "descope-reconcile.yaml").write_text(
        "version: 1\ntargets:\n"
        f"  dev:\n{_target('P2dev')}"
        f"  dev2:\n{_target('P2dev', 'https://API.Descope.com:443/')}"
        f"  eu:\n{_target(LONG_ID)}"
        f"  eu2:\n{_target(LONG_ID, 'https://api.2abc.descope.com')}"
        f"  local:\n{_target('P2dev', 'http://127.0.0.1:4000')}"
        f"  local2:\n{_target('P2dev', 'http://localhost:4000')}"
    )
    result = run_cli(["validate"], cli_env(None), cwd=tmp_path)
    assert result.code == ExitCode.FAILURE, result.output
    assert result.stderr.splitlines() == [
        "descope-reconcile.yaml:8:16: error: targets `dev` (line 3) and `dev2` name one project "
        "(api.descope.com, project P2dev): they would write it at once; keep one target [targets.dev2.projectId]",
        f"descope-reconcile.yaml:17:16: error: targets `eu` (line 12) and `eu2` name one project "
        f"(api.descope.com, project {LONG_ID}): they would write it at once; keep one target "
        "[targets.eu2.projectId]",
        "descope-reconcile.yaml:27:16: error: targets `local` (line 21) and `local2` name one project "
        "(loopback:4000, project P2dev): they would write it at once; keep one target "
        "[targets.local2.projectId]",
        "error: 3 validation errors; nothing was sent",
    ]


def test_validate_refuses_what_the_network_commands_refuse_located(tmp_path: Path) -> None:
    """7: `baseUrl: http://api.descope.com`, a world-readable key file behind a link, and a default
    name all passed `validate`."""
    write_desired(tmp_path / "desired", [{"id": "K1", "name": "one"}])
    (tmp_path / "desired" / "more.yaml").write_text("version: 1\ndefaults:\n  name: x\nkeys:\n  - id: K2\n")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "real.key").write_text("K2-not-a-real-key\n")
    (secrets / "real.key").chmod(0o666)
    (tmp_path / "dev.key").symlink_to(secrets / "real.key")
    (tmp_path / "descope-reconcile.yaml").write_text(
        "version: 1\ntargets:\n"
        "  dev:\n    projectId: P2dev\n    managementKeyFile: dev.key\n    paths: [desired]\n"
        f"  prod:\n{_target('P2prod', 'http://api.descope.com')}"
    )
    result = run_cli(["validate"], cli_env(None), cwd=tmp_path)
    assert result.code == ExitCode.FAILURE, result.output
    assert (
        "descope-reconcile.yaml:5:24: error: `managementKeyFile` dev.key (a link to "
        f"{secrets / 'real.key'}) is open to others (mode 0666): `chmod 600 {secrets / 'real.key'}` "
        "[targets.dev.managementKeyFile]"
    ) in result.stderr
    assert (
        "descope-reconcile.yaml:10:14: error: `baseUrl` must use https:// for api.descope.com: only a loopback "
        "address may be reached without TLS [targets.prod.baseUrl]"
    ) in result.stderr
    assert "K2-not-a-real-key" not in result.output

    (secrets / "real.key").chmod(0o600)
    (tmp_path / "descope-reconcile.yaml").write_text(
        "version: 1\ntargets:\n  dev:\n    projectId: P2dev\n    managementKeyFile: dev.key\n    paths: [desired]\n"
    )
    result = run_cli(["validate"], cli_env(None), cwd=tmp_path)
    assert result.code == ExitCode.FAILURE, result.output
    assert "desired/more.yaml:3:3: error: `defaults` cannot set `name`: each key names its own" in result.stderr
    (tmp_path / "desired" / "more.yaml").unlink()
    assert run_cli(["validate"], cli_env(None), cwd=tmp_path).code == ExitCode.OK
