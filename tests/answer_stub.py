"""A tiny HTTP server that answers what a test says, for answers no honest server gives: wrong
shapes, bodies that are not JSON, answers too large to read. (The emulator is never made to send
them: it stays as strict as the real API.) Every request is recorded as `METHOD path`, but for the
rate-limit tier handshake every client makes first: answered with a tier unless a test maps it, and
counted in `handshakes`."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    chunks: Callable[[], Iterator[bytes]] | None = None  # sent chunked, without a Content-Length


LICENSE = "GET /v1/mgmt/license"


def json_answer(document: Any, status: int = 200) -> Answer:
    return Answer(status, json.dumps(document).encode())


class AnswerStub:
    """`answers` maps `METHOD path` to an Answer (or a function of the request body to one)."""

    def __init__(self, answers: Mapping[str, Answer | Callable[[Any], Answer]]) -> None:
        self.answers = {LICENSE: json_answer({"rateLimitTier": "tier4"}), **answers}
        self.requests: list[str] = []
        self.handshakes = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def count(self, endpoint: str) -> int:
        return self.requests.count(endpoint)

    def __enter__(self) -> AnswerStub:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def env(self, base: Mapping[str, str]) -> dict[str, str]:
        """`base` (cli_env(None)) pointed at this stub."""
        return {
            **base,
            "DESCOPE_PROJECT_ID": "P2stub",
            "DESCOPE_MANAGEMENT_KEY": "K2stub-key",
            "DESCOPE_BASE_URL": self.url,
        }


def _handler(stub: AnswerStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            endpoint = f"{self.command} {urlsplit(self.path).path}"
            if endpoint == LICENSE:
                stub.handshakes += 1
            else:
                stub.requests.append(endpoint)
            found = stub.answers.get(endpoint, Answer(404, b'{"errorCode": "E011001"}'))
            answer = found if isinstance(found, Answer) else found(json.loads(raw or b"null"))
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            if answer.chunks is None:
                if "Content-Length" not in answer.headers:
                    self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)
                return
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for chunk in answer.chunks():
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                self.close_connection = True  # the client stopped reading, as it should

        do_GET = _handle
        do_POST = _handle

    return Handler
