"""The Descope client over real HTTP: error mapping, base-URL rule, credentials."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from reconcile.client.descope import Credentials, DescopeClient, base_url_for, credentials_from_env
from reconcile.errors import (
    ApiError,
    AuthenticationError,
    ConfigError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransportError,
)


def client_for(emulator: Any, key: str | None = None, timeout: float = 5.0) -> DescopeClient:
    credentials = Credentials(emulator.config.project_id, key or emulator.config.management_key)
    return DescopeClient(credentials, emulator.url, timeout=timeout)


def call(emulator: Any, operation: str, *args: Any, **kwargs: Any) -> Any:
    async def go() -> Any:
        async with client_for(emulator, **kwargs) as client:
            return await getattr(client, operation)(*args)

    return asyncio.run(go())


def test_search_load_update_round_trip(start_emulator: Any) -> None:
    emulator = start_emulator(
        [{"id": "K1", "name": "a", "keyTenants": [{"tenantId": "T1", "roleNames": []}]}], {"T1": "One"}
    )
    assert [k["id"] for k in call(emulator, "search_access_keys")] == ["K1"]
    assert call(emulator, "load_access_key", "K1")["keyTenants"][0]["tenantName"] == "One"
    updated = call(emulator, "update_access_key", {"id": "K1", "name": "b"})
    assert updated["name"] == "b"
    sent = emulator.requests[-1]
    assert sent.path == "/v1/mgmt/accesskey/update" and sent.body == {"id": "K1", "name": "b"}


@pytest.mark.parametrize(
    ("operation", "args", "kwargs", "error_type", "status", "code"),
    [
        ("search_access_keys", (), {"key": "wrong"}, AuthenticationError, 401, "E011002"),
        ("load_access_key", ("nope",), {}, NotFoundError, 404, "E011004"),
        ("update_access_key", ({"id": "K1", "name": 5},), {}, ApiError, 400, "E011003"),
        ("update_access_key", ({"id": "K1", "bogus": 1},), {}, ApiError, 400, "E011003"),
    ],
)
def test_error_answers_become_typed_errors(
    start_emulator: Any,
    operation: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    error_type: type,
    status: int,
    code: str,
) -> None:
    emulator = start_emulator([{"id": "K1", "name": "a"}])
    with pytest.raises(error_type) as caught:
        call(emulator, operation, *args, **kwargs)
    assert caught.value.status == status and caught.value.error_code == code
    assert f"HTTP {status} {code}" in str(caught.value)


def test_429_carries_retry_after_and_5xx_html_is_a_server_error(start_emulator: Any) -> None:
    throttled = start_emulator([], rate_limit=0.01, rate_burst=1)
    call(throttled, "search_access_keys")  # takes the only token
    with pytest.raises(RateLimitedError) as caught:
        call(throttled, "search_access_keys")
    assert (
        caught.value.error_code == "E130429" and caught.value.retry_after is not None and caught.value.retry_after >= 1
    )

    no_header = start_emulator([], rate_limit=0.01, rate_burst=1, retry_after=False, empty_429_body=True)
    call(no_header, "search_access_keys")
    with pytest.raises(RateLimitedError) as caught:
        call(no_header, "search_access_keys")
    assert caught.value.retry_after is None and caught.value.error_code is None

    failing = start_emulator([], fault_rate=1.0, fault_kinds=("502",))
    with pytest.raises(ServerError) as server_error:
        call(failing, "search_access_keys")
    assert server_error.value.status == 502


def test_transport_failures_say_whether_the_request_may_have_landed(start_emulator: Any) -> None:
    dropped = start_emulator([], fault_rate=1.0, fault_kinds=("close",))
    with pytest.raises(TransportError) as caught:
        call(dropped, "search_access_keys")
    assert caught.value.ambiguous

    slow = start_emulator([], fault_rate=1.0, fault_kinds=("slow",), slow_seconds=1.0)
    with pytest.raises(TransportError) as caught:
        call(slow, "search_access_keys", timeout=0.2)
    assert caught.value.ambiguous

    async def refused() -> None:
        async with DescopeClient(Credentials("P", "K"), "http://127.0.0.1:9", timeout=1) as client:
            await client.search_access_keys()

    with pytest.raises(TransportError) as caught:
        asyncio.run(refused())
    assert not caught.value.ambiguous


def test_requests_are_counted_by_status(start_emulator: Any) -> None:
    emulator = start_emulator([{"id": "K1", "name": "a"}])

    async def go() -> dict[str, int]:
        async with client_for(emulator) as client:
            await client.search_access_keys()
            with pytest.raises(NotFoundError):
                await client.load_access_key("nope")
            return dict(client.requests_by_status)

    assert asyncio.run(go()) == {"200": 1, "404": 1}


def test_sends_auth_and_project_headers(start_emulator: Any) -> None:
    emulator = start_emulator([])
    seen: dict[str, str] = {}
    original = emulator.answer

    def spy(method: str, path: str, query: str, headers: dict[str, str], body: Any) -> Any:
        seen.update(headers)
        return original(method, path, query, headers, body)

    emulator.answer = spy
    call(emulator, "search_access_keys")
    assert seen["authorization"] == f"Bearer {emulator.config.project_id}:{emulator.config.management_key}"
    assert seen["x-descope-project-id"] == emulator.config.project_id
    assert seen["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("project_id", "env", "expected"),
    [
        ("P2short", {}, "https://api.descope.com"),
        ("P2abcdefghijklmnopqrstuvwxyz0123456", {}, "https://api.2abc.descope.com"),
        ("P2short", {"DESCOPE_BASE_URI": "https://api.euc1.descope.com/"}, "https://api.euc1.descope.com"),
        (
            "P2short",
            {"DESCOPE_BASE_URL": "http://127.0.0.1:8080", "DESCOPE_BASE_URI": "https://x"},
            "http://127.0.0.1:8080",
        ),
        ("P2short", {"DESCOPE_BASE_URL": "http://localhost:1"}, "http://localhost:1"),
        ("P2short", {"DESCOPE_BASE_URL": "http://[::1]:1"}, "http://[::1]:1"),
    ],
)
def test_base_url_rule(project_id: str, env: dict[str, str], expected: str) -> None:
    assert base_url_for(project_id, env) == expected


@pytest.mark.parametrize("url", ["http://10.0.0.5", "http://api.descope.com", "ftp://127.0.0.1", "not a url"])
def test_unsafe_or_invalid_base_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigError):
        base_url_for("P2short", {"DESCOPE_BASE_URL": url})


def test_credentials_from_env_and_file(tmp_path: Path) -> None:
    assert credentials_from_env({"DESCOPE_PROJECT_ID": "P", "DESCOPE_MANAGEMENT_KEY": "K"}) == Credentials("P", "K")
    secret = tmp_path / "key"
    secret.write_text("K-from-file\n")
    loaded = credentials_from_env({"DESCOPE_PROJECT_ID": "P", "DESCOPE_MANAGEMENT_KEY_FILE": str(secret)})
    assert loaded.management_key == "K-from-file"
    assert "K-from-file" not in repr(loaded)
    with pytest.raises(ConfigError, match="not both"):
        credentials_from_env(
            {"DESCOPE_PROJECT_ID": "P", "DESCOPE_MANAGEMENT_KEY": "K", "DESCOPE_MANAGEMENT_KEY_FILE": str(secret)}
        )
    with pytest.raises(ConfigError, match="cannot read"):
        credentials_from_env({"DESCOPE_PROJECT_ID": "P", "DESCOPE_MANAGEMENT_KEY_FILE": str(tmp_path / "absent")})
