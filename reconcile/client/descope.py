"""Descope Management API client for access keys (async, on httpx).

Wire format: see schemas/source and the README. Every answer that is not a success becomes a
typed `ApiError` carrying Descope's errorCode; every failure to get an answer becomes a
`TransportError` that says whether the request may have reached the server.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from reconcile import __version__
from reconcile.client.redact import MASK
from reconcile.errors import (
    ApiError,
    AuthenticationError,
    ConfigError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TlsError,
    TransportError,
)

DEFAULT_BASE_URL = "https://api.descope.com"
SEARCH_PATH = "/v1/mgmt/accesskey/search"
LOAD_PATH = "/v1/mgmt/accesskey"
UPDATE_PATH = "/v1/mgmt/accesskey/update"
STATUS_PATHS = {"active": "/v1/mgmt/accesskey/activate", "inactive": "/v1/mgmt/accesskey/deactivate"}


@dataclass(frozen=True)
class Credentials:
    project_id: str
    management_key: str = field(repr=False)

    @property
    def bearer(self) -> str:
        return f"Bearer {self.project_id}:{self.management_key}"


def credentials_from_env(env: Mapping[str, str]) -> Credentials:
    """DESCOPE_PROJECT_ID, and DESCOPE_MANAGEMENT_KEY or a file named by DESCOPE_MANAGEMENT_KEY_FILE."""
    project_id = env.get("DESCOPE_PROJECT_ID", "").strip()
    if not project_id:
        raise ConfigError("DESCOPE_PROJECT_ID is not set")
    key = env.get("DESCOPE_MANAGEMENT_KEY", "").strip()
    key_file = env.get("DESCOPE_MANAGEMENT_KEY_FILE", "").strip()
    if key and key_file:
        raise ConfigError("set DESCOPE_MANAGEMENT_KEY or DESCOPE_MANAGEMENT_KEY_FILE, not both")
    if key_file:
        try:
            key = Path(key_file).read_text(encoding="utf-8").strip()
        except OSError as error:
            raise ConfigError(f"DESCOPE_MANAGEMENT_KEY_FILE: cannot read {key_file}: {error.strerror}") from None
        if not key:
            raise ConfigError(f"DESCOPE_MANAGEMENT_KEY_FILE: {key_file} is empty")
    if not key:
        raise ConfigError("DESCOPE_MANAGEMENT_KEY is not set (or DESCOPE_MANAGEMENT_KEY_FILE for a mounted secret)")
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
    parts = urlsplit(url)
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


def _error_from_response(response: httpx.Response, clean: Callable[[str], str]) -> ApiError:
    """Descope's error body → a typed error. `clean` scrubs the secret: a proxy or a buggy server
    may echo the request's Authorization header back in its error text."""
    code: str | None = None
    message = response.reason_phrase or f"HTTP {response.status_code}"
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        code = body.get("errorCode") if isinstance(body.get("errorCode"), str) else None
        parts = [str(body[k]) for k in ("errorDescription", "errorMessage") if body.get(k)]
        if parts:
            message = ": ".join(dict.fromkeys(parts))  # both, unless they repeat each other
    status = response.status_code
    text = clean(f"HTTP {status}" + (f" {code}" if code else "") + f": {message}")
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
    """Retry-After in seconds (Descope sends whole seconds); None when absent or unreadable."""
    value = response.headers.get("Retry-After")
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds >= 0 else None


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
        self._secret = credentials.management_key
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            headers={
                "Authorization": credentials.bearer,
                "x-descope-project-id": credentials.project_id,
                "User-Agent": f"descope-reconcile/{__version__}",
            },
            follow_redirects=False,
        )

    async def __aenter__(self) -> DescopeClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._http.aclose()

    async def search_access_keys(self, tenant_ids: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Every key of the project, or of these tenants (the API has no pagination)."""
        body = await self._request("POST", SEARCH_PATH, json={"tenantIds": list(tenant_ids)} if tenant_ids else {})
        keys = body.get("keys") or []
        if not isinstance(keys, list):
            raise TransportError("search answered without a list of keys", ambiguous=False)
        return keys

    async def load_access_key(self, key_id: str) -> dict[str, Any]:
        body = await self._request("GET", LOAD_PATH, params={"id": key_id})
        return _key_of(body)

    async def update_access_key(self, request_body: Mapping[str, Any]) -> dict[str, Any]:
        body = await self._request("POST", UPDATE_PATH, json=dict(request_body))
        return _key_of(body)

    def _clean(self, text: str) -> str:
        return text.replace(self._secret, MASK) if self._secret else text

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
        try:
            response = await self._http.request(method, path, json=json, params=params)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
            self.requests_by_status["transport"] += 1
            if _caused_by_tls(error):
                message = self._clean(f"{method} {path}: TLS failed: {_describe(error)}")
                raise TlsError(message + " (set SSL_CERT_FILE to a CA bundle that trusts the server)") from None
            message = self._clean(f"{method} {path}: cannot connect: {_describe(error)}")
            raise TransportError(message, ambiguous=False) from None
        except httpx.TransportError as error:
            # Read/write timeouts, resets and truncated answers: the request may have been applied.
            self.requests_by_status["transport"] += 1
            message = self._clean(f"{method} {path}: no complete answer: {_describe(error)}")
            raise TransportError(message, ambiguous=True) from None
        self.requests_by_status[str(response.status_code)] += 1
        if not response.is_success:
            raise _error_from_response(response, self._clean)
        if not response.content:
            return {}
        try:
            decoded = response.json()
        except ValueError:
            raise TransportError(f"{method} {path}: answer is not JSON", ambiguous=True) from None
        if not isinstance(decoded, dict):
            raise TransportError(f"{method} {path}: answer is not a JSON object", ambiguous=True)
        return decoded


def _key_of(body: Mapping[str, Any]) -> dict[str, Any]:
    key = body.get("key")
    return key if isinstance(key, dict) else {}


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
