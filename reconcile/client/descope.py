"""Descope Management API client for access keys (async, on httpx).

Wire format: see schemas/source and the README. Every answer that is not a success becomes a
typed `ApiError` carrying Descope's errorCode; every failure to get an answer becomes a
`TransportError` that says whether the request may have reached the server; a success that is
not in its documented shape (or over MAX_ANSWER_BYTES) becomes a `ProtocolError`, never retried.

Create and rotate answer with the key's cleartext: it leaves this module only wrapped in a `Secret`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.util
import ipaddress
import json
import logging
import math
import os
import re
import ssl
import sys
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from reconcile import __version__
from reconcile.client import answers
from reconcile.client.redact import SecretRedactor, redactor
from reconcile.errors import (
    ApiError,
    AuthenticationError,
    ConfigError,
    NotFoundError,
    ProtocolError,
    RateLimitedError,
    ServerError,
    TlsError,
    TransportError,
)
from reconcile.files import read_input
from reconcile.secrets.coredumps import forbid_core_dumps
from reconcile.secrets.secret import Secret

# httpcore asks which event loop runs (`import sniffio`) at every request and lock. Where sniffio is
# not installed (anyio 4 needs it no more), each such import searched sys.path again: 0.11 ms, 3,100
# times in an apply of 600 keys (0.36 s of CPU). Known absent once, the answer is asyncio all the same.
if importlib.util.find_spec("sniffio") is None:
    sys.modules["sniffio"] = None  # type: ignore[assignment]  # None: the documented "no such module"

DEFAULT_BASE_URL = "https://api.descope.com"
SEARCH_PATH = "/v1/mgmt/accesskey/search"
LOAD_PATH = "/v1/mgmt/accesskey"
UPDATE_PATH = "/v1/mgmt/accesskey/update"
CREATE_PATH = "/v1/mgmt/accesskey/create"
ROTATE_PATH = "/v1/mgmt/accesskey/rotate"
DELETE_PATH = "/v1/mgmt/accesskey/delete"
AUDIT_SEARCH_PATH = "/v1/mgmt/audit/search"
AUDIT_EVENT_PATH = "/v1/mgmt/audit/event"
LICENSE_PATH = "/v1/mgmt/license"  # the rate-limit tier handshake every SDK makes first
ATTRIBUTE_PATH = "/v1/mgmt/accesskey/attribute"  # a declared custom attribute, `?name=` (Terraform provider)
LICENSE_HEADER = "x-descope-license"
LICENSE_TIMEOUT = 5.0  # seconds, as the SDKs: the handshake never holds a run up for long
# A tier goes into a header: a short token, or it is not used (a line break would split the request).
_TIER = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
STATUS_PATHS = {"active": "/v1/mgmt/accesskey/activate", "inactive": "/v1/mgmt/accesskey/deactivate"}
MAX_ANSWER_BYTES = 64 * 1024 * 1024  # decoded: a compressed answer is capped as it inflates
MAX_ERROR_TEXT = 300  # characters of a server's error text quoted in a message

log = logging.getLogger("reconcile")


def identification_headers() -> dict[str, str]:
    """Who is calling, as the SDKs say it of themselves (the Python SDK's header names)."""
    return {
        "User-Agent": f"descope-reconcile/{__version__}",
        "x-descope-sdk-name": "descope-reconcile",
        "x-descope-sdk-version": __version__,
        # platform.python_version(), without importing platform on every start: "3.11.7", "3.13.0rc1"
        "x-descope-sdk-python-version": sys.version.split()[0],
    }


@dataclass(frozen=True)
class License:
    """What the tier handshake learned. `tier` None: management requests go unlabelled, which Descope
    counts in its lowest rate-limit bucket; `problem` says why. `date` (the answer's Date header) and
    `tls` (the protocol version, None over plain http) are what `doctor` reads of the connection."""

    tier: str | None
    problem: str | None = None
    date: str | None = None
    tls: str | None = None


@dataclass(frozen=True)
class Credentials:
    project_id: str
    management_key: str = field(repr=False)

    @property
    def bearer(self) -> str:
        return f"Bearer {self.project_id}:{self.management_key}"


def _header_token(value: str, source: str) -> str:
    """`value` as it can go in the Authorization header: a trailing line break (the end of a file, or
    of `$(cat file)`) is dropped, anything else that is not printable ASCII is refused. The message
    says what is wrong and never quotes the value: it may be the management key."""
    value = value.rstrip("\r\n")
    for char in value:
        if "!" <= char <= "~":
            continue
        if char in "\r\n":
            kind = "a line break inside it"
        elif char in " \t":
            kind = "whitespace"
        elif char.isascii():
            kind = "a control character"
        else:
            kind = "a non-ASCII character"
        raise ConfigError(f"{source} has {kind}: only printable ASCII on one line can be sent (the value is not shown)")
    return value


@dataclass(frozen=True)
class CredentialSource:
    """Where a project id and its management key come from: names of environment variables, or a
    file, or the project id itself (not a secret); never the key. The default is the DESCOPE_*
    variables; a config target names its own (an empty name: that way is not offered)."""

    project_id: str = ""
    project_id_env: str = "DESCOPE_PROJECT_ID"
    key_env: str = "DESCOPE_MANAGEMENT_KEY"
    key_file_env: str = "DESCOPE_MANAGEMENT_KEY_FILE"  # a variable naming the file
    key_file: str = ""  # or the file itself
    key_file_label: str = "DESCOPE_MANAGEMENT_KEY_FILE"  # what messages about the file call it


ENVIRONMENT = CredentialSource()


def _read_key_file(path: str, label: str) -> str:
    try:
        text = read_input(Path(path), max_bytes=64 * 1024).decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{label}: {path} is not UTF-8 text") from None
    except OSError as error:
        raise ConfigError(f"{label}: cannot read {path}: {error.strerror}") from None
    key = _header_token(text, f"the key in {path}")
    if not key:
        raise ConfigError(f"{label}: {path} is empty")
    return key


def credentials_from_env(env: Mapping[str, str], source: CredentialSource = ENVIRONMENT) -> Credentials:
    """By default DESCOPE_PROJECT_ID, and DESCOPE_MANAGEMENT_KEY or a file named by DESCOPE_MANAGEMENT_KEY_FILE:
    both checked before any request is built (a header with a line break would quote the key)."""
    forbid_core_dumps()  # from here on the process holds a management key
    given = source.project_id or (env.get(source.project_id_env, "") if source.project_id_env else "")
    project_id = _header_token(given, "the project id" if source.project_id else source.project_id_env)
    if not project_id:
        raise ConfigError(f"{source.project_id_env} is not set")
    key = _header_token(env.get(source.key_env, ""), source.key_env) if source.key_env else ""
    key_file = source.key_file or (env.get(source.key_file_env, "").strip() if source.key_file_env else "")
    if key and key_file:
        raise ConfigError(f"set {source.key_env} or {source.key_file_env}, not both")
    if key_file:
        key = _read_key_file(key_file, source.key_file_label)
    if not key:
        alternative = f" (or {source.key_file_env} for a mounted secret)" if source.key_file_env else ""
        raise ConfigError(f"{source.key_env} is not set{alternative}")
    return Credentials(project_id, key)


def base_url_for(project_id: str, env: Mapping[str, str]) -> str:
    """The SDKs' rule: an override, else a regional host for long (32+ character) project ids."""
    override = env.get("DESCOPE_BASE_URL") or env.get("DESCOPE_BASE_URI")
    if override:
        url = override.rstrip("/")
    elif len(project_id) >= 32:
        url = f"https://api.{project_id[1:5]}.descope.com"
    else:
        url = DEFAULT_BASE_URL
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port out of range is a ValueError here, not a crash at connect time
        _ = httpx.URL(url).host  # httpx's own checks: non-printable characters, malformed hosts (IDNA)
    except (ValueError, httpx.InvalidURL) as error:
        raise ConfigError(f"the base URL is not a valid URL: {error}") from None  # it may hold a password
    if parts.username is not None or parts.password is not None:
        # httpx would send them as Basic auth in place of the Bearer token: a 401, and a password in a URL.
        raise ConfigError("the base URL holds a user name or password (user:password@host): give the host alone")
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(f"base URL {url!r} is not an http(s) URL")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigError(f"refusing plain http:// to {parts.hostname}: only loopback may be reached without TLS")
    return url


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _capped(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def _error_from_response(response: httpx.Response, content: bytearray, clean: Callable[[str], str]) -> ApiError:
    """Descope's error body → a typed error. `clean` scrubs the secret: a proxy or a buggy server
    may echo the request's Authorization header back in its error text (scrubbed before it is cut,
    so a cut never leaves part of the key)."""
    code: str | None = None
    message = response.reason_phrase or f"HTTP {response.status_code}"
    try:
        body = json.loads(content) if content else None
    except (ValueError, RecursionError):
        body = None
    if isinstance(body, dict):
        raw_code = body.get("errorCode")
        code = _capped(clean(raw_code), 40) if isinstance(raw_code, str) and raw_code else None  # reports keep it
        parts = [str(body[k]) for k in ("errorDescription", "errorMessage") if body.get(k)]
        if parts:
            message = ": ".join(dict.fromkeys(parts))  # both, unless they repeat each other
    status = response.status_code
    text = f"HTTP {status}{f' {code}' if code else ''}: {_capped(clean(message), MAX_ERROR_TEXT)}"
    if status in (401, 403):
        return AuthenticationError(status, text, error_code=code)
    if status == 404:
        return NotFoundError(status, text, error_code=code)
    if status == 429:
        return RateLimitedError(status, text, error_code=code, retry_after=_retry_after(response))
    if status >= 500:
        return ServerError(status, text, error_code=code)
    return ApiError(status, text, error_code=code)


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (Descope sends whole seconds); None when absent or unreadable (`inf` and
    `nan` too: a pause without end would hold every worker of the run)."""
    value = response.headers.get("Retry-After")
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and math.isfinite(seconds) and seconds >= 0 else None


def _verified_context() -> ssl.SSLContext:
    """The verified TLS context httpx would make (certifi's bundle, or SSL_CERT_FILE / SSL_CERT_DIR),
    made once per process and bundle: loading a bundle costs 50 ms of CPU, which every client paid
    (each target of a run, every run of the suite's in-process CLI). A bundle is known by its
    absolute path and its file's size and time, so a relative path read from another folder, or a
    bundle replaced on disk, is loaded again; a shared context found changed to verify less is made
    again, never handed out."""
    cafile, capath = os.environ.get("SSL_CERT_FILE") or None, os.environ.get("SSL_CERT_DIR") or None
    if cafile:
        bundle = Path(cafile).resolve()
        try:
            found = bundle.stat()
        except OSError:  # ssl's own error names the file: not cached
            return ssl.create_default_context(cafile=cafile)
        context = _tls_context(str(bundle), None, (found.st_mtime_ns, found.st_size))
    else:
        context = _tls_context(None, str(Path(capath).resolve()) if capath else None, None)
    if context.verify_mode != ssl.CERT_REQUIRED or not context.check_hostname:
        _tls_context.cache_clear()
        return _verified_context()
    return context


_tls_lock = threading.Lock()


def tls_context() -> ssl.SSLContext:
    """`_verified_context`, one load at a time: a caller waits for the load `warm_tls` began."""
    with _tls_lock:
        return _verified_context()


def warm_tls() -> None:
    """Load the CA bundle on a thread of its own while the run reads its desired files: OpenSSL lets
    go of the interpreter as it parses the bundle, so those 30-50 ms leave the run's start. A failure
    is left to the client's own call, which raises it."""

    def load() -> None:
        with contextlib.suppress(Exception):
            tls_context()

    threading.Thread(target=load, name="tls-context", daemon=True).start()


@functools.cache
def _tls_context(cafile: str | None, capath: str | None, version: tuple[int, int] | None) -> ssl.SSLContext:
    """`version`: the bundle file's time and size, only to tell one content from another."""
    if cafile:
        return ssl.create_default_context(cafile=cafile)
    if capath:  # its certificates are read when a handshake needs them, as httpx's are
        return ssl.create_default_context(capath=capath)
    return httpx.create_ssl_context(trust_env=False)


class DescopeClient:
    """One client per run; `requests_by_status` counts every attempt, `transport` for no answer."""

    def __init__(
        self,
        credentials: Credentials,
        base_url: str,
        *,
        timeout: float,
        max_connections: int = 16,
    ) -> None:
        self.base_url = base_url
        self.requests_by_status: Counter[str] = Counter()
        self._redactor = SecretRedactor()
        self._redactor.add(credentials.management_key)
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            headers={
                "Authorization": credentials.bearer,
                "x-descope-project-id": credentials.project_id,
                **identification_headers(),
            },
            follow_redirects=False,
            verify=tls_context(),
        )
        self.license: License | None = None  # after the handshake: once per client, so once per run and target
        self._urls: dict[str, httpx.URL] = {}  # path -> its URL on base_url (see _url)
        self._license_lock = asyncio.Lock()

    async def __aenter__(self) -> DescopeClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._http.aclose()

    async def handshake(self) -> License:
        """GET /v1/mgmt/license once: every later request carries `x-descope-license: <tier>`. A
        failure is a warning, never fatal: requests then go without the header, as the SDKs do."""
        async with self._license_lock:
            if self.license is None:
                self.license = await self._fetch_license()
                if self.license.tier is not None:
                    self._http.headers[LICENSE_HEADER] = self.license.tier
                else:
                    log.warning(
                        "warning: rate-limit tier unknown (%s): requests go without %s, in Descope's lowest "
                        "rate-limit bucket; `descope-reconcile doctor` says more",
                        self.license.problem,
                        LICENSE_HEADER,
                    )
            return self.license

    async def _fetch_license(self) -> License:
        where = f"GET {LICENSE_PATH}"
        timeout = min(LICENSE_TIMEOUT, self._http.timeout.read or LICENSE_TIMEOUT)
        try:
            response, content = await self._exchange("GET", LICENSE_PATH, timeout=timeout)
        except ConfigError:
            raise  # a header that cannot be sent: every later request would fail the same way
        except (TransportError, TlsError) as error:
            return License(None, f"the handshake failed: {error}")
        facts = {"date": response.headers.get("Date"), "tls": _tls_version(response)}
        if not response.is_success:
            failure = _error_from_response(response, content or bytearray(), self._redactor.redact)
            return License(None, f"the handshake was refused: {failure}", **facts)
        try:
            body = answers.check(
                "GET",
                LICENSE_PATH,
                answers.decode("GET", LICENSE_PATH, content or bytearray(), ""),
                self._redactor.redact,
            )
        except ProtocolError as error:
            return License(None, str(error), **facts)
        tier = body.get("rateLimitTier")
        if not isinstance(tier, str) or not _TIER.match(tier):
            return License(None, f"{where}: the answer names no usable rateLimitTier", **facts)
        return License(tier, None, **facts)

    async def search_access_keys(self, tenant_ids: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Every key of the project, or of these tenants (the API has no pagination)."""
        body = await self._request("POST", SEARCH_PATH, json={"tenantIds": list(tenant_ids)} if tenant_ids else {})
        keys: list[dict[str, Any]] = body["keys"]
        answers.unique_ids("POST", SEARCH_PATH, keys, self._redactor.redact)
        return keys

    async def load_access_key(self, key_id: str) -> dict[str, Any]:
        body = await self._request("GET", LOAD_PATH, params={"id": key_id})
        return answers.same_id("GET", LOAD_PATH, body["key"], key_id, self._redactor.redact)

    async def update_access_key(self, request_body: Mapping[str, Any]) -> dict[str, Any]:
        body = await self._request("POST", UPDATE_PATH, json=dict(request_body))
        return answers.same_id("POST", UPDATE_PATH, body["key"], request_body["id"], self._redactor.redact)

    async def create_access_key(self, request_body: Mapping[str, Any]) -> tuple[dict[str, Any], Secret]:
        """The new key and its secret (an answer without both is a ProtocolError: the key may exist)."""
        body = await self._request("POST", CREATE_PATH, json=dict(request_body))
        return body["key"], self._issued(CREATE_PATH, body["cleartext"])

    async def rotate_access_key(self, key_id: str) -> tuple[dict[str, Any], Secret]:
        """The key and its new secret; the old secret stops working at once."""
        body = await self._request("POST", ROTATE_PATH, json={"id": key_id})
        key = answers.same_id("POST", ROTATE_PATH, body["key"], key_id, self._redactor.redact)
        return key, self._issued(ROTATE_PATH, body["cleartext"])

    def _issued(self, path: str, cleartext: str) -> Secret:
        if not cleartext:
            raise ProtocolError(f"POST {path}: the answer's secret is empty")
        self._redactor.add(cleartext)  # scrubbed from this client's error texts...
        redactor.add(cleartext)  # ...and from every log line, should one quote it anyway
        return Secret(cleartext)

    async def delete_access_keys(self, key_ids: Sequence[str]) -> None:
        """The single form for one key, the batch form for several (all or nothing on the server)."""
        if len(key_ids) == 1:
            await self._request("POST", DELETE_PATH, json={"id": key_ids[0]})
        else:
            await self._request("POST", f"{DELETE_PATH}/batch", json={"ids": list(key_ids)})

    async def search_audit(self, query: Mapping[str, Any]) -> dict[str, Any]:
        """One page of the audit trail, `{"audits": [...], "total": N}`, as sent: reconcile/trail reads it."""
        return await self._request("POST", AUDIT_SEARCH_PATH, json=dict(query))

    async def create_audit_event(self, event: Mapping[str, Any]) -> None:
        """Add an event to the project's audit trail."""
        await self._request("POST", AUDIT_EVENT_PATH, json=dict(event))

    async def load_attribute(self, name: str) -> dict[str, Any] | None:
        """The project's declaration of the access-key custom attribute `name`; None when there is none
        (a 404). Not published: whether `name` is the machine name or the display name (`doctor` finds
        out), and the answer's shape: the attribute itself, or inside `attribute`."""
        try:
            body = await self._request("GET", ATTRIBUTE_PATH, params={"name": name})
        except NotFoundError:
            return None
        declared: dict[str, Any] = body.get("attribute", body)
        return declared

    async def set_status(self, key_ids: Sequence[str], status: str) -> None:
        """Activate or deactivate keys: the single form for one key, the batch form for several."""
        path = STATUS_PATHS[status]
        if len(key_ids) == 1:
            await self._request("POST", path, json={"id": key_ids[0]})
        else:
            await self._request("POST", f"{path}/batch", json={"ids": list(key_ids)})

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """The answer's body, checked against the endpoint's documented shape."""
        if self.license is None:
            await self.handshake()
        response, content = await self._exchange(method, path, json=json, params=params)
        self.requests_by_status[str(response.status_code)] += 1
        if not response.is_success:
            raise _error_from_response(response, content or bytearray(), self._redactor.redact)
        if content is None:
            raise ProtocolError(f"{method} {path}: the answer is larger than {MAX_ANSWER_BYTES // 2**20} MiB")
        body = answers.decode(method, path, content, response.headers.get("Content-Type", ""))
        checked: dict[str, Any] = answers.check(method, path, body, self._redactor.redact)
        return checked

    def _url(self, path: str) -> httpx.URL:
        """`path` on the base URL, merged once: given as a string, httpx parses and merges it again on
        every request (build_request: 166 µs → 46 µs, a few % of an apply's client CPU per update)."""
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = self._http.build_request("GET", path).url
        return url

    async def _exchange(self, method: str, path: str, **request: Any) -> tuple[httpx.Response, bytearray | None]:
        """Send, and read the answer up to MAX_ANSWER_BYTES (None beyond); a failure → TransportError."""
        where = f"{method} {path}"
        try:
            response = await self._http.send(self._http.build_request(method, self._url(path), **request), stream=True)
            try:
                return response, await _read_capped(response, MAX_ANSWER_BYTES)
            finally:
                await response.aclose()
        except httpx.LocalProtocolError:
            # h11 refused to write the request (a header it cannot send): no retry can change that.
            raise ConfigError(f"{where}: the request cannot be sent: a header is not valid HTTP") from None
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
            self.requests_by_status["transport"] += 1
            if _caused_by_tls(error):
                message = self._redactor.redact(f"{where}: TLS failed: {_describe(error)}")
                raise TlsError(message + " (set SSL_CERT_FILE to a CA bundle that trusts the server)") from None
            message = self._redactor.redact(f"{where}: cannot connect: {_describe(error)}")
            raise TransportError(message, ambiguous=False) from None
        except httpx.TransportError as error:
            # Read/write timeouts, resets and truncated answers: the request may have been applied.
            self.requests_by_status["transport"] += 1
            message = self._redactor.redact(f"{where}: no complete answer: {_describe(error)}")
            raise TransportError(message, ambiguous=True) from None


def _tls_version(response: httpx.Response) -> str | None:
    stream = response.extensions.get("network_stream")
    ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
    version = ssl_object.version() if ssl_object is not None else None
    return str(version) if version else None


async def _read_capped(response: httpx.Response, limit: int) -> bytearray | None:
    """The decoded body, or None as soon as it is over `limit` bytes (the rest is never read). One
    buffer, grown in place: chunks joined at the end were a second copy of a 48 MB answer."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in response.aiter_bytes():
        if len(body) + len(chunk) > limit:
            return None
        body += chunk
    return body


def _caused_by_tls(error: BaseException) -> bool:
    """A certificate or handshake failure: retrying cannot fix it."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _describe(error: httpx.TransportError) -> str:
    # httpx messages name the failure, never the request headers; keep only the first line.
    text = str(error).splitlines()[0] if str(error) else ""
    return text or type(error).__name__
