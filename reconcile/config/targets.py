"""`descope-reconcile.yaml` → named targets, or every problem in it, located like a desired file's.

A target is one Descope project: where its project id and management key come from (the name of an
environment variable or the path of a file: the key itself can never be written here), its desired
files, its base URL and its run settings. Relative paths are relative to the config file's folder,
so a run from elsewhere (`--config repo/descope-reconcile.yaml`) reads the same files. Nothing here
reads an environment variable or a secret: the client does, when a target connects.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from reconcile.config.identity import canonical_project, is_loopback
from reconcile.desired.loader import Diagnostic, ParsedFile, parse_text
from reconcile.desired.validation import json_path, located, schema_problems
from reconcile.errors import ConfigError
from reconcile.files import read_input
from reconcile.plan.limit import ChangeLimit
from reconcile.schemas.validators import CONFIG_SCHEMA

if TYPE_CHECKING:  # the policy package is imported only when a config has a `policy:` section
    from reconcile.policy.policy import Policy

# The run settings a target may set (camelCase, like the report's `run.settings`).
SETTINGS = ("rate", "concurrency", "maxChanges", "timeout", "maxAttempts", "keyDeadline", "auditTenant")
# Either one or the other of each pair, never both.
_SOURCES = (("projectId", "projectIdEnv"), ("managementKeyEnv", "managementKeyFile"))
_ENV_FIELDS = ("projectIdEnv", "managementKeyEnv")
_SECRET_FIELD = "managementKey"  # noqa: S105 (the field refused, not a password)
_TARGET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class TargetConfig:
    """One target as the config names it: sources of its credentials, never the credentials."""

    name: str
    paths: tuple[str, ...]
    project_id: str = ""
    project_id_env: str = ""
    management_key_env: str = ""
    management_key_file: str = ""
    base_url: str = ""
    settings: Mapping[str, Any] = field(default_factory=dict)  # SETTINGS names; maxChanges a ChangeLimit
    policy: Policy | None = None  # the top-level `policy:` with the target's own over it


@dataclass(frozen=True)
class Config:
    path: str
    targets: Mapping[str, TargetConfig]  # in the file's order


def _target_problems(parsed: ParsedFile, name: str, item: Mapping[str, Any]) -> list[Diagnostic]:
    base: list[str | int] = ["targets", name]
    problems = []
    if not _TARGET_NAME.fullmatch(name):
        message = f"target name {name!r}: use letters, digits, `-`, `_` and `.` (it names files and sections)"
        problems.append(located(parsed, base, message, key=True))
    for one, other in _SOURCES:
        if one in item and other in item:
            problems.append(located(parsed, [*base, other], f"give `{one}` or `{other}`, not both", key=True))
        elif one not in item and other not in item and _SECRET_FIELD not in item:
            problems.append(located(parsed, base, f"target `{name}` needs `{one}` or `{other}`", key=True))
    for env_field in _ENV_FIELDS:  # never echo the value: it may be a key pasted in the wrong place
        value = item.get(env_field)
        if isinstance(value, str) and value and not _ENV_NAME.fullmatch(value):
            message = f"`{env_field}` must name an environment variable (letters, digits and `_`)"
            problems.append(located(parsed, [*base, env_field], message))
    base_url = _base_url_problem(item.get("baseUrl"))
    if base_url is not None:
        problems.append(located(parsed, [*base, "baseUrl"], base_url))
    key_file = item.get("managementKeyFile")
    if isinstance(key_file, str) and key_file:
        problem = key_file_problem(Path(parsed.path).parent / key_file)
        if problem is not None:
            problems.append(located(parsed, [*base, "managementKeyFile"], problem))
    limit = item.get("maxChanges")
    if isinstance(limit, int | str) and not isinstance(limit, bool):
        try:
            ChangeLimit.parse(str(limit))
        except ValueError as error:
            problems.append(located(parsed, [*base, "maxChanges"], f"`maxChanges` {error}"))
    return problems


def _is_secret_holder(item: Any) -> bool:
    return isinstance(item, dict) and _SECRET_FIELD in item


def _base_url_problem(value: Any) -> str | None:
    """Why `baseUrl` cannot be used, said here with its line rather than when the target connects
    (never quoting it: credentials in a URL are refused, not repeated)."""
    if not isinstance(value, str) or not value:
        return None  # the schema says it
    try:
        parts = urlsplit(value)
        _ = parts.port
    except ValueError:
        return "`baseUrl` is not a valid URL"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "`baseUrl` must be an http(s) URL, such as https://api.descope.com"
    if parts.username is not None or parts.password is not None:
        return (
            "`baseUrl` must not hold credentials: the management key goes in `managementKeyEnv` or `managementKeyFile`"
        )
    if parts.scheme == "http" and not is_loopback(parts.hostname):  # as the client refuses it, said here located
        return f"`baseUrl` must use https:// for {parts.hostname}: only a loopback address may be reached without TLS"
    return None


def key_file_problem(path: Path) -> str | None:
    """Why a management key file is refused, as ssh refuses a private key: readable or writable by
    anyone but its owner, or owned by someone else (root aside), or not a regular file. A symbolic
    link is followed and its target named. A file that is not there yet (mounted only where the
    network commands run) is no problem here: the client says so when it reads it."""
    try:
        resolved = path.resolve(strict=True)
        info = resolved.stat()
    except FileNotFoundError:  # not there yet, or a link to what is not there yet
        return None
    except RuntimeError:  # a loop of links (pathlib before 3.13; OSError ELOOP after)
        return f"`managementKeyFile` {path} is a loop of symbolic links"
    except OSError as error:
        return f"`managementKeyFile` {path} cannot be read: {error.strerror}"
    where = f"{path} (a link to {resolved})" if resolved != path.absolute() else str(path)
    if not stat.S_ISREG(info.st_mode):
        return f"`managementKeyFile` {where} is not a regular file"
    if info.st_uid not in (os.getuid(), 0):
        return f"`managementKeyFile` {where} is owned by uid {info.st_uid}, not by you: a key file must be your own"
    if info.st_mode & 0o077:
        mode = stat.S_IMODE(info.st_mode)
        return f"`managementKeyFile` {where} is open to others (mode {mode:04o}): `chmod 600 {resolved}`"
    return None


def _duplicate_projects(parsed: ParsedFile, items: Mapping[str, Any]) -> list[Diagnostic]:
    """Two targets naming one project would apply at once, the last write winning: refused, at the
    second. One project: the same project id (or the same variable naming it) at the same canonical address."""
    first: dict[str, str] = {}
    problems = []
    for name, item in items.items():
        if not isinstance(item, dict):
            continue
        project = item.get("projectId") or (f"${item['projectIdEnv']}" if item.get("projectIdEnv") else None)
        base_url = item.get("baseUrl") or ""
        if not isinstance(project, str) or not isinstance(base_url, str) or _base_url_problem(base_url):
            continue  # said above
        identity = canonical_project(base_url, project)
        if identity in first:
            field = "projectId" if "projectId" in item else "projectIdEnv"
            line, _ = parsed.locate(["targets", first[identity]], key=True)
            message = (
                f"targets `{first[identity]}` (line {line}) and `{name}` name one project "
                f"({identity.replace(' ', ', project ')}): they would write it at once; keep one target"
            )
            problems.append(located(parsed, ["targets", name, field], message))
        else:
            first[identity] = name
    return problems


def _problems(parsed: ParsedFile) -> list[Diagnostic]:
    data = parsed.data
    if not isinstance(data, dict):
        return [*parsed.problems, located(parsed, [], "the top level must be a mapping with `version` and `targets`")]
    targets = data.get("targets")
    items = {str(name): item for name, item in targets.items()} if isinstance(targets, dict) else {}
    secrets = [["targets", name, _SECRET_FIELD] for name, item in items.items() if _is_secret_holder(item)]
    hidden = {json_path(path) for path in secrets}  # said once, below, without the generic message
    problems = [*parsed.problems, *(p for p in schema_problems(parsed, CONFIG_SCHEMA) if p.field not in hidden)]
    message = (
        "the management key cannot be in the config: name the environment variable that holds it "
        "(`managementKeyEnv`) or a file (`managementKeyFile`)"
    )
    problems.extend(located(parsed, path, message, key=True) for path in secrets)
    for name, item in items.items():
        if isinstance(item, dict):
            problems.extend(_target_problems(parsed, name, item))
    problems.extend(_duplicate_projects(parsed, items))
    if not problems:
        problems.extend(_policy_problems(parsed, data, items))
    return problems


def _policy_sections(data: Mapping[str, Any], items: Mapping[str, Any]) -> list[tuple[list[str | int], Any]]:
    sections: list[tuple[list[str | int], Any]] = [(["policy"], data.get("policy"))]
    sections += [(["targets", name, "policy"], item.get("policy")) for name, item in items.items()]
    return [(where, section) for where, section in sections if section is not None]


def _policy_problems(parsed: ParsedFile, data: Mapping[str, Any], items: Mapping[str, Any]) -> list[Diagnostic]:
    sections = _policy_sections(data, items)
    if not sections:
        return []
    from reconcile.config.policy import section_problems  # noqa: PLC0415 (only a config with a policy)

    return [problem for where, section in sections for problem in section_problems(parsed, where, section)]


def _target(name: str, item: Mapping[str, Any], folder: Path) -> TargetConfig:
    def relative(text: str) -> str:
        return str(folder / text)

    settings = {setting: item[setting] for setting in SETTINGS if setting in item}
    if "maxChanges" in settings:
        settings["maxChanges"] = ChangeLimit.parse(str(settings["maxChanges"]))
    key_file = item.get("managementKeyFile")
    return TargetConfig(
        name=name,
        paths=tuple(relative(path) for path in item["paths"]),
        project_id=item.get("projectId", ""),
        project_id_env=item.get("projectIdEnv", ""),
        management_key_env=item.get("managementKeyEnv", ""),
        management_key_file=relative(key_file) if key_file else "",
        base_url=item.get("baseUrl", ""),
        settings=settings,
    )


def load_config(path: Path) -> tuple[Config | None, list[Diagnostic]]:
    """The config, or None and every problem in it (sorted by line)."""
    try:
        raw = read_input(path)
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the config: {error.strerror}") from None
    parsed = parse_text(str(path), raw, expected="a mapping with `version` and `targets`")
    if not isinstance(parsed, ParsedFile):
        return None, parsed
    problems = _problems(parsed)
    if problems:
        return None, sorted(problems)
    targets = {str(name): _target(str(name), item, path.parent) for name, item in parsed.data["targets"].items()}
    if _policy_sections(parsed.data, parsed.data["targets"]):
        from reconcile.config.policy import resolve  # noqa: PLC0415 (only a config with a policy)

        targets = {
            name: replace(target, policy=resolve(parsed.data.get("policy"), parsed.data["targets"][name].get("policy")))
            for name, target in targets.items()
        }
    return Config(str(path), targets), []
