"""The Descope client over real HTTP: error mapping, base-URL rule, credentials, answers checked
against their documented shape (through the real CLI, against a stub that answers wrongly)."""

from __future__ import annotations

import asyncio
import os
import re
import ssl
from pathlib import Path
from typing import Any

import certifi
import pytest

from reconcile.client import answers
from reconcile.client.descope import (
    LOAD_PATH,
    SEARCH_PATH,
    STATUS_PATHS,
    UPDATE_PATH,
    Credentials,
    DescopeClient,
    base_url_for,
    credentials_from_env,
    tls_context,
)
from reconcile.emulator import Answer as EmulatorAnswer
from reconcile.emulator import Call
from reconcile.errors import (
    ApiError,
    AuthenticationError,
    ConfigError,
    NotFoundError,
    ProtocolError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from reconcile.schemas.validators import RESPONSES_SCHEMA, load_schema
from tests.answer_stub import Answer, AnswerStub, json_answer
from tests.conftest import cli_env, load_report, run_cli, write_desired


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

    def spy(call: Call) -> EmulatorAnswer:
        seen.update(call.headers)
        return call.forward()

    emulator.intercept(SEARCH_PATH, spy)
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


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:1/\nx",
        "http://127.0.0.1:99999",
        "http://[::1",
        "https://api.descope.com\x1b[2K",
        "https://xn--.com",
    ],
)
def test_a_malformed_base_url_is_one_line_not_a_traceback(tmp_path: Path, url: str) -> None:
    env = cli_env(None, DESCOPE_PROJECT_ID="P2x", DESCOPE_MANAGEMENT_KEY="K2x", DESCOPE_BASE_URL=url)
    result = run_cli(["export", "--out", str(tmp_path / "o.yaml")], env)
    assert result.code == 1 and result.stderr.startswith("error: the base URL ") and result.stderr.count("\n") == 1


@pytest.mark.parametrize("url", ["http://u:pw-SECRET@127.0.0.1:1", "https://pw-SECRET@api.descope.com"])
def test_a_base_url_with_credentials_is_refused_without_quoting_them(tmp_path: Path, url: str) -> None:
    """httpx would send them as Basic auth instead of the Bearer token (a 401): refused up front, unquoted."""
    env = cli_env(None, DESCOPE_PROJECT_ID="P2x", DESCOPE_MANAGEMENT_KEY="K2x", DESCOPE_BASE_URL=url)
    result = run_cli(["export", "--out", str(tmp_path / "o.yaml")], env)
    assert result.code == 1 and "user name or password" in result.stderr
    assert "SECRET" not in result.output and not (tmp_path / "o.yaml").exists()


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


# --- answers that are not as documented: a stub server, the real CLI -------------------------------
SEARCH, LOAD, UPDATE = "POST /v1/mgmt/accesskey/search", "GET /v1/mgmt/accesskey", "POST /v1/mgmt/accesskey/update"
KEY = {"id": "K1", "name": "a"}
MIB = 2**20


def _nested(depth: int) -> bytes:
    return b'{"keys": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (json_answer({}), "the answer: `keys` is missing"),
        (Answer(body=b""), "the answer: `keys` is missing"),
        (json_answer([KEY]), "the answer: expected object, got array"),
        (json_answer({"keys": {"K1": KEY}}), "keys: expected array, got object"),
        (json_answer({"keys": None}), "keys: expected array, got null"),
        (json_answer({"keys": [{"name": "no id"}]}), "keys[0]: `id` is missing"),
        (json_answer({"keys": [{"id": 7}]}), "keys[0].id: expected string, got integer"),
        (json_answer({"keys": [{"id": ""}]}), "keys[0].id: must not be empty"),
        (json_answer({"keys": [KEY, KEY]}), "keys[1].id: `K1` is the id of an earlier key too"),
        (json_answer({"keys": [{**KEY, "roleNames": "admin"}]}), "keys[0].roleNames: expected array, got string"),
        (json_answer({"keys": [{**KEY, "keyTenants": [{"roleNames": []}]}]}), "keys[0].keyTenants[0]: `tenantId`"),
        (json_answer({"keys": [{**KEY, "expireTime": -1}]}), "keys[0].expireTime: is out of range"),
        (
            json_answer({"keys": [{**KEY, "customClaims": ["team"]}]}),
            "keys[0].customClaims: expected object, got array",
        ),
        (Answer(body=b"<html>maintenance</html>", headers={"Content-Type": "text/html"}), "not JSON (text/html, 24"),
        (Answer(body=_nested(100_000)), "the answer is not JSON"),
        (Answer(body=b'{"keys": [{"id": "K\\ud800"}]}'), "holds a string that is not Unicode"),
        # a lone surrogate written as raw UTF-8 bytes (which json.loads(bytes) lets through), not escaped
        (Answer(body=b'{"keys": [{"id": "K1", "name": "\xed\xa0\x80"}]}'), "holds a string that is not Unicode"),
        (Answer(body=b'{"keys": [{"id": "K1", "customClaims": {"a": NaN}}]}'), "the answer is not JSON"),
        (Answer(body=b'{"keys": [{"id": "K1", "customClaims": {"a": 1e400}}]}'), "the answer is not JSON"),
    ],
)
def test_a_search_answer_not_as_documented_is_a_protocol_error_never_retried(
    tmp_path: Path, answer: Answer, says: str
) -> None:
    """Before: `{}` read as an empty project (export wrote `keys: []`, plan marked every key missing),
    a body that is not JSON was retried as a transport failure."""
    desired = write_desired(tmp_path / "d", [KEY])
    out = tmp_path / "out.yaml"
    with AnswerStub({SEARCH: answer}) as stub:
        for command in (["plan", str(desired)], ["export", "--out", str(out)]):
            result = run_cli(command, stub.env(cli_env(None)))
            assert result.code == 1, result.output
            assert f"error: {SEARCH}: " in result.stderr and says in result.stderr, result.stderr
            assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert stub.requests == [SEARCH] * 2  # one per command
    assert not out.exists()


@pytest.mark.parametrize("retry_after", ["inf", "nan", "-1", "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_an_unreadable_retry_after_is_no_retry_after(tmp_path: Path, retry_after: str) -> None:
    """Before: `Retry-After: inf` paused every worker for ever."""
    throttled = Answer(
        429, b'{"errorCode": "E130429"}', {"Content-Type": "application/json", "Retry-After": retry_after}
    )
    with AnswerStub({SEARCH: throttled}) as stub:
        args = ["plan", str(write_desired(tmp_path / "d", [KEY])), "--key-deadline", "1"]
        result = run_cli(args, stub.env(cli_env(None)), timeout=60)
    assert result.code == 1 and "HTTP 429 E130429" in result.stderr, result.output


def test_an_error_text_is_capped(tmp_path: Path) -> None:
    huge = json_answer({"errorCode": "E011001", "errorDescription": "x" * 1_000_000}, status=400)
    with AnswerStub({SEARCH: huge}) as stub:
        result = run_cli(["plan", str(write_desired(tmp_path / "d", [KEY]))], stub.env(cli_env(None)))
    assert result.code == 1 and "HTTP 400 E011001: xxx" in result.stderr and "… (1000000 characters)" in result.stderr
    assert len(result.stderr) < 500 and stub.requests == [SEARCH]


def test_a_protocol_error_quotes_no_value_and_caps_what_it_names(tmp_path: Path) -> None:
    secret, name = "cleartext-" + "s" * 50, "claim" + "x" * 5000
    bad = {"keys": [{**KEY, "description": [secret], "customClaims": {name: {"secret": secret}}}]}
    with AnswerStub({SEARCH: json_answer(bad)}) as stub:
        result = run_cli(["plan", str(write_desired(tmp_path / "d", [KEY]))], stub.env(cli_env(None)))
    assert result.code == 1 and secret not in result.stderr and len(result.stderr) < 300, result.stderr


def test_an_answer_over_64_mib_is_refused_without_reading_it(tmp_path: Path) -> None:
    declared = Answer(body=b"{}", headers={"Content-Type": "application/json", "Content-Length": str(65 * MIB)})
    streamed = Answer(chunks=lambda: (b" " * MIB for _ in range(80)))  # chunked: no length to trust
    for answer in (declared, streamed):
        with AnswerStub({SEARCH: answer}) as stub:
            result = run_cli(["export", "--out", str(tmp_path / "out.yaml")], stub.env(cli_env(None)))
            assert result.code == 1 and "the answer is larger than 64 MiB" in result.stderr, result.output
            assert stub.requests == [SEARCH]


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (json_answer({}), "the answer: `key` is missing"),
        (json_answer({"key": {"id": "K2", "name": "b"}}), "key.id: asked for `K1`, got `K2`"),
        (json_answer({"key": []}), "key: expected object, got array"),
    ],
)
def test_a_load_answer_not_as_documented_is_a_protocol_error(tmp_path: Path, answer: Answer, says: str) -> None:
    with AnswerStub({LOAD: answer}) as stub:
        result = run_cli(["export", "--ids", "K1", "--out", str(tmp_path / "o.yaml")], stub.env(cli_env(None)))
        assert result.code == 1 and says in result.stderr, result.output
        assert stub.requests == [LOAD] and not (tmp_path / "o.yaml").exists()


@pytest.mark.parametrize(
    ("endpoint", "answer", "says"),
    [
        (UPDATE, json_answer({"key": {"id": "K1", "name": 7}}), "key.name: expected string, got integer"),
        (UPDATE, json_answer({"key": {"id": "K9", "name": "b"}}), "key.id: asked for `K1`, got `K9`"),
        (UPDATE, Answer(body=b"OK", headers={"Content-Type": "text/plain"}), "the answer is not JSON"),
        ("POST /v1/mgmt/accesskey/deactivate", json_answer([]), "the answer: expected object, got array"),
    ],
)
def test_a_write_answered_not_as_documented_fails_the_key_unretried(
    tmp_path: Path, endpoint: str, answer: Answer, says: str
) -> None:
    """The write may have happened: the key is failed with the reason, and the same request is not sent again."""
    desired = write_desired(tmp_path / "d", [{"id": "K1", "name": "b", "status": "inactive"}])
    with AnswerStub({SEARCH: json_answer({"keys": [KEY]}), endpoint: answer}) as stub:
        stub.answers.setdefault(UPDATE, json_answer({"key": {"id": "K1", "name": "b"}}))
        stub.answers.setdefault("POST /v1/mgmt/accesskey/deactivate", Answer(body=b""))
        result = run_cli(["apply", str(desired), "--report", str(tmp_path / "r.json")], stub.env(cli_env(None)))
        assert result.code == 1, result.output
        assert "! K1  [failed] after" in result.stdout and says in result.stdout, result.stdout
        assert stub.count(endpoint) == 1
    report = load_report(tmp_path / "r.json")
    assert report["keys"][0]["outcome"] == "failed" and says in report["keys"][0]["error"]["message"]


def test_every_endpoint_the_client_calls_has_a_documented_answer() -> None:
    called = [
        SEARCH_PATH,
        LOAD_PATH,
        UPDATE_PATH,
        *STATUS_PATHS.values(),
        *(f"{p}/batch" for p in STATUS_PATHS.values()),
    ]
    shapes = load_schema(RESPONSES_SCHEMA)["x-endpoints"]
    assert all(f"{'GET' if path == LOAD_PATH else 'POST'} {path}" in shapes for path in called)
    assert shapes["POST /v1/mgmt/accesskey/create"] == shapes["POST /v1/mgmt/accesskey/rotate"]


@pytest.mark.parametrize(
    ("endpoint", "body", "says"),
    [
        ("POST /v1/mgmt/accesskey/create", {"key": KEY}, "`cleartext` is missing"),
        ("POST /v1/mgmt/accesskey/rotate", {"key": KEY, "cleartext": ["the-secret"]}, "cleartext: expected string"),
        ("POST /v1/mgmt/accesskey/delete", [], "expected object, got array"),
    ],
)
def test_answers_still_to_come_are_checked_too(endpoint: str, body: Any, says: str) -> None:
    method, path = endpoint.split(" ")
    good = {"key": KEY, "cleartext": "s"} if "delete" not in path else {}
    assert answers.check(method, path, good, str) == good
    with pytest.raises(ProtocolError, match=re.escape(says)) as caught:
        answers.check(method, path, body, str)
    assert "the-secret" not in str(caught.value)


def test_a_header_that_cannot_be_sent_is_refused_unretried_and_unquoted(start_emulator: Any) -> None:
    """Credentials from elsewhere than the environment (which refuses them first): h11 will not write
    the header, no retry can change that, and its message would quote the header, key and all."""
    emulator = start_emulator([KEY])

    async def go() -> None:
        credentials = Credentials(emulator.config.project_id, "K2-secret\nSECOND-LINE")
        async with DescopeClient(credentials, emulator.url, timeout=5) as client:
            await client.search_access_keys()

    with pytest.raises(ConfigError, match="a header is not valid HTTP") as caught:
        asyncio.run(go())
    assert "K2-secret" not in str(caught.value) and "SECOND" not in str(caught.value)
    assert emulator.requests == []


@pytest.mark.parametrize(
    "base",
    ["http://127.0.0.1:8080", "https://api.example.com/prefix/", "https://api.example.com/a%20b", "http://[::1]:1"],
)
@pytest.mark.parametrize(
    ("path", "params"),
    [("/v1/mgmt/accesskey/update", None), ("/v1/mgmt/accesskey", {"id": "K 1&x=é"}), ("v1/mgmt/license", {})],
)
def test_a_path_merged_once_is_the_url_httpx_merges_each_time(base: str, path: str, params: Any) -> None:
    """The client merges each path with the base URL once (a string is parsed again on every request)."""
    client = DescopeClient(Credentials("P1", "m"), base, timeout=1)
    fast = client._http.build_request("POST", client._url(path), params=params, json={"id": "K1"})
    again = client._http.build_request("POST", client._url(path), params=params, json={"id": "K1"})
    reference = client._http.build_request("POST", path, params=params, json={"id": "K1"})
    assert str(fast.url) == str(again.url) == str(reference.url)
    assert fast.url == reference.url and fast.headers == reference.headers and fast.content == reference.content


def test_clients_share_one_verified_tls_context_per_ca_bundle(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A CA bundle is loaded once per process (50 ms each), not once per client; a bundle named by
    SSL_CERT_FILE or SSL_CERT_DIR gets a context of its own, and every context verifies."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    default = tls_context()
    assert tls_context() is default
    monkeypatch.setenv("SSL_CERT_FILE", certifi.where())
    from_file = tls_context()
    monkeypatch.delenv("SSL_CERT_FILE")
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    from_dir = tls_context()
    assert len({id(default), id(from_file), id(from_dir)}) == 3
    assert from_dir.cert_store_stats()["x509_ca"] == 0 < default.cert_store_stats()["x509_ca"]
    for context in (default, from_file, from_dir):
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    monkeypatch.delenv("SSL_CERT_DIR")
    clients = [DescopeClient(Credentials("P1", "K1"), "https://api.descope.com", timeout=1) for _ in range(2)]
    pools = [client._http._transport._pool for client in clients]  # type: ignore[attr-defined]
    assert pools[0]._ssl_context is pools[1]._ssl_context is default


def test_a_tls_context_follows_its_bundle_and_never_verifies_less(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A relative SSL_CERT_FILE read from another folder, or a bundle replaced on disk, is loaded
    again; a context someone changed to verify less is never handed out again."""
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    bundle = Path(certifi.where()).read_bytes()
    first, second = tmp_path / "a", tmp_path / "b"
    for folder in (first, second):
        folder.mkdir()
    (first / "ca.pem").write_bytes(bundle)
    one_certificate = bundle.split(b"-----END CERTIFICATE-----", 1)[0] + b"-----END CERTIFICATE-----\n"
    (second / "ca.pem").write_bytes(one_certificate.ljust(len(bundle), b"#"))  # text outside a PEM block
    for folder in (first, second):  # the same size and time: only the folder tells them apart
        os.utime(folder / "ca.pem", ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    monkeypatch.setenv("SSL_CERT_FILE", "ca.pem")
    monkeypatch.chdir(first)
    everything = tls_context()
    assert tls_context() is everything
    monkeypatch.chdir(second)
    one = tls_context()
    assert one.cert_store_stats()["x509_ca"] == 1 < everything.cert_store_stats()["x509_ca"]
    (second / "ca.pem").write_bytes(bundle)  # replaced on disk: another size
    assert tls_context().cert_store_stats()["x509_ca"] == everything.cert_store_stats()["x509_ca"]

    monkeypatch.delenv("SSL_CERT_FILE")
    weakened = tls_context()
    weakened.check_hostname = False
    weakened.verify_mode = ssl.CERT_NONE
    again = tls_context()
    assert again is not weakened and again.verify_mode == ssl.CERT_REQUIRED and again.check_hostname
    (tmp_path / "missing").mkdir()
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing" / "ca.pem"))
    with pytest.raises(FileNotFoundError):
        tls_context()
