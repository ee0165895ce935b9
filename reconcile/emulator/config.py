"""The emulator's settings, and the parsers the command line and `/_emulator/config` share.

Every switch that changes how truthfully hard the server is to talk to lives here, so a test in
the same process sets it on `EmulatorConfig` and a test against a server in another process sets
it with a flag or at run time over HTTP, with the same names and the same checks.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from reconcile.emulator.store import UpdateSemantics

# "slow": the real answer, late (the work is done); "slow-504": a late 504 from the gateway.
# The others answer at once: a 5xx, or a connection dropped without an answer ("close").
FAULT_KINDS = ("500", "502", "503", "504", "close", "slow", "slow-504")
SlowApplies = Literal["before", "after"]
LICENSE_SHAPES = ("tier", "empty", "refused")  # `{"rateLimitTier": ...}`; the old `{}`; a 403
ATTRIBUTE_LOOKUPS = ("name", "displayName", "missing")  # what `?name=` means; "missing": no such endpoint
# Where an audit record names the access key(s) it is about: the real location is unpublished.
_PLACE = re.compile(r"^(userId|externalIds|data\.[A-Za-z_][A-Za-z0-9_]*)$")


@dataclass(frozen=True)
class Window:
    """`count` requests per `seconds`; going over refuses everything for `block` seconds.

    block 0: no extra block, a caller over the limit waits until the window has room again.
    """

    count: int
    seconds: float
    block: float

    def __str__(self) -> str:
        return f"{self.count}/{self.seconds:g}s, block {self.block:g}s"


@dataclass
class EmulatorConfig:
    project_id: str = "P2emulator0000000000000000000"
    management_key: str = "K2emulator-management-key"
    extra_management_keys: tuple[str, ...] = ()  # more accepted management keys (other pipelines)
    actor_names: dict[str, str] = field(default_factory=dict)  # management key -> audit actorId
    update_semantics: UpdateSemantics = "merge"
    rate_limit: float | None = None  # requests per second, token bucket; None: unlimited
    rate_burst: float | None = None  # bucket size; default one second's worth
    rate_window: Window | None = None  # N requests per window, then a block (Descope's published shape)
    retry_after: bool = True  # send Retry-After on 429
    empty_429_body: bool = False
    latency_ms: float = 0.0
    fault_rate: float = 0.0  # share of API requests that fail
    fault_kinds: tuple[str, ...] = FAULT_KINDS
    fault_after_apply: float = 0.0  # share of failed mutations whose change is applied anyway
    slow_seconds: float = 5.0  # how long a "slow" fault stalls (set it above the client's timeout)
    slow_applies: SlowApplies = "before"  # a slow mutation lands before the stall or at its end
    random_seed: int | None = None
    audit_search_window: Window | None = field(default_factory=lambda: Window(10, 60.0, 60.0))
    audit_forbidden: bool = False  # audit search answers 403 (a plan or a key without the right)
    occurred_as_string: bool = True  # audit `occurred` as "1712345678901" (the wire); False: a number
    audit_key_id_places: tuple[str, ...] = ("externalIds",)  # see parse_places
    audit_clock_ahead_ms: int = 0  # the trail's clock ahead of this machine's (a record's `occurred`)
    # The tier handshake: GET /v1/mgmt/license answers this tier; a management request whose
    # x-descope-license header is not it counts in `unlabelled_window` too, Descope's lowest bucket
    # (its published general limit, per caller). None: no such bucket.
    rate_limit_tier: str = "tier4"
    license_shape: str = "tier"  # one of LICENSE_SHAPES
    unlabelled_window: Window | None = field(default_factory=lambda: Window(100, 60.0, 60.0))
    attribute_lookup: str = "name"  # one of ATTRIBUTE_LOOKUPS


def actor_id_for(config: EmulatorConfig, management_key: str) -> str:
    """The audit actorId of calls made with this key: its configured name, else a non-secret digest."""
    name = config.actor_names.get(management_key)
    return name or "mgmt-" + hashlib.sha256(management_key.encode()).hexdigest()[:8]


# --- parsers: each raises ValueError with a message fit for a command line or a 400 -----------
def parse_window(text: str, block: float | None = None) -> Window:
    """`COUNT/SECONDS` (e.g. `100/60`); block defaults to the window's length, as Descope publishes."""
    count_text, slash, seconds_text = text.partition("/")
    try:
        count, seconds = int(count_text), float(seconds_text.rstrip("s") or "nan")
    except ValueError:
        count, seconds = 0, math.nan
    if not slash or count < 1 or not seconds > 0 or not math.isfinite(seconds):
        raise ValueError(f"window {text!r}: use COUNT/SECONDS with COUNT >= 1 and SECONDS > 0, e.g. 100/60")
    if block is not None and not (block >= 0 and math.isfinite(block)):
        raise ValueError("block seconds must be 0 or more")
    return Window(count, seconds, seconds if block is None else block)


def parse_fault_kinds(value: Any) -> tuple[str, ...]:
    """A comma list (text) or a list of kinds."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(item, str) for item in items):
        raise ValueError(f"fault kinds are a list of {', '.join(FAULT_KINDS)}")
    kinds = tuple(item.strip() for item in items if item.strip())
    if not kinds or set(kinds) - set(FAULT_KINDS):
        raise ValueError(f"fault kinds are {', '.join(FAULT_KINDS)}")
    return kinds


def parse_places(value: Any) -> tuple[str, ...]:
    """Where audit records put the key id: any of `userId`, `externalIds`, `data.<field>`."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(item, str) for item in items):
        raise ValueError("key id places are a list of userId, externalIds, data.<field>")
    places = tuple(item.strip() for item in items if item.strip())
    bad = [place for place in places if not _PLACE.match(place)]
    if not places or bad:
        raise ValueError(f"key id places {bad or '(none)'}: use userId, externalIds or data.<field>")
    return places


def _share(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError("a share is a number from 0 to 1")
    return float(value)


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (value >= 0 and math.isfinite(value)):
        raise ValueError("seconds are a number, 0 or more")
    return float(value)


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("a switch is true or false")
    return value


def _one_of(*choices: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"one of {', '.join(choices)}")
        return str(value)

    return check


# The switches `/_emulator/config` may change while the server runs (the rate limiters and the
# credentials are fixed at start: changing them under a running client would test nothing real).
RUNTIME_SETTINGS: dict[str, Callable[[Any], Any]] = {
    "update_semantics": _one_of("merge", "replace"),
    "retry_after": _flag,
    "empty_429_body": _flag,
    "latency_ms": _seconds,
    "fault_rate": _share,
    "fault_kinds": parse_fault_kinds,
    "fault_after_apply": _share,
    "slow_seconds": _seconds,
    "slow_applies": _one_of("before", "after"),
    "audit_forbidden": _flag,
    "occurred_as_string": _flag,
    "audit_key_id_places": parse_places,
    "license_shape": _one_of(*LICENSE_SHAPES),
    "attribute_lookup": _one_of(*ATTRIBUTE_LOOKUPS),
}


def runtime_view(config: EmulatorConfig) -> dict[str, Any]:
    """The run-time switches and their values (never a credential)."""
    view = {name: getattr(config, name) for name in RUNTIME_SETTINGS}
    return {name: list(value) if isinstance(value, tuple) else value for name, value in view.items()}


def apply_runtime(config: EmulatorConfig, changes: Mapping[str, Any]) -> None:
    """Check every change first, then set them all: a bad one changes nothing."""
    unknown = sorted(set(changes) - set(RUNTIME_SETTINGS))
    if unknown:
        raise ValueError(f"not settable at run time: {unknown}; settable: {sorted(RUNTIME_SETTINGS)}")
    checked: dict[str, Any] = {}
    for name, value in changes.items():
        try:
            checked[name] = RUNTIME_SETTINGS[name](value)
        except ValueError as error:
            raise ValueError(f"{name}: {error}") from None
    for name, value in checked.items():
        setattr(config, name, value)
