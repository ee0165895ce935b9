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
from pathlib import Path
from typing import Any

import yaml

from reconcile.emulator.server import FAULT_KINDS, Emulator, EmulatorConfig


def _rate(text: str) -> float:
    """`50/s`, `50` or `3000/min`."""
    number, _, unit = text.partition("/")
    per = {"": 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0}.get(unit.strip().lower())
    if per is None:
        raise argparse.ArgumentTypeError(f"rate {text!r}: use N/s or N/min")
    value = float(number) / per
    if value <= 0:
        raise argparse.ArgumentTypeError("rate must be positive")
    return value


def _kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(kind.strip() for kind in text.split(",") if kind.strip())
    unknown = set(kinds) - set(FAULT_KINDS)
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"fault kinds are {', '.join(FAULT_KINDS)}")
    return kinds


def load_seed(path: Path) -> dict[str, Any]:
    """JSON or YAML: `{keys: [...], tenants: {tenantId: name}}`."""
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(data, dict) or not isinstance(data.get("keys", []), list):
        raise SystemExit(f"{path}: a seed is a mapping with a `keys` list")
    return data


def build_parser() -> argparse.ArgumentParser:
    defaults = EmulatorConfig()
    parser = argparse.ArgumentParser(prog="python -m reconcile.emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--seed", type=Path, help="JSON or YAML file: {keys: [...], tenants: {id: name}}")
    parser.add_argument("--project-id", default=defaults.project_id)
    parser.add_argument("--management-key", default=defaults.management_key)
    parser.add_argument("--update-semantics", choices=("merge", "replace"), default="merge")
    parser.add_argument("--rate-limit", type=_rate, metavar="N/s", help="server-side token bucket; 429 beyond it")
    parser.add_argument("--burst", type=float, help="token bucket size (default: one second's worth)")
    parser.add_argument("--no-retry-after", action="store_true", help="answer 429 without Retry-After")
    parser.add_argument("--empty-429-body", action="store_true", help="answer 429 with an empty body")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every request")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of requests that fail (0..1)")
    parser.add_argument("--faults", type=_kinds, default=FAULT_KINDS, help=f"comma list of {','.join(FAULT_KINDS)}")
    parser.add_argument(
        "--fault-after-apply", type=float, default=0.0, help="share of failed updates that are applied anyway"
    )
    parser.add_argument("--slow-seconds", type=float, default=defaults.slow_seconds, help="stall of a slow fault")
    parser.add_argument("--random-seed", type=int, help="make fault injection repeatable")
    parser.add_argument("--tls-cert", type=Path, help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--tls-key", type=Path, help="the certificate's private key (PEM)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    seed = load_seed(args.seed) if args.seed else {"keys": []}
    config = EmulatorConfig(
        project_id=args.project_id,
        management_key=args.management_key,
        update_semantics=args.update_semantics,
        rate_limit=args.rate_limit,
        rate_burst=args.burst,
        retry_after=not args.no_retry_after,
        empty_429_body=args.empty_429_body,
        latency_ms=args.latency_ms,
        fault_rate=args.fault_rate,
        fault_kinds=args.faults,
        fault_after_apply=args.fault_after_apply,
        slow_seconds=args.slow_seconds,
        random_seed=args.random_seed,
    )
    tls = None
    if args.tls_cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    emulator = Emulator(config, seed["keys"], tenant_names=seed.get("tenants"), host=args.host, port=args.port, tls=tls)
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    with emulator:
        print(emulator.url, flush=True)
        print(f"serving {len(emulator.store.all())} keys; Ctrl-C stops", file=sys.stderr, flush=True)
        stopped.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
