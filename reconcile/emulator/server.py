"""A Descope-compatible HTTP server for access keys, on loopback, with faults on demand.

Same wire format and auth as the Management API (see schemas/source and the README). Every request
is recorded so tests can assert what was sent; `/_emulator/*` paths expose that over HTTP for
tests and benchmarks that run the server in another process (see reconcile/emulator/admin.py).

The rule every fault follows: it is never kinder than the real API. An answer that says a change
was made means the change was made; an error or a lost answer may hide a change that was made
(`fault_after_apply`), as it can in production; a slow answer is the real answer, late.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import secrets
import socket
import ssl
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

from reconcile.emulator.admin import admin_answer
from reconcile.emulator.answers import Answer, Deferred, error, many_ids, one_id
from reconcile.emulator.attributes import AttributeSchema, not_declared
from reconcile.emulator.audit import (
    KEY_CREATED,
    KEY_DELETED,
    KEY_MODIFIED,
    KEYS_DELETED,
    AuditTrail,
    check_event,
    naming_keys,
)
from reconcile.emulator.config import FAULT_KINDS, EmulatorConfig, actor_id_for
from reconcile.emulator.limits import TokenBucket, WindowLimit
from reconcile.emulator.store import KeyStore, StoreError
from reconcile.emulator.tokens import session_token

__all__ = ["ADMIN_PREFIX", "FAULT_KINDS", "Call", "Emulator", "EmulatorConfig", "Hook", "RecordedRequest"]

ACCESSKEY = "/v1/mgmt/accesskey"
AUDIT = "/v1/mgmt/audit"
EXCHANGE = "/v1/auth/accesskey/exchange"
LICENSE = "/v1/mgmt/license"
LICENSE_HEADER = "x-descope-license"
AUTH_PREFIX = "/v1/auth/"  # the auth API: the caller shows an access key, not a management key
ADMIN_PREFIX = "/_emulator/"


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    status: int | str  # "close" when the connection was dropped without an answer
    body: Any
    at: float
    fault: str | None = None  # the fault injected into this request, if any
    applied: bool | None = None  # a mutation: whether the change was made (None for a read)


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    query: str
    body: Any
    authorization: str
    actor: str  # audit actorId of the management key that made the call ("" on the auth API)
    remote: str  # the caller's address


@dataclass(frozen=True)
class Call:
    """One request, as a test's hook sees it (`Emulator.intercept`)."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: Any
    emulator: Emulator
    hooks: tuple[Hook, ...] = ()  # the hooks that see it next, the emulator's own answer after them
    fault: str | None = None

    def forward(self, body: Any = None, *, fault: str | None = None) -> Answer:
        """The answer of the next hook or, after the last, the emulator's own, made as for any
        request (auth, limits, faults, the work): to this request, or to it with `body` instead of
        its own; with `fault` (one of FAULT_KINDS), that fault instead of `fault_rate`'s draw,
        injected as any fault is."""
        call = replace(self, body=self.body if body is None else body, fault=fault or self.fault)
        if call.hooks:
            return call.hooks[0](replace(call, hooks=call.hooks[1:]))
        return self.emulator.answer(call.method, call.path, call.query, call.headers, call.body, fault=call.fault)


Hook = Callable[["Call"], Answer]


class _Route(NamedTuple):
    handle: Callable[[_Request], Answer]
    mutating: bool


class Emulator:
    """Start with `with Emulator(config, keys) as emulator:`; `emulator.url` is the base URL."""

    def __init__(  # noqa: PLR0913 (keyword-only network settings)
        self,
        config: EmulatorConfig | None = None,
        keys: Iterable[Mapping[str, Any]] = (),
        *,
        tenant_names: Mapping[str, str] | None = None,
        attributes: Iterable[Any] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.config: EmulatorConfig = config or EmulatorConfig()
        keys = list(keys)
        self.store: KeyStore = KeyStore(keys, tenant_names)
        # Declared custom attributes: given, else those the seeded keys hold (see attributes.py).
        self.attributes: AttributeSchema = AttributeSchema.seeded(attributes, keys)
        self.audit: AuditTrail = AuditTrail(self.config.project_id, ahead_ms=self.config.audit_clock_ahead_ms)
        self.requests: list[RecordedRequest] = []
        self.handshakes: list[str] = []  # each license call, by the x-descope-license it carried ("" none)
        self.throttled: Counter[str] = Counter()  # 429s by limit: window, bucket, auditSearch
        self.faults: Counter[str] = Counter()  # injected faults by kind, and "appliedThenFailed"
        self.internal_errors: list[str] = []  # the emulator's own failures (tracebacks): a test's defect, or ours
        self._lock = threading.Lock()
        self._random = random.Random(self.config.random_seed)  # noqa: S311 - fault injection, not crypto
        limit = self.config.rate_limit
        self._bucket = TokenBucket(limit, self.config.rate_burst or max(1.0, limit)) if limit else None
        self._window = WindowLimit(self.config.rate_window) if self.config.rate_window else None
        audit_window = self.config.audit_search_window
        self._audit_window = WindowLimit(audit_window) if audit_window else None
        unlabelled = self.config.unlabelled_window
        self._unlabelled = WindowLimit(unlabelled) if unlabelled else None
        self._signing_key = secrets.token_bytes(32)
        self._peer = threading.local()  # the address of the caller each handler thread is answering
        self._routes = self._route_table()
        self._hooks: dict[str, Hook] = {}
        self._server = _Server((host, port), _handler_for(self), self)
        self._scheme = "https" if tls else "http"
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{self._scheme}://{host!s}:{port}"

    @property
    def auth_header(self) -> str:
        return f"Bearer {self.config.project_id}:{self.config.management_key}"

    def start(self) -> Emulator:
        # stop() waits for the serving loop to notice; its default 0.5 s poll made every test pay it.
        serve = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="emulator", daemon=True)
        serve.start()
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

    def internal_error(self) -> None:
        """Note the exception being handled: the emulator failed, not the client. Printed too (a
        server in its own process has no other place to show it)."""
        failure = traceback.format_exc()
        with self._lock:
            self.internal_errors.append(failure)
        with contextlib.suppress(OSError, ValueError, AttributeError):
            sys.stderr.write(f"emulator: internal error\n{failure}")

    def recorded(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self.requests)

    def counts(self) -> dict[str, dict[str, int]]:
        """Requests by path and status."""
        counted = Counter((r.path, str(r.status)) for r in self.recorded())
        result: dict[str, dict[str, int]] = {}
        for (path, status), n in sorted(counted.items()):
            result.setdefault(path, {})[status] = n
        return result

    def updates_for(self, key_id: str) -> list[RecordedRequest]:
        return [
            r
            for r in self.recorded()
            if r.path.endswith("/accesskey/update") and isinstance(r.body, dict) and r.body.get("id") == key_id
        ]

    def stats(self) -> dict[str, Any]:
        """What `/_emulator/stats` shows: counters only, never a secret."""
        with self._lock:
            throttled, faults, total = dict(self.throttled), dict(self.faults), len(self.requests)
        limits = (("window", self._window), ("auditSearch", self._audit_window), ("unlabelled", self._unlabelled))
        blocks = {name: limit.blocks for name, limit in limits if limit is not None}
        return {
            "requests": self.counts(),
            "total": total,
            "throttled": {**throttled, "total": sum(throttled.values())},
            "blocks": blocks,
            "faults": faults,
            "keys": len(self.store),
            "auditRecords": len(self.audit),
            "handshakes": len(self.handshakes),
            "internalErrors": len(self.internal_errors),
        }

    def intercept(self, path: str, hook: Hook | None) -> None:
        """Tests: every request to `path` (a prefix when it ends in `*`) goes to `hook`, whose Answer
        is sent (`call.forward()` is the emulator's own); None removes the hook. See README.md."""
        with self._lock:
            if hook is None:
                self._hooks.pop(path, None)
            else:
                self._hooks[path] = hook

    def _hooks_for(self, path: str) -> tuple[Hook, ...]:
        """The hooks that see a request to `path`, most specific first: its own, then prefixes, longest first."""
        with self._lock:
            found = [(len(p) + 1, h) for p, h in self._hooks.items() if p == path]
            found += [(len(p), h) for p, h in self._hooks.items() if p.endswith("*") and path.startswith(p[:-1])]
        return tuple(hook for _, hook in sorted(found, key=lambda item: -item[0]))

    # --- request handling ---------------------------------------------------------------
    def respond(self, method: str, path: str, query: str, headers: Mapping[str, str], body: Any) -> Answer:
        """The answer the client gets: through the tests' hooks on this path, if any, else `answer`."""
        return Call(method, path, query, headers, body, self, self._hooks_for(path)).forward()

    def answer(  # noqa: PLR0913 (the request's parts, and the fault to answer with)
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: Any, *, fault: str | None = None
    ) -> Answer:
        """The answer to one request: admin, or API through auth, rate limits and faults (`fault`:
        this one, instead of `fault_rate`'s draw)."""
        if path.startswith(ADMIN_PREFIX):
            return admin_answer(self, method, path.removeprefix(ADMIN_PREFIX), body)
        authorization = headers.get("authorization", "")
        on_auth_api = path.startswith(AUTH_PREFIX)
        actor = "" if on_auth_api else self._actor(authorization)
        if not actor and not on_auth_api:
            return error(401, "E011002", "Unauthorized", "invalid or missing project id and management key")
        # Without the tier the license call named, a request lands in the lowest bucket as well. The
        # license call is how a caller learns its tier, once per client: no limit counts it (a test's
        # one-token bucket is then the first real request's).
        labelled = on_auth_api or headers.get(LICENSE_HEADER) == self.config.rate_limit_tier
        unlabelled = None if labelled else self._unlabelled
        limits = (
            () if path == LICENSE else (("window", self._window), ("bucket", self._bucket), ("unlabelled", unlabelled))
        )
        for name, limit in limits:
            wait = limit.take() if limit is not None else 0.0
            if wait > 0:
                return self._throttled(name, wait)
        request = _Request(method, path, query, body, authorization, actor, getattr(self._peer, "address", ""))
        fault = self._pick_fault(fault)
        return self._serve(request) if fault is None else self._serve_faulty(request, fault)

    def _actor(self, authorization: str) -> str:
        """The audit actorId of the management key in this header, "" when it is not a valid one."""
        prefix = f"Bearer {self.config.project_id}:"
        key = authorization[len(prefix) :] if authorization.startswith(prefix) else ""
        valid = key and key in (self.config.management_key, *self.config.extra_management_keys)
        return actor_id_for(self.config, key) if valid else ""

    def _flip(self, share: float) -> bool:
        with self._lock:
            return self._random.random() < share

    def _pick_fault(self, forced: str | None = None) -> str | None:
        with self._lock:
            if forced is not None:
                kind = forced
            elif self.config.fault_rate <= 0 or self._random.random() >= self.config.fault_rate:
                return None
            else:
                kind = self._random.choice(self.config.fault_kinds)
            self.faults[kind] += 1
            return kind

    def _throttled(self, limit: str, wait: float) -> Answer:
        with self._lock:
            self.throttled[limit] += 1
        headers = {"Retry-After": str(max(1, math.ceil(wait)))} if self.config.retry_after else {}
        if self.config.empty_429_body:
            return Answer(429, headers=headers, raw=b"")
        answer = error(429, "E130429", "Rate limit exceeded", "too many requests")
        answer.headers.update(headers)
        return answer

    def _serve(self, request: _Request) -> Answer:
        """Do the work and answer truthfully: the answer says whether a mutation was made."""
        route = self._routes.get((request.method, request.path))
        if route is None:
            return error(404, "E011001", "Not found", f"{request.method} {request.path}")
        if request.method == "POST" and not isinstance(request.body, dict):
            answer = error(400, "E011001", "Bad request", "body must be a JSON object")
        else:
            try:
                answer = route.handle(request)
            except StoreError as failure:
                answer = error(failure.status, failure.code, failure.description, failure.message)
        if route.mutating:
            answer.applied = answer.status < 300
        return answer

    def _serve_faulty(self, request: _Request, fault: str) -> Answer:
        """A slow answer is the real one, late; any other fault loses the answer, and for a
        share of mutations (`fault_after_apply`) only after the change was made."""
        stall = self.config.slow_seconds
        if fault == "slow":
            if self.config.slow_applies == "after":  # the change lands when the stall ends
                time.sleep(stall)
                answer = self._serve(request)
            else:
                answer = self._serve(request)
                time.sleep(stall)
            answer.fault = fault
            return answer
        route = self._routes.get((request.method, request.path))
        applied: bool | None = None
        if route is not None and route.mutating:
            applied = self._flip(self.config.fault_after_apply) and bool(self._serve(request).applied)
            if applied:
                with self._lock:
                    self.faults["appliedThenFailed"] += 1
        if fault == "slow-504":
            time.sleep(stall)
        answer = _fault_answer(fault)
        answer.fault, answer.applied = fault, applied
        return answer

    # --- the API ------------------------------------------------------------------------
    def _route_table(self) -> dict[tuple[str, str], _Route]:
        routes = {
            ("GET", ACCESSKEY): _Route(self._load, False),
            ("GET", LICENSE): _Route(self._license, False),  # the SDKs' start-up handshake
            ("GET", f"{ACCESSKEY}/attribute"): _Route(self._attribute, False),
            ("POST", f"{ACCESSKEY}/search"): _Route(self._search, False),
            ("POST", f"{ACCESSKEY}/update"): _Route(self._update, True),
            ("POST", f"{ACCESSKEY}/create"): _Route(self._create, True),
            ("POST", f"{ACCESSKEY}/rotate"): _Route(self._rotate, True),
            ("POST", f"{ACCESSKEY}/delete"): _Route(self._delete, True),
            ("POST", f"{ACCESSKEY}/delete/batch"): _Route(self._delete_batch, True),
            ("POST", EXCHANGE): _Route(self._exchange, False),
            ("POST", f"{AUDIT}/search"): _Route(self._audit_search, False),
            ("POST", f"{AUDIT}/event"): _Route(self._audit_event, True),
        }
        for action, status in (("activate", "active"), ("deactivate", "inactive")):
            routes["POST", f"{ACCESSKEY}/{action}"] = _Route(self._status_changer(status, batch=False), True)
            routes["POST", f"{ACCESSKEY}/{action}/batch"] = _Route(self._status_changer(status, batch=True), True)
        return routes

    def _load(self, request: _Request) -> Answer:
        key_id = parse_qs(request.query).get("id", [""])[0]
        return Answer(200, {"key": self.store.load(key_id)})

    def _license(self, _request: _Request) -> Answer:
        shape = self.config.license_shape
        if shape == "refused":
            return error(403, "E011006", "Forbidden", "the license is not readable with this key")
        return Answer(200, {"rateLimitTier": self.config.rate_limit_tier} if shape == "tier" else {})

    def _attribute(self, request: _Request) -> Answer:
        name = parse_qs(request.query).get("name", [""])[0]
        lookup = self.config.attribute_lookup
        if lookup == "missing":
            return error(404, "E011001", "Not found", f"{request.method} {request.path}")
        declared = self.attributes.find(name, lookup)
        if declared is None:
            raise not_declared(name)
        return Answer(200, {"attribute": declared.wire()})

    def _search(self, request: _Request) -> Answer:
        # A 100,000-key answer's views and their JSON took 2.7 s of the server's CPU (5.3 s with
        # the collector on) when each key's JSON, made when it was written, does.
        found = self.store.found(request.body)
        encoded = found.answer_json()
        if encoded is None:
            return Answer(200, {"keys": found.views()})
        return Deferred(200, lambda: {"keys": found.views()}, encoded)

    def _update(self, request: _Request) -> Answer:
        self.attributes.check(request.body)
        key = self.store.update(request.body, self.config.update_semantics)
        self.record_change(KEY_MODIFIED, [key], request.actor, request.remote)
        return Answer(200, {"key": key})

    def _create(self, request: _Request) -> Answer:
        self.attributes.check(request.body)
        key, cleartext = self.store.create(request.body, created_by=request.actor)
        self.record_change(KEY_CREATED, [key], request.actor, request.remote)
        return Answer(200, {"key": key, "cleartext": cleartext})

    def _rotate(self, request: _Request) -> Answer:
        key, cleartext = self.store.rotate(one_id(request.body))
        self.record_change(KEY_MODIFIED, [key], request.actor, request.remote)
        return Answer(200, {"key": key, "cleartext": cleartext})

    def _delete(self, request: _Request) -> Answer:
        keys = self.store.delete([one_id(request.body)])
        self.record_change(KEY_DELETED, keys, request.actor, request.remote)
        return Answer(200, {})

    def _delete_batch(self, request: _Request) -> Answer:
        keys = self.store.delete(many_ids(request.body))
        self.record_change(KEYS_DELETED, keys, request.actor, request.remote, batch=True)
        return Answer(200, {})

    def _status_changer(self, status: str, *, batch: bool) -> Callable[[_Request], Answer]:
        def change(request: _Request) -> Answer:
            ids = many_ids(request.body) if batch else [one_id(request.body)]
            for key in self.store.set_status(ids, status):  # no batch action exists: a record per key
                self.record_change(KEY_MODIFIED, [key], request.actor, request.remote)
            return Answer(200, {})

        return change

    def _exchange(self, request: _Request) -> Answer:
        project, _, cleartext = request.authorization.removeprefix("Bearer ").partition(":")
        if not request.authorization.startswith("Bearer ") or project != self.config.project_id or not cleartext:
            return error(401, "E011002", "Unauthorized", "expected Bearer <project id>:<access key>")
        key = self.store.authenticate(cleartext, request.remote)
        return Answer(200, session_token(key, self.config.project_id, self._signing_key))

    def _audit_search(self, request: _Request) -> Answer:
        if self.config.audit_forbidden:
            return error(403, "E011006", "Forbidden", "audit search is not allowed for this project or key")
        wait = self._audit_window.take() if self._audit_window is not None else 0.0
        if wait > 0:
            return self._throttled("auditSearch", wait)
        return Answer(200, self.audit.search(request.body, occurred_as_string=self.config.occurred_as_string))

    def _audit_event(self, request: _Request) -> Answer:
        self.audit.add({**check_event(request.body), "remoteAddress": request.remote})
        return Answer(200, {})

    def record_change(  # noqa: PLR0913 (keyword-only record details)
        self,
        action: str,
        keys: Sequence[Mapping[str, Any]],
        actor: str,
        remote: str,
        *,
        batch: bool = False,
        device: str = "Unknown",
    ) -> dict[str, Any] | None:
        """The audit record of a change to these keys, made by `actor` from `remote`."""
        if not keys:
            return None
        naming = naming_keys([key["id"] for key in keys], self.config.audit_key_id_places, batch=batch)
        tenants = sorted({tenant["tenantId"] for key in keys for tenant in key["keyTenants"]})
        record = {"action": action, "actorId": actor, "remoteAddress": remote, "tenants": tenants, "device": device}
        return self.audit.add({**record, **naming})


def _fault_answer(kind: str) -> Answer:
    if kind == "close":
        return Answer(0, drop=True)
    status = 504 if kind == "slow-504" else int(kind)
    if status in (502, 504):  # what a proxy in front of the API sends: not JSON
        return Answer(
            status,
            raw=f"<html><body>{status} from the gateway</body></html>".encode(),
            headers={"Content-Type": "text/html"},
        )
    return error(status, "E011001", "Server error", "injected fault")


class _Server(ThreadingHTTPServer):
    """One thread per connection; a failure outside a request's answer (a thread that could not
    start, a handler's own bug) is noted on the emulator, where tests look, never only printed."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], emulator: Emulator) -> None:
        self.emulator = emulator
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # a client that hung up, a failed handshake: the network's
            self.emulator.internal_error()


def _content_length(header: str | None) -> int | None:
    """The body's length the request gives (0 without one), None when it is no length at all."""
    if not header:
        return 0
    try:
        length = int(header)
    except ValueError:
        return None
    return length if length >= 0 else None


def _handler_for(emulator: Emulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like the real API
        # Headers and body go out in two writes; with Nagle's algorithm on, the client's delayed
        # ACK then adds ~40 ms to every answer, latency the real API's front end does not add.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            return  # tests read emulator.requests; stderr stays quiet (and never shows a secret)

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            length = _content_length(self.headers.get("Content-Length"))
            if length is None:  # the client's error, as a real server answers it
                self.send_error(400, "Bad Content-Length")
                self.close_connection = True
                return
            raw = self.rfile.read(length) if length else b""
            if len(raw) < length:  # the client went away mid-request: nothing arrived to answer or log
                self.close_connection = True
                return
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            if emulator.config.latency_ms > 0:
                time.sleep(emulator.config.latency_ms / 1000)
            headers = {name.lower(): value for name, value in self.headers.items()}
            emulator._peer.address = str(self.client_address[0])
            try:
                answer = emulator.respond(self.command, parts.path, parts.query, headers, body)
                payload = b"" if answer.drop else answer.payload()
            except Exception as failure:  # answered as a server answers its own bug, never a dropped line
                emulator.internal_error()
                answer = error(500, "E000000", "Internal error", f"emulator: {type(failure).__name__}: {failure}")
                payload = answer.payload()
            if parts.path == LICENSE:  # once per client: counted apart, so request lists stay the work done
                with emulator._lock:
                    emulator.handshakes.append(headers.get(LICENSE_HEADER, ""))
            elif not parts.path.startswith(ADMIN_PREFIX):
                status = "close" if answer.drop else answer.status
                emulator.record(
                    RecordedRequest(self.command, parts.path, status, body, time.time(), answer.fault, answer.applied)
                )
            if answer.drop:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            # A client that gave up (its timeout was shorter than a slow fault) is not a server error.
            with contextlib.suppress(ConnectionError):
                self.send_response(answer.status)
                for name, value in {"Content-Type": "application/json", **answer.headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        do_GET = _handle
        do_POST = _handle

    return Handler
