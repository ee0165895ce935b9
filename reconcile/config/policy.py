"""A policy section (the config's `policy:`, a target's, or a `--policy FILE`) → a Policy, or every
problem in it, located like a desired file's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reconcile.desired.loader import Diagnostic, ParsedFile, parse_text
from reconcile.desired.validation import located, schema_problems
from reconcile.errors import ConfigError
from reconcile.files import read_input
from reconcile.policy.policy import Policy, merged_section, parse_policy
from reconcile.schemas.validators import POLICY_SCHEMA


def section_problems(parsed: ParsedFile, where: Sequence[str | int], section: Mapping[str, Any]) -> list[Diagnostic]:
    """What the schema cannot see in the section at `where` of a file valid against its schema."""
    _, problems = parse_policy(section)
    return [located(parsed, [*where, *path], message) for path, message in problems]


def resolve(top: Mapping[str, Any] | None, override: Mapping[str, Any] | None) -> Policy | None:
    """A target's policy: its own section over the top-level one (both already checked); None when
    neither says anything."""
    if top is None and override is None:
        return None
    policy, _ = parse_policy(merged_section(top, override))
    return policy if policy is not None and not policy.empty else None


def load_policy_file(path: Path) -> tuple[Policy | None, list[Diagnostic]]:
    """`--policy FILE`: the same section as the config's `policy:`, at the top level of its own file."""
    try:
        raw = read_input(path)
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the policy: {error.strerror}") from None
    parsed = parse_text(str(path), raw, expected="a policy: a mapping with `rules` and/or `custom`")
    if not isinstance(parsed, ParsedFile):
        return None, parsed
    problems = [*parsed.problems, *schema_problems(parsed, POLICY_SCHEMA)]
    if not problems and isinstance(parsed.data, dict):
        problems = section_problems(parsed, [], parsed.data)
    if problems or not isinstance(parsed.data, dict):
        return None, sorted(problems) or [located(parsed, [], "the top level must be a mapping")]
    return resolve(parsed.data, None), []
