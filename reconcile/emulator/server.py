"""A Descope-compatible HTTP server for access keys, on loopback, with faults on demand.

Same wire format and auth as the Management API (see schemas/source and the README). Every request
is recorded so tests can assert what was sent; `/_emulator/*` paths expose that over HTTP for
tests and benchmarks that run the server in another process.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from reconcile.emulator.store import KeyStore, StoreError, UpdateSemantics

FAULT_KINDS = ("500", "502", "503", "504", "close", "slow")
ADMIN_PREFIX = "/_emulator/"


@dataclass
class EmulatorConfig:
    project_id: str = "P2emulator0000000000000000000"
    management_key: str = "K2emulator-management-key"
    update_semantics: UpdateSemantics = "merge"
    rate_limit: float | None = None  # requests per second, token bucket; None: unlimited
    rate_burst: float | None = None  # bucket size; default one second's worth
    retry_after: bool = True  # send Retry-After on 429
    empty_429_body: bool = False
    latency_ms: float = 0.0
    fault_rate: float = 0.0  # share of API requests that fail
    fault_kinds: tuple[str, ...] = FAULT_KINDS
    fault_after_apply: float = 0.0  # share of failed updates whose change is applied anyway
    slow_seconds: float = 5.0  # how long a "slow" fault stalls (set it above the client's timeout)
    random_seed: int | None = None


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    status: int | str  # "close" when the connection was dropped without an answer
    body: Any
    at: float


class TokenBucket:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self._tokens, self._at = burst, time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> float:
        """0 when a token was taken, else the seconds until one will be there."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            return (1 - self._tokens) / self.rate


@dataclass
class _Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None


class Emulator:
    """Start with `with Emulator(config, keys) as emulator:`; `emulator.url` is the base URL."""

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        keys: Iterable[Mapping[str, Any]] = (),
        *,
        tenant_names: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.config = config or EmulatorConfig()
        self.store = KeyStore(keys, tenant_names)
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._random = random.Random(self.config.random_seed)  # noqa: S311 - fault injection, not crypto
        limit = self.config.rate_limit
        self._bucket = TokenBucket(limit, self.config.rate_burst or max(1.0, limit)) if limit else None
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._scheme = "https" if tls else "http"
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{self._scheme}://{host!s}:{port}"

    @property
    def auth_header(self) -> str:
        return f"Bearer {self.config.project_id}:{self.config.management_key}"

    def start(self) -> Emulator:
        self._thread = threading.Thread(target=self._server.serve_forever, name="emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- what tests look at -------------------------------------------------------------
    def record(self, entry: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(entry)

    def counts(self) -> dict[str, dict[str, int]]:
        """Requests by path and status."""
        with self._lock:
            counted = Counter((r.path, str(r.status)) for r in self.requests)
        result: dict[str, dict[str, int]] = {}
        for (path, status), n in sorted(counted.items()):
            result.setdefault(path, {})[status] = n
        return result

    def updates_for(self, key_id: str) -> list[RecordedRequest]:
        with self._lock:
            return [
                r
                for r in self.requests
                if r.path.endswith("/accesskey/update") and isinstance(r.body, dict) and r.body.get("id") == key_id
            ]

    # --- request handling ---------------------------------------------------------------
    def answer(self, method: str, path: str, query: str, headers: Mapping[str, str], body: Any) -> _Answer | str:
        """The answer to one request, or "close" / "slow" for a connection-level fault."""
        if path.startswith(ADMIN_PREFIX):
            return self._admin(path)
        if headers.get("authorization") != self.auth_header:
            return _error(401, "E011002", "Unauthorized", "invalid or missing project id and management key")
        if self._bucket is not None:
            wait = self._bucket.take()
            if wait > 0:
                return self._throttled(wait)
        fault = self._pick_fault()
        is_update = method == "POST" and path.endswith("/update")
        if fault is not None and not (is_update and self._flip(self.config.fault_after_apply)):
            return _fault_answer(fault)
        # No fault, or a fault that strikes after the update is applied: do the work first.
        try:
            answer = self._route(method, path, query, body)
        except StoreError as error:
            answer = _error(error.status, error.code, error.description, error.message)
        return _fault_answer(fault) if fault is not None else answer

    def _flip(self, share: float) -> bool:
        with self._lock:
            return self._random.random() < share

    def _pick_fault(self) -> str | None:
        with self._lock:
            if self.config.fault_rate <= 0 or self._random.random() >= self.config.fault_rate:
                return None
            return self._random.choice(self.config.fault_kinds)

    def _throttled(self, wait: float) -> _Answer:
        headers = {"Retry-After": str(max(1, math.ceil(wait)))} if self.config.retry_after else {}
        if self.config.empty_429_body:
            return _Answer(429, headers=headers, raw=b"")
        answer = _error(429, "E130429", "Rate limit exceeded", "too many requests")
        answer.headers.update(headers)
        return answer

    def _route(self, method: str, path: str, query: str, body: Any) -> _Answer:
        base = "/v1/mgmt/accesskey"
        if method == "GET" and path == base:
            key_id = parse_qs(query).get("id", [""])[0]
            return _Answer(200, {"key": self.store.load(key_id)})
        if method == "GET" and path == "/v1/mgmt/license":  # the official SDK's start-up handshake
            return _Answer(200, {})
        if method != "POST":
            return _error(404, "E011001", "Not found", f"{method} {path}")
        if not isinstance(body, dict):
            return _error(400, "E011001", "Bad request", "body must be a JSON object")
        if path == f"{base}/search":
            return _Answer(200, {"keys": self.store.search(body)})
        if path == f"{base}/update":
            return _Answer(200, {"key": self.store.update(body, self.config.update_semantics)})
        for action, status in (("activate", "active"), ("deactivate", "inactive")):
            if path == f"{base}/{action}":
                self.store.set_status([body.get("id", "")], status)
                return _Answer(200, {})
            if path == f"{base}/{action}/batch":
                self.store.set_status(body.get("ids") or [], status)
                return _Answer(200, {})
        return _error(404, "E011001", "Not found", f"{method} {path}")

    def _admin(self, path: str) -> _Answer:
        if path == f"{ADMIN_PREFIX}stats":
            return _Answer(200, {"requests": self.counts(), "total": len(self.requests)})
        if path == f"{ADMIN_PREFIX}keys":
            return _Answer(200, {"keys": self.store.all()})
        if path == f"{ADMIN_PREFIX}requests":
            with self._lock:
                recorded = [r.__dict__ for r in self.requests]
            return _Answer(200, {"requests": recorded})
        return _error(404, "E011001", "Not found", path)


def _error(status: int, code: str, description: str, message: str = "") -> _Answer:
    return _Answer(status, {"errorCode": code, "errorDescription": description, "errorMessage": message})


def _fault_answer(kind: str) -> _Answer | str:
    if kind in ("close", "slow"):
        return kind
    status = int(kind)
    if status in (502, 504):  # what a proxy in front of the API sends: not JSON
        return _Answer(
            status,
            raw=f"<html><body>{status} from the gateway</body></html>".encode(),
            headers={"Content-Type": "text/html"},
        )
    return _error(status, "E011001", "Server error", "injected fault")


def _handler_for(emulator: Emulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like the real API
        # Headers and body go out in two writes; with Nagle's algorithm on, the client's delayed
        # ACK then adds ~40 ms to every answer, latency the real API's front end does not add.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            return  # tests read emulator.requests; stderr stays quiet

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            if emulator.config.latency_ms > 0:
                time.sleep(emulator.config.latency_ms / 1000)
            headers = {name.lower(): value for name, value in self.headers.items()}
            answer = emulator.answer(self.command, parts.path, parts.query, headers, body)
            record = not parts.path.startswith(ADMIN_PREFIX)
            if isinstance(answer, str) and record:  # a connection-level fault: recorded by its kind
                emulator.record(RecordedRequest(self.command, parts.path, answer, body, time.time()))
                record = False
            if answer == "close":
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            if answer == "slow":
                time.sleep(emulator.config.slow_seconds)
                answer = _Answer(200, {})
            assert isinstance(answer, _Answer)
            if record:
                emulator.record(RecordedRequest(self.command, parts.path, answer.status, body, time.time()))
            payload = answer.raw if answer.raw is not None else json.dumps(answer.body).encode()
            self.send_response(answer.status)
            headers_out = {"Content-Type": "application/json", **answer.headers}
            for name, value in headers_out.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = _handle
        do_POST = _handle

    return Handler
