"""python -m reconcile.emulator: run the local Descope-compatible server until interrupted.

The first line on stdout is the base URL (useful with --port 0, which picks a free port).
"""

from __future__ import annotations

import argparse
import json
import signal
import ssl
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reconcile.desired.loader import parse_text
from reconcile.emulator.config import (
    FAULT_KINDS,
    LICENSE_SHAPES,
    EmulatorConfig,
    Window,
    parse_fault_kinds,
    parse_places,
    parse_window,
)
from reconcile.emulator.server import Emulator

PROG = "python -m reconcile.emulator"
EPILOG = """\
API (Authorization: Bearer <project id>:<management key>, unless said otherwise):
  GET  /v1/mgmt/license                     -> {rateLimitTier}: send it as x-descope-license, or the
                                            request counts in --unlabelled-window too (the lowest bucket)
  GET  /v1/mgmt/accesskey?id=ID             load
  GET  /v1/mgmt/accesskey/attribute?name=N  a declared custom attribute -> {attribute}, 404 when undeclared
  POST /v1/mgmt/accesskey/search            {tenantIds, boundUserId, creatingUser, customAttributes, text}
  POST /v1/mgmt/accesskey/update            merge or replace, see --update-semantics
  POST /v1/mgmt/accesskey/create            -> {key, cleartext}
  POST /v1/mgmt/accesskey/rotate            {id} -> {key, cleartext}; the old secret stops working
  POST /v1/mgmt/accesskey/delete[/batch]    {id} / {ids}: all or nothing, 404 for an unknown id
  POST /v1/mgmt/accesskey/[de]activate[/batch]
  POST /v1/auth/accesskey/exchange          Bearer <project id>:<access key cleartext>
                                            -> {keyId, sessionJwt, expiration}
  POST /v1/mgmt/audit/search                {actions, excludedActions, actorIds, userIds, from, to, text,
                                             size (default and at most 1000), page, oldestFirst}
  POST /v1/mgmt/audit/event                 {action, type (info|warn|error), actorId, tenantId, userId, data}

Test endpoints (no credentials, never faulted or limited):
  GET /_emulator/stats | keys | requests | config | audit
  POST /_emulator/config {switch: value}    change fault and audit switches while running
  POST /_emulator/console {id, changes | delete: true, actorId, remoteAddress}
  POST /_emulator/audit {records: [...]}    append raw audit records (any time, any shape)

Faults (--faults): 500 and 503 answer a JSON error, 502 and 504 a gateway's HTML page, close drops
the connection unanswered, slow answers the real answer after --slow-seconds, slow-504 answers 504
after --slow-seconds. A fault never fakes a success; with --fault-after-apply a share of the failed
mutations were made before the answer was lost, as can happen in production.

Seeds are JSON (.json) or YAML 1.2: {keys: [{id, name, ..., cleartext?}], tenants: {id: name},
attributes: [{name, displayName, type, options}]}. A key's `cleartext` (optional) lets a test exchange
it; it is kept only as a SHA-256 digest. Writes refuse a custom attribute the project does not
declare: `attributes`, else every name a seeded key holds.
"""


class SeedError(ValueError):
    """A seed file that cannot be read or is not a seed: one line, the file named."""


def one_line(error: BaseException) -> str:
    """A parser's message on one line: its first line and, when it has more, its last (the why)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    return lines[0] if len(lines) == 1 else f"{lines[0]}: {lines[-1]}"


def load_seed(path: Path) -> dict[str, Any]:
    """`{"keys": [...], "tenants": {tenantId: name}, "attributes": [...]}` from a JSON or YAML 1.2 file
    (attributes: the declared custom attributes; absent: those the keys hold)."""
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SeedError(f"{path}: cannot read the seed: {getattr(error, 'strerror', None) or error}") from None
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except ValueError as error:
            raise SeedError(f"{path}: not a valid JSON file: {one_line(error)}") from None
    else:
        # Read exactly as the desired files are (the same reader, not a look-alike): YAML 1.2, so
        # `yes` and `1_000` stay strings, a tab may follow a colon, dates stay text.
        parsed = parse_text(str(path), raw, expected="a seed")
        if isinstance(parsed, list) or parsed.problems:
            first = (parsed if isinstance(parsed, list) else parsed.problems)[0]
            raise SeedError(f"{first.path}:{first.line}:{first.column}: {first.message}")
        data = parsed.data
    keys = data.get("keys") if isinstance(data, dict) else None
    tenants = data.get("tenants") if isinstance(data, dict) else None
    attributes = data.get("attributes") if isinstance(data, dict) else None
    tenants_ok = tenants is None or (
        isinstance(tenants, dict) and all(isinstance(x, str) for pair in tenants.items() for x in pair)
    )
    if not isinstance(data, dict) or not isinstance(keys, list | None) or not tenants_ok:
        raise SeedError(f"{path}: a seed is a mapping with a `keys` list and a `tenants` mapping of id to name")
    if not isinstance(attributes, list | None):
        raise SeedError(f"{path}: a seed's `attributes` is a list of {{name, displayName, type, options}}")
    return {"keys": keys or [], "tenants": tenants or {}, "attributes": attributes}


def _argument(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """A parser of config.py as an argparse type: its ValueError becomes a usage error."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return convert


def _rate(text: str) -> float:
    """`50/s`, `50` or `3000/min`."""
    number, _, unit = text.partition("/")
    per = {"": 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0}.get(unit.strip().lower())
    if per is None:
        raise ValueError(f"rate {text!r}: use N/s or N/min")
    value = float(number) / per
    if value <= 0:
        raise ValueError("rate must be positive")
    return value


def build_parser() -> argparse.ArgumentParser:
    defaults = EmulatorConfig()
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    server = parser.add_argument_group("server")
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    server.add_argument("--seed", type=Path, help="JSON or YAML 1.2 file: {keys: [...], tenants: {id: name}}")
    server.add_argument("--tls-cert", type=Path, help="serve HTTPS with this certificate (PEM)")
    server.add_argument("--tls-key", type=Path, help="the certificate's private key (PEM)")
    project = parser.add_argument_group("project and credentials")
    project.add_argument("--project-id", default=defaults.project_id)
    project.add_argument("--management-key", default=defaults.management_key)
    project.add_argument(
        "--extra-management-key", action="append", default=[], metavar="KEY", help="another accepted key (repeatable)"
    )
    project.add_argument(
        "--actor-id", help="audit actorId of --management-key's calls (default: mgmt- and 8 hex of its SHA-256)"
    )
    project.add_argument("--update-semantics", choices=("merge", "replace"), default=defaults.update_semantics)
    limits = parser.add_argument_group("rate limits (429; both kinds can be on at once)")
    limits.add_argument("--rate-limit", type=_argument(_rate), metavar="N/s", help="token bucket; 429 beyond it")
    limits.add_argument("--burst", type=float, help="token bucket size (default: one second's worth)")
    limits.add_argument("--window", metavar="COUNT/SECONDS", help="at most COUNT requests in any SECONDS, e.g. 100/60")
    limits.add_argument(
        "--block",
        type=float,
        metavar="SECONDS",
        help="after going over --window, refuse all for this long "
        "(default: the window's length; 0: only until the window has room)",
    )
    limits.add_argument(
        "--unlabelled-window",
        default="100/60",
        metavar="COUNT/SECONDS",
        help="the lowest bucket: requests without the x-descope-license tier count here too "
        "(default 100/60, Descope's published general limit; off: none)",
    )
    limits.add_argument(
        "--license",
        choices=LICENSE_SHAPES,
        default="tier",
        help="GET /v1/mgmt/license answers the tier (default), {} (an older shape) or 403",
    )
    limits.add_argument("--no-retry-after", action="store_true", help="answer 429 without Retry-After")
    limits.add_argument("--empty-429-body", action="store_true", help="answer 429 with an empty body")
    _fault_arguments(parser.add_argument_group("faults (see below)"), defaults)
    _audit_arguments(parser.add_argument_group("audit trail"), defaults)
    return parser


def _fault_arguments(group: argparse._ArgumentGroup, defaults: EmulatorConfig) -> None:
    group.add_argument("--latency-ms", type=float, default=0.0, help="added to every request")
    group.add_argument("--fault-rate", type=float, default=0.0, help="share of API requests that fail (0..1)")
    group.add_argument(
        "--faults",
        type=_argument(parse_fault_kinds),
        default=FAULT_KINDS,
        help=f"comma list of {','.join(FAULT_KINDS)}",
    )
    group.add_argument(
        "--fault-after-apply", type=float, default=0.0, help="share of failed mutations that were made anyway"
    )
    group.add_argument("--slow-seconds", type=float, default=defaults.slow_seconds, help="stall of a slow fault")
    group.add_argument(
        "--slow-applies",
        choices=("before", "after"),
        default=defaults.slow_applies,
        help="a slow mutation is made before the stall, or when it ends (after a client gave up)",
    )
    group.add_argument("--random-seed", type=int, help="make fault injection repeatable")


def _audit_arguments(group: argparse._ArgumentGroup, defaults: EmulatorConfig) -> None:
    group.add_argument(
        "--audit-window",
        default="10/60",
        metavar="COUNT/SECONDS",
        help="audit search's own limit (default 10/60, as Descope publishes; off: none)",
    )
    group.add_argument(
        "--audit-block",
        type=float,
        metavar="SECONDS",
        help="block after going over --audit-window (default: its length)",
    )
    group.add_argument("--audit-forbidden", action="store_true", help="audit search answers 403")
    group.add_argument(
        "--occurred-as-number",
        action="store_true",
        help='audit `occurred` as a number, not "1712345678901" (the wire; an older shape, to test readers)',
    )
    group.add_argument(
        "--audit-key-id-in",
        type=_argument(parse_places),
        default=defaults.audit_key_id_places,
        metavar="PLACES",
        help="where records name the key: comma list of userId, externalIds, data.<field> (default externalIds)",
    )


def _unlabelled(parser: argparse.ArgumentParser, text: str) -> Window | None:
    try:
        return None if text == "off" else parse_window(text)
    except ValueError as error:
        parser.error(f"--unlabelled-window: {error}")


def _windows(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[Window | None, Window | None]:
    if args.block is not None and not args.window:
        parser.error("--block needs --window")
    if args.audit_block is not None and args.audit_window == "off":
        parser.error("--audit-block needs an --audit-window")
    try:
        rate = parse_window(args.window, args.block) if args.window else None
        audit = None if args.audit_window == "off" else parse_window(args.audit_window, args.audit_block)
    except ValueError as error:
        parser.error(str(error))
    return rate, audit


def config_from(parser: argparse.ArgumentParser, args: argparse.Namespace) -> EmulatorConfig:
    rate_window, audit_window = _windows(parser, args)
    return EmulatorConfig(
        project_id=args.project_id,
        management_key=args.management_key,
        extra_management_keys=tuple(args.extra_management_key),
        actor_names={args.management_key: args.actor_id} if args.actor_id else {},
        update_semantics=args.update_semantics,
        rate_limit=args.rate_limit,
        rate_burst=args.burst,
        rate_window=rate_window,
        retry_after=not args.no_retry_after,
        empty_429_body=args.empty_429_body,
        latency_ms=args.latency_ms,
        fault_rate=args.fault_rate,
        fault_kinds=args.faults,
        fault_after_apply=args.fault_after_apply,
        slow_seconds=args.slow_seconds,
        slow_applies=args.slow_applies,
        random_seed=args.random_seed,
        audit_search_window=audit_window,
        audit_forbidden=args.audit_forbidden,
        occurred_as_string=not args.occurred_as_number,
        audit_key_id_places=args.audit_key_id_in,
        license_shape=args.license,
        unlabelled_window=_unlabelled(parser, args.unlabelled_window),
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    config = config_from(parser, args)
    try:
        seed = load_seed(args.seed) if args.seed else {"keys": [], "tenants": {}, "attributes": None}
        tls = None
        if args.tls_cert:
            tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.load_cert_chain(args.tls_cert, args.tls_key)
        emulator = Emulator(
            config,
            seed["keys"],
            tenant_names=seed["tenants"],
            attributes=seed["attributes"],
            host=args.host,
            port=args.port,
            tls=tls,
        )
    except SeedError as error:
        return _fail(str(error))
    except ValueError as error:  # the seed parsed, but the server cannot serve it (a key without id, ...)
        return _fail(f"{args.seed}: {error}")
    except OSError as error:  # the address is taken, a certificate cannot be read
        return _fail(f"cannot start: {one_line(error)}")
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    with emulator:
        print(emulator.url, flush=True)
        print(f"serving {len(emulator.store)} keys; Ctrl-C stops", file=sys.stderr, flush=True)
        stopped.wait()
    return 0


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
