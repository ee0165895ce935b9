"""A `policy:` section (already valid against schemas/policy.schema.json) → a Policy, or the problems
a schema cannot see (a pattern that is not a regular expression, a range that is not one, a custom
rule's schema that is not a JSON Schema); a target's override merged rule by rule; a key → its
violations, with its waivers applied. Pure."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from typing import TYPE_CHECKING, Any

from reconcile.model import Waiver
from reconcile.policy.rules import (
    BUILTIN,
    ERROR,
    WAIVER_EXPIRED,
    WAIVER_UNUSED,
    WARNING,
    Context,
    CustomRule,
    KeyPath,
    Rule,
    RuleInfo,
    Violation,
    evaluate_builtin,
    evaluate_custom,
    network,
)

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

Problem = tuple[KeyPath, str]  # (where in the section, what is wrong)


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...]
    custom: tuple[CustomRule, ...] = ()

    @property
    def ids(self) -> set[str]:
        return {rule.id for rule in self.rules} | {rule.id for rule in self.custom}

    @property
    def empty(self) -> bool:
        return not self.rules and not self.custom

    def info(self, rule_id: str) -> RuleInfo:
        """What people read about a rule (a custom rule: its description)."""
        if rule_id in BUILTIN:
            return BUILTIN[rule_id][0]
        for waiver_rule in (WAIVER_EXPIRED, WAIVER_UNUSED):
            if rule_id == waiver_rule.id:
                return waiver_rule
        custom = next((rule for rule in self.custom if rule.id == rule_id), None)
        description = custom.description if custom else rule_id
        return RuleInfo(rule_id, description, f"Make the key satisfy the custom rule: {description}.")

    def catalog(self) -> list[RuleInfo]:
        """Every rule this policy can report, waivers' included."""
        ordered = [rule.id for rule in self.rules] + [rule.id for rule in self.custom]
        return [self.info(rule_id) for rule_id in ordered] + [WAIVER_EXPIRED, WAIVER_UNUSED]

    @cached_property
    def _validators(self) -> dict[str, Draft202012Validator]:
        return {rule.id: rule.validator() for rule in self.custom}

    def violations(self, key: Mapping[str, Any], context: Context) -> list[Violation]:
        """Every rule the key breaks, before waivers."""
        found = [violation for rule in self.rules for violation in evaluate_builtin(rule, key, context)]
        for custom in self.custom:
            found.extend(evaluate_custom(custom, self._validators[custom.id], key))
        return found

    def check(self, key: Mapping[str, Any], waivers: Sequence[Waiver], context: Context) -> list[Violation]:
        """The key's violations with its waivers applied: a current waiver marks the violations of its
        rule as waived; an expired waiver is a violation itself (and waives nothing); a waiver whose rule
        does not fire is reported, so that waivers do not outlive their reason."""
        found = self.violations(key, context)
        today = context.now.date()
        current: dict[str, Waiver] = {}
        problems: list[Violation] = []
        live_only = {rule_id for rule_id, (info, _) in BUILTIN.items() if info.live_only}
        for waiver in waivers:
            where: KeyPath = ("waivers", waiver.index)
            if date.fromisoformat(waiver.until) < today:
                message = (
                    f"the waiver of `{waiver.rule}` expired on {waiver.until}: fix the key, or renew the waiver "
                    "with a later `until`"
                )
                problems.append(Violation(WAIVER_EXPIRED.id, ERROR, message, where))
            elif waiver.rule in current:
                message = f"`{waiver.rule}` is already waived by waiver {current[waiver.rule].index + 1}: remove one"
                problems.append(Violation(WAIVER_UNUSED.id, WARNING, message, where))
            elif not any(v.rule == waiver.rule for v in found) and (context.live or waiver.rule not in live_only):
                why = "the rule does not fire on this key" if waiver.rule in self.ids else "the policy has no such rule"
                message = f"the waiver of `{waiver.rule}` waives nothing: {why}; remove it"
                problems.append(Violation(WAIVER_UNUSED.id, WARNING, message, where))
            else:
                current.setdefault(waiver.rule, waiver)
        waived = [
            Violation(v.rule, v.severity, v.message, v.path, current[v.rule].reason) if v.rule in current else v
            for v in found
        ]
        return [*waived, *problems]


def _settings(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def _problems(rules: Mapping[str, Any], custom: Sequence[Mapping[str, Any]]) -> list[Problem]:
    problems: list[Problem] = []
    for rule_id in ("forbidden-ips", "allowed-ips"):
        for index, text in enumerate(_settings(rules.get(rule_id)).get("ranges", ())):
            if network(text) is None:
                problems.append((("rules", rule_id, "ranges", index), f"`{text}` is not an IP address or CIDR range"))
    pattern = _settings(rules.get("name-pattern")).get("pattern")
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as error:
            problems.append((("rules", "name-pattern", "pattern"), f"not a regular expression: {error}"))
    seen: set[str] = set()
    for index, item in enumerate(custom):
        rule_id = item["id"]
        if rule_id in BUILTIN or rule_id in (WAIVER_EXPIRED.id, WAIVER_UNUSED.id) or rule_id in seen:
            problems.append((("custom", index, "id"), f"rule id `{rule_id}` is already taken: choose another"))
        seen.add(rule_id)
        problems.extend((("custom", index, "schema"), message) for message in _schema_problems(item["schema"]))
    return problems


MAX_SCHEMA_DEPTH = 32  # far deeper than any rule needs; deeper exhausts the validator's recursion


def _depth(value: Any) -> int:
    """How deeply the value nests (iteratively: a hostile depth must not exhaust the stack here)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth <= MAX_SCHEMA_DEPTH:
            children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _references(schema: Any) -> Iterator[tuple[str, str]]:
    """(keyword, target) of every reference in the schema."""
    stack = [schema]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield from ((word, item[word]) for word in ("$ref", "$dynamicRef") if isinstance(item.get(word), str))
        stack.extend(item.values() if isinstance(item, dict) else item if isinstance(item, list) else ())


def _reference_problems(schema: Any) -> list[str]:
    """A custom rule's schema is followed offline and within itself: a reference to another document
    (a URL, a file) is refused, never fetched, and one that points nowhere is said before any key."""
    from referencing import Registry  # noqa: PLC0415
    from referencing.exceptions import Unresolvable  # noqa: PLC0415
    from referencing.jsonschema import DRAFT202012  # noqa: PLC0415

    if _depth(schema) > MAX_SCHEMA_DEPTH:
        return [f"nested deeper than {MAX_SCHEMA_DEPTH} levels: flatten it (`$defs` and local `$ref`s)"]
    resolver = Registry().with_resource("urn:rule", DRAFT202012.create_resource(schema)).resolver("urn:rule")
    problems = []
    for word, target in dict.fromkeys(_references(schema)):
        if not target.startswith("#"):
            problems.append(f"`{word}: {target}` refers outside the rule: only `#/...` references are followed")
            continue
        try:
            resolver.lookup(target)
        except Unresolvable:
            problems.append(f"`{word}: {target}` points at nothing in the rule's schema")
    return problems


def _schema_problems(schema: Any) -> list[str]:
    from jsonschema import Draft202012Validator  # noqa: PLC0415 (only a policy with custom rules needs it)
    from jsonschema.exceptions import SchemaError  # noqa: PLC0415

    outside = _reference_problems(schema)
    if outside:
        return outside
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as error:
        return [f"not a JSON Schema (draft 2020-12): {' '.join(error.message.split())}"]
    return []


def merged_section(base: Mapping[str, Any] | None, override: Mapping[str, Any] | None) -> dict[str, Any]:
    """A target's section over the top-level one: each rule it names replaces the top-level rule
    (`false` turns it off); each custom rule replaces the one with its id, or is added."""
    base, override = base or {}, override or {}
    rules = {**_settings(base.get("rules")), **_settings(override.get("rules"))}
    custom = {item["id"]: item for item in [*base.get("custom", ()), *override.get("custom", ())]}
    return {"rules": rules, "custom": list(custom.values())}


def parse_policy(section: Mapping[str, Any]) -> tuple[Policy | None, list[Problem]]:
    """The policy of a valid section, or the problems the schema cannot see."""
    rules_section = _settings(section.get("rules"))
    custom_section = list(section.get("custom") or ())
    problems = _problems(rules_section, custom_section)
    if problems:
        return None, problems
    rules = tuple(
        Rule(rule_id, _settings(value).get("severity", ERROR), _settings(value))
        for rule_id, value in rules_section.items()
        if value is not False
    )
    custom = tuple(
        CustomRule(item["id"], item["description"], item["schema"], item.get("severity", ERROR))
        for item in custom_section
    )
    return Policy(rules, custom), []
