"""The policy's rules: what each built-in rule checks, and a key (as a desired file or the API says it)
→ its violations. Pure but for a timer that bounds a name pattern's match: the clock is an argument, and
nothing here reads a file or the network.

A key is a mapping of its fields. A desired key has only the fields its file manages: an absent
field is one the file does not guarantee, so a rule about it fires (the policy wants the files to say
it). A live key has every field the API returns, `createdTime` included.
"""

from __future__ import annotations

import ipaddress
import re
import signal
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

ERROR, WARNING = "error", "warning"
SEVERITIES = (ERROR, WARNING)
KeyPath = tuple[str | int, ...]  # a place within a key: ("permittedIps", 1)
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
DAY = 86_400
DEFAULT_FORBIDDEN_RANGES = ("0.0.0.0/0", "::/0")


@dataclass(frozen=True)
class RuleInfo:
    """A rule as people read about it: the SARIF rule metadata, the docs."""

    id: str
    title: str
    help: str  # what to change
    live_only: bool = False  # needs what only the API knows (the key's age)


@dataclass(frozen=True)
class Violation:
    """One rule broken by one key, and where in the key."""

    rule: str
    severity: str
    message: str
    path: KeyPath = ()
    waived: str = ""  # the reason of the waiver that covers it


@dataclass(frozen=True)
class Context:
    """What the rules may know besides the key: now, whether the key is live, and since when its
    secret exists (its creation, or a later rotation the journal or the trail proves)."""

    now: datetime
    live: bool = False
    secret_since: float | None = None  # Unix seconds


@dataclass(frozen=True)
class Rule:
    """A built-in rule as the policy turns it on: its severity and settings."""

    id: str
    severity: str = ERROR
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CustomRule:
    id: str
    description: str
    schema: Mapping[str, Any] | bool
    severity: str = ERROR

    def validator(self) -> Draft202012Validator:
        from jsonschema import Draft202012Validator  # noqa: PLC0415 (only a policy with custom rules needs it)
        from referencing import Registry  # noqa: PLC0415

        # An empty registry retrieves nothing: jsonschema's default would fetch a `$ref`'s URL or file.
        return Draft202012Validator(self.schema, registry=Registry())


Found = Iterator[tuple[str, KeyPath]]  # (message, path) of each violation


def _day(seconds: float) -> str:
    """The UTC day of a time, for a message; any number a file or the API may give (beyond the year 9999, too)."""
    try:
        return datetime.fromtimestamp(seconds, UTC).date().isoformat()
    except (OverflowError, ValueError, OSError):
        return f"{seconds:.0f} (Unix seconds: beyond the calendar)"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else None


def _expiry_required(_: Mapping[str, Any], key: Mapping[str, Any], __: Context) -> Found:
    if _number(key.get("expireTime")) is None:
        yield "the key never expires: set `expireTime` (Unix seconds) when it is created", ("expireTime",)


def _created(key: Mapping[str, Any], context: Context) -> tuple[float, str]:
    created = _number(key.get("createdTime")) if context.live else None
    return (created, f"its creation ({_day(created)})") if created else (context.now.timestamp(), "today")


def _max_lifetime(settings: Mapping[str, Any], key: Mapping[str, Any], context: Context) -> Found:
    expires, days = _number(key.get("expireTime")), int(settings["days"])
    if expires is None:
        return  # never expiring is expiry-required's
    start, since = _created(key, context)
    if expires - start > days * DAY:
        latest = _day(start + days * DAY)
        yield (
            f"the key expires on {_day(expires)}, {int((expires - start) // DAY)} days after {since}; the policy "
            f"allows {days}: set `expireTime` no later than {latest}",
            ("expireTime",),
        )


def _ips(key: Mapping[str, Any]) -> list[Any]:
    ips = key.get("permittedIps")
    return ips if isinstance(ips, list) else []


def _permitted_ips_required(_: Mapping[str, Any], key: Mapping[str, Any], __: Context) -> Found:
    if not _ips(key):
        yield (
            "the key can be used from any address: list the addresses it is used from in `permittedIps`",
            ("permittedIps",),
        )


def network(text: str) -> Network | None:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def _entries(key: Mapping[str, Any]) -> Iterator[tuple[int, str, Network]]:
    for index, entry in enumerate(_ips(key)):
        parsed = network(entry) if isinstance(entry, str) else None
        if parsed is not None:
            yield index, entry, parsed


def _ranges(settings: Mapping[str, Any], default: Sequence[str] = ()) -> list[Network]:
    return [parsed for text in settings.get("ranges", default) if (parsed := network(text)) is not None]


def _within(inner: Network, outer: Network) -> bool:
    return inner.version == outer.version and inner.subnet_of(outer)  # type: ignore[arg-type]


def _forbidden_ips(settings: Mapping[str, Any], key: Mapping[str, Any], __: Context) -> Found:
    forbidden = _ranges(settings, DEFAULT_FORBIDDEN_RANGES)
    for index, entry, parsed in _entries(key):
        for banned in forbidden:
            if _within(banned, parsed):
                what = "is" if banned == parsed else "covers"
                yield (
                    f"`{entry}` {what} the forbidden range `{banned}`: list narrower addresses in `permittedIps`",
                    ("permittedIps", index),
                )
                break


def _allowed_ips(settings: Mapping[str, Any], key: Mapping[str, Any], __: Context) -> Found:
    allowed = _ranges(settings)
    for index, entry, parsed in _entries(key):
        if not any(_within(parsed, outer) for outer in allowed):
            inside = ", ".join(str(outer) for outer in allowed)
            yield (
                f"`{entry}` is outside the allowed ranges ({inside}): use addresses inside them",
                (
                    "permittedIps",
                    index,
                ),
            )


def _role_places(key: Mapping[str, Any]) -> Iterator[tuple[str | None, str, KeyPath]]:
    """(tenant id, or None at project level; the role; where it is) of every role of the key."""
    roles = key.get("roleNames")
    for index, role in enumerate(roles if isinstance(roles, list) else []):
        if isinstance(role, str):
            yield None, role, ("roleNames", index)
    tenants = key.get("keyTenants")
    for t_index, tenant in enumerate(tenants if isinstance(tenants, list) else []):
        tenant_roles = tenant.get("roleNames") if isinstance(tenant, dict) else None
        for r_index, role in enumerate(tenant_roles if isinstance(tenant_roles, list) else []):
            if isinstance(role, str):
                yield str(tenant.get("tenantId")), role, ("keyTenants", t_index, "roleNames", r_index)


def _role_list(settings: Mapping[str, Any], tenant: str | None) -> list[str] | None:
    """The roles the rule names for this place (None: it says nothing about it)."""
    if tenant is None:
        listed = settings.get("project")
    else:
        tenants = settings.get("tenants") or {}
        listed = tenants.get(tenant, tenants.get("*"))
    return list(listed) if listed is not None else None


def _where(tenant: str | None) -> str:
    return "at project level" if tenant is None else f"in tenant `{tenant}`"


def _allowed_roles(settings: Mapping[str, Any], key: Mapping[str, Any], __: Context) -> Found:
    for tenant, role, path in _role_places(key):
        allowed = _role_list(settings, tenant)
        if allowed is not None and role not in allowed:
            choice = ", ".join(allowed) or "none"
            yield f"role `{role}` is not allowed {_where(tenant)} (allowed: {choice}): remove it", path


def _forbidden_roles(settings: Mapping[str, Any], key: Mapping[str, Any], __: Context) -> Found:
    for tenant, role, path in _role_places(key):
        if role in (_role_list(settings, tenant) or ()):
            yield f"role `{role}` is forbidden {_where(tenant)}: remove it, or grant a narrower role", path


def _tenant_scoped_only(_: Mapping[str, Any], key: Mapping[str, Any], __: Context) -> Found:
    roles = key.get("roleNames")
    if isinstance(roles, list) and roles:
        yield "the key has project-level roles: give its roles per tenant in `keyTenants` instead", ("roleNames",)


def _required_attributes(settings: Mapping[str, Any], key: Mapping[str, Any], __: Context) -> Found:
    attributes = key.get("customAttributes")
    attributes = attributes if isinstance(attributes, dict) else {}
    for name in settings["names"]:
        if attributes.get(name) in (None, "", []):
            yield f"`customAttributes` has no `{name}`: add it", ("customAttributes",)


class _Slow(Exception):
    pass


def _too_slow(*_: Any) -> None:
    raise _Slow


PATTERN_SECONDS = 0.5  # per name: a pattern needing longer backtracks catastrophically
_slow_patterns: set[str] = set()  # those that did, once in this process: not tried again


def bounded_fullmatch(pattern: str, text: str) -> bool | None:
    """Whether the pattern matches the whole text, or None when it cannot tell within PATTERN_SECONDS:
    Python's engine backtracks without end on some patterns (`(a+)+$` against `aaa…!`), and no pattern
    from a policy file may hang a run. (The engine checks signals while matching; only the main
    thread gets them, elsewhere the match runs unbounded.)"""
    if pattern in _slow_patterns:
        return None
    if threading.current_thread() is not threading.main_thread():
        return re.fullmatch(pattern, text) is not None
    previous = signal.signal(signal.SIGALRM, _too_slow)
    try:
        signal.setitimer(signal.ITIMER_REAL, PATTERN_SECONDS)
        return re.fullmatch(pattern, text) is not None
    except _Slow:
        _slow_patterns.add(pattern)
        return None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _name_pattern(settings: Mapping[str, Any], key: Mapping[str, Any], __: Context) -> Found:
    name, pattern = key.get("name"), settings["pattern"]
    matched = bounded_fullmatch(pattern, name) if isinstance(name, str) else False
    shown = f"`{name}`" if isinstance(name, str) else "the key's name"
    if matched is None:
        yield (
            f"{shown} cannot be matched against the pattern `{pattern}` in {PATTERN_SECONDS} s: the pattern "
            "backtracks without end (a nested quantifier such as `(a+)+`): simplify it, or make the inner "
            "quantifier possessive (`a++`)",
            ("name",),
        )
    elif not matched:
        yield f"{shown} does not match the pattern `{pattern}`: rename the key", ("name",)


def _description_required(_: Mapping[str, Any], key: Mapping[str, Any], __: Context) -> Found:
    description = key.get("description")
    if not isinstance(description, str) or not description.strip():
        yield "the key has no description: say what it is for in `description`", ("description",)


def _max_key_age(settings: Mapping[str, Any], key: Mapping[str, Any], context: Context) -> Found:
    since = context.secret_since or _number(key.get("createdTime"))
    days = int(settings["days"])
    if since is not None and context.now.timestamp() - since > days * DAY:
        age = int((context.now.timestamp() - since) // DAY)
        yield (
            f"the key's secret is {age} days old (since {_day(since)}); the policy allows {days}: rotate it "
            "(`descope-reconcile rotate --due`)",
            (),
        )


Check = Callable[[Mapping[str, Any], Mapping[str, Any], Context], Found]

BUILTIN: dict[str, tuple[RuleInfo, Check]] = {
    info.id: (info, check)
    for info, check in (
        (
            RuleInfo("expiry-required", "Keys expire", "Set `expireTime` on the key (it can be set only at creation)."),
            _expiry_required,
        ),
        (
            RuleInfo(
                "max-lifetime",
                "Keys expire within the maximum lifetime",
                "Set `expireTime` to at most the policy's `days` after the key's creation.",
            ),
            _max_lifetime,
        ),
        (
            RuleInfo(
                "permitted-ips-required",
                "Keys are restricted to addresses",
                "List the addresses or CIDR ranges the key is used from in `permittedIps`.",
            ),
            _permitted_ips_required,
        ),
        (
            RuleInfo(
                "forbidden-ips",
                "No key is usable from a forbidden range",
                "Replace the `permittedIps` entry by narrower ranges (the defaults forbid 0.0.0.0/0 and ::/0).",
            ),
            _forbidden_ips,
        ),
        (
            RuleInfo(
                "allowed-ips",
                "Keys are used only from the allowed ranges",
                "Keep every `permittedIps` entry inside one of the policy's `ranges`.",
            ),
            _allowed_ips,
        ),
        (
            RuleInfo(
                "allowed-roles",
                "Keys hold only allowed roles",
                "Remove the roles the policy does not list, at project level or in the tenant.",
            ),
            _allowed_roles,
        ),
        (
            RuleInfo(
                "forbidden-roles",
                "Keys hold no forbidden role",
                "Remove the forbidden role, or grant a narrower one.",
            ),
            _forbidden_roles,
        ),
        (
            RuleInfo(
                "tenant-scoped-only",
                "Keys have roles only per tenant",
                "Move the key's `roleNames` into `keyTenants` entries.",
            ),
            _tenant_scoped_only,
        ),
        (
            RuleInfo(
                "required-attributes",
                "Keys carry the required custom attributes",
                "Add each required name to `customAttributes`, with a value.",
            ),
            _required_attributes,
        ),
        (
            RuleInfo("name-pattern", "Key names follow the pattern", "Rename the key to match the policy's `pattern`."),
            _name_pattern,
        ),
        (
            RuleInfo("description-required", "Keys are described", "Say what the key is for in `description`."),
            _description_required,
        ),
        (
            RuleInfo(
                "max-key-age",
                "Keys are rotated in time",
                "Rotate the key (`descope-reconcile rotate --due` rotates every key past the age).",
                live_only=True,
            ),
            _max_key_age,
        ),
    )
}
WAIVER_EXPIRED = RuleInfo(
    "waiver-expired", "Waivers are current", "Fix the key, or renew the waiver with a later `until` and a reason."
)
WAIVER_UNUSED = RuleInfo(
    "waiver-unused", "Waivers waive something", "Remove the waiver: the rule it names no longer fires on this key."
)


def evaluate_builtin(rule: Rule, key: Mapping[str, Any], context: Context) -> list[Violation]:
    info, check = BUILTIN[rule.id]
    if info.live_only and not context.live:
        return []
    return [Violation(rule.id, rule.severity, message, path) for message, path in check(rule.settings, key, context)]


def evaluate_custom(rule: CustomRule, check: Draft202012Validator, key: Mapping[str, Any]) -> list[Violation]:
    found: dict[KeyPath, Violation] = {}
    for error in check.iter_errors(dict(key)):
        path = tuple(error.absolute_path)
        message = f"{rule.description}: {' '.join(error.message.split())}"
        found.setdefault(path, Violation(rule.id, rule.severity, message, path))
    return list(found.values())
