"""The management key and issued secrets never leak; TLS is always verified, with a CA bundle when given."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import gc
import html
import ipaddress
import itertools
import json
import pickle
import ssl
import stat
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from reconcile.emulator import FAULT_KINDS, Answer, Call, Emulator, EmulatorConfig
from reconcile.secrets.secret import Secret
from reconcile.secrets.sinks import Issued
from tests.answer_stub import AnswerStub, json_answer
from tests.conftest import cli_env, run_cli, write_desired

# Every character that some encoding changes: `/`, `+`, quotes, HTML and URL specials.
SENTINEL = "K2-SENTINEL/c0ffee+do'not\"print<&>%"
KEYS = [{"id": f"K{i}", "name": f"k{i}"} for i in range(30)]


def encodings(header: str, project_id: str) -> dict[str, str]:
    """The credentials as a careless server, proxy or library may write them back (written out here,
    not taken from the redactor: the test must not share its mistakes)."""
    return {
        "raw": SENTINEL,
        "header": header,
        "url": quote(SENTINEL, safe=""),
        "url-plus": quote_plus(SENTINEL),
        "url-lower": quote(SENTINEL, safe="").replace("%2F", "%2f").replace("%2B", "%2b"),
        "json": json.dumps({"authorization": header}),
        "json-go": json.dumps(header).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"),
        "repr-bytes": repr(header.encode()),
        "html": html.escape(header),
        "base64-header": base64.b64encode(header.encode()).decode(),
        "base64-basic": "Basic " + base64.b64encode(f"{project_id}:{SENTINEL}".encode()).decode(),
        "base64-url": base64.urlsafe_b64encode(f"x{SENTINEL}".encode()).decode(),
    }


def echoing_auth(emulator: Emulator, *, fail_updates: bool = False) -> list[str]:
    """A server that fails in the worst way: error bodies that quote the request's credentials, in
    one encoding after another (and with `fail_updates`, every update fails so). Returns the names
    of the encodings it sent, as it sends them."""
    names = itertools.cycle(encodings(emulator.auth_header, emulator.config.project_id))
    sent: list[str] = []

    def answer(call: Call) -> Answer:
        result = call.forward()
        if fail_updates and call.path.endswith("/update"):
            result.status, result.body = 500, {"errorCode": "E011001"}
        if isinstance(result.body, dict) and "errorCode" in result.body:
            name = next(names)
            sent.append(name)
            forms = encodings(call.headers.get("authorization", ""), emulator.config.project_id)
            result.body["errorMessage"] = f"rejected {forms[name]}"
            result.body["errorDescription"] = f"key was {SENTINEL}"
            result.body["errorCode"] += f"-{SENTINEL}"  # kept in reports as the error's code
        return result

    emulator.intercept("/v1/*", answer)  # every API path: auth, key and audit calls
    return sent


@pytest.mark.slow
@pytest.mark.parametrize("accepted", [True, False], ids=["key-accepted", "key-rejected"])
def test_sentinel_key_never_appears_in_any_output(start_emulator: Any, tmp_path: Path, accepted: bool) -> None:
    emulator = start_emulator(
        KEYS,
        management_key=SENTINEL if accepted else "K2-the-right-one",
        rate_limit=30,
        retry_after=False,
        fault_rate=0.3,
        fault_kinds=FAULT_KINDS,
        slow_seconds=0.6,
        random_seed=3,
    )
    echoing_auth(emulator)
    desired = write_desired(tmp_path / "d", [{**k, "name": "renamed"} for k in KEYS])
    env = cli_env(emulator, DESCOPE_MANAGEMENT_KEY=SENTINEL)
    outputs = []
    for args in (
        ["validate", str(desired), "-vv"],
        ["plan", str(desired), "-vv", "--timeout", "0.3", "--report", str(tmp_path / "plan.json")],
        [
            "apply",
            str(desired),
            "-vv",
            "--timeout",
            "0.3",
            "--force",
            "--max-attempts",
            "2",
            "--report",
            str(tmp_path / "apply.json"),
        ],
        [
            "audit",
            str(desired),
            "-vv",
            "--timeout",
            "0.3",
            "--max-attempts",
            "6",  # through the faults: the audit's own report must be searched too
            "--out",
            str(tmp_path / "audit.json"),
        ],
    ):
        result = run_cli(args, env, timeout=180)
        assert "Traceback" not in result.output
        outputs.append(result.output)
    written = [p.read_bytes() for p in tmp_path.iterdir() if p.is_file()]
    if accepted:  # plan report, apply report, journal, audit (a project that cannot be read gets no report)
        assert len(written) == 4, sorted(p.name for p in tmp_path.iterdir())
    everything = "\n".join(outputs) + b"\n".join(written).decode()
    header = f"Bearer {emulator.config.project_id}:{SENTINEL}"
    for name, form in encodings(header, emulator.config.project_id).items():
        assert form not in everything, name
    assert "rejected" in everything or "HTTP 4" in everything  # the errors were shown, scrubbed
    if accepted:
        assert "***" in "\n".join(outputs)


def test_every_encoding_of_the_key_is_scrubbed(start_emulator: Any, tmp_path: Path) -> None:
    """One failed update per encoding: each error text is shown (results, log, report), none with the key."""
    forms = encodings("", "")
    emulator = start_emulator(KEYS[: len(forms)], management_key=SENTINEL)
    echoed = echoing_auth(emulator, fail_updates=True)
    desired = write_desired(tmp_path / "d", [{**k, "name": "renamed"} for k in KEYS[: len(forms)]])
    report = tmp_path / "apply.json"
    args = ["apply", str(desired), "-vv", "--force", "--max-attempts", "1", "--report", str(report)]
    result = run_cli(args, cli_env(emulator, DESCOPE_MANAGEMENT_KEY=SENTINEL))
    assert result.code == 1 and set(echoed) == set(forms), result.output
    everything = result.output + report.read_text() + (tmp_path / "apply.json.journal.jsonl").read_text()
    for name, form in encodings(emulator.auth_header, emulator.config.project_id).items():
        assert form not in everything, name
    assert everything.count("rejected ***") >= len(forms), result.stdout  # the results name each error


def test_key_from_a_mounted_file_and_private_files(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(KEYS[:3])
    secret = tmp_path / "secret"
    secret.write_text(emulator.config.management_key + "\n")
    secret.chmod(0o400)
    desired = write_desired(tmp_path / "d", [{**k, "name": "x"} for k in KEYS[:3]])
    env = {**cli_env(emulator), "DESCOPE_MANAGEMENT_KEY": "", "DESCOPE_MANAGEMENT_KEY_FILE": str(secret)}
    result = run_cli(["apply", str(desired), "--report", str(tmp_path / "out" / "r.json")], env)
    assert result.code == 0, result.output
    for path in (tmp_path / "out" / "r.json", tmp_path / "out" / "r.json.journal.jsonl"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("DESCOPE_MANAGEMENT_KEY_FILE", SENTINEL + "\nSECOND-LINE\n", "has a line break inside it"),
        ("DESCOPE_MANAGEMENT_KEY_FILE", SENTINEL + " \n", "has whitespace"),
        ("DESCOPE_MANAGEMENT_KEY_FILE", " " + SENTINEL, "has whitespace"),
        ("DESCOPE_MANAGEMENT_KEY", SENTINEL + "\rSECOND-LINE", "has a line break inside it"),
        ("DESCOPE_MANAGEMENT_KEY", SENTINEL + "\x1b[2K", "has a control character"),
        ("DESCOPE_MANAGEMENT_KEY", "Kéy-" + SENTINEL, "has a non-ASCII character"),
        ("DESCOPE_PROJECT_ID", "P2\nSECOND-LINE", "DESCOPE_PROJECT_ID has a line break inside it"),
        ("DESCOPE_PROJECT_ID", "P2ü", "DESCOPE_PROJECT_ID has a non-ASCII character"),
    ],
)
def test_credentials_that_cannot_be_sent_are_refused_before_any_request(
    start_emulator: Any, tmp_path: Path, variable: str, value: str, says: str
) -> None:
    """One line, exit 1, nothing sent (a header with a line break was sent six times, and its error
    quoted the key); the value is never shown."""
    emulator = start_emulator(KEYS[:1])
    env = cli_env(emulator, DESCOPE_MANAGEMENT_KEY=SENTINEL)
    if variable == "DESCOPE_MANAGEMENT_KEY_FILE":
        (tmp_path / "secret").write_text(value, encoding="utf-8")
        env.update(DESCOPE_MANAGEMENT_KEY="", DESCOPE_MANAGEMENT_KEY_FILE=str(tmp_path / "secret"))
    else:
        env[variable] = value
    desired = write_desired(tmp_path / "d", KEYS[:1])
    for command in (["plan", str(desired)], ["export", "--out", str(tmp_path / "out.yaml")]):
        result = run_cli(command, env)
        assert result.code == 1, result.output
        assert result.stderr.count("\n") == 1 and says in result.stderr, result.stderr
        assert SENTINEL not in result.output and "SECOND" not in result.output and "K2-" not in result.output
        assert result.stdout == ""
    assert emulator.requests == []


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\n\n"])
def test_a_key_file_may_end_with_a_line_break(start_emulator: Any, tmp_path: Path, ending: str) -> None:
    emulator = start_emulator(KEYS[:1], management_key=SENTINEL)
    (tmp_path / "secret").write_text(SENTINEL + ending, encoding="utf-8")
    env = cli_env(emulator, DESCOPE_MANAGEMENT_KEY="", DESCOPE_MANAGEMENT_KEY_FILE=str(tmp_path / "secret"))
    result = run_cli(["plan", str(write_desired(tmp_path / "d", KEYS[:1]))], env)
    assert result.code == 0, result.output


def test_no_flag_takes_the_key() -> None:
    text = run_cli(["apply", "--help"], cli_env(None)).stdout
    assert "--management-key" not in text and "--key " not in text


def _certificate_authority(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it: (ca.pem, cert.pem, key.pem)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


def test_tls_is_verified_and_a_ca_bundle_can_be_given(tmp_path: Path) -> None:
    ca, cert, key = _certificate_authority(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    desired = write_desired(tmp_path / "d", KEYS[:2])
    with Emulator(EmulatorConfig(), KEYS[:2], tls=context) as emulator:
        assert emulator.url.startswith("https://127.0.0.1:")
        env = {k: v for k, v in cli_env(emulator).items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
        untrusted = run_cli(["plan", str(desired)], env)
        assert untrusted.code == 1 and "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
        assert "SSL_CERT_FILE" in untrusted.stderr and len(emulator.requests) == 0  # not retried
        assert "Traceback" not in untrusted.output
        trusted = run_cli(["plan", str(desired)], {**env, "SSL_CERT_FILE": str(ca)})
        assert trusted.code == 0, trusted.output


def test_issued_secrets_appear_only_in_the_sinks(start_emulator: Any, tmp_path: Path) -> None:
    """Every byte the tool writes, at -vv, through creates and rotations with faults and a failing sink:
    the cleartexts the server issued are in the secrets file and the command's input, nowhere else."""
    emulator = start_emulator(
        [{"id": "K1", "name": "app-1"}, {"id": "K2", "name": "app-2"}],
        fault_rate=0.2,
        fault_kinds=("500", "503", "close"),
        fault_after_apply=0.5,
        random_seed=11,
    )
    echoing_auth(emulator)
    desired = write_desired(tmp_path / "d", [{"name": f"new-{i}", "roleNames": ["r"]} for i in range(8)])
    secrets, received = tmp_path / "sinks" / "secrets.jsonl", tmp_path / "sinks" / "received"
    received.parent.mkdir()
    loud_sink = f'cat >> {received}; echo "refusing $KEY_NAME" >&2; exit 1'  # fails, after taking it
    sinks = ["--secrets-out", str(secrets), "--secrets-command", loud_sink]
    outputs = []
    for args in (
        ["plan", str(desired), "-vv", "--out", str(tmp_path / "plan.json"), "--summary", str(tmp_path / "plan.md")],
        ["apply", "--plan", str(tmp_path / "plan.json"), "-vv", "--report", str(tmp_path / "apply.json"), *sinks],
        [
            "apply",
            str(desired),
            "-vv",
            "--report",
            str(tmp_path / "again.json"),
            "--summary",
            str(tmp_path / "a.md"),
            *sinks,
        ],
        ["rotate", "--ids", "K1,K2", "-vv", "--report", str(tmp_path / "rotate.json"), *sinks],
    ):
        result = run_cli(args, cli_env(emulator), timeout=180)
        assert "Traceback" not in result.output
        outputs.append(result.output.encode())
    cleartexts = [line["cleartext"].encode() for line in map(json.loads, secrets.read_text().splitlines())]
    # the sink fails every time: each run issues until the first failed delivery, then no more
    assert len(cleartexts) >= 3 and all(c in received.read_bytes() for c in cleartexts)
    written = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p.parent.name != "sinks"]
    assert len(written) >= 8  # plan, summaries, reports, journals
    everything = b"\n".join([*outputs, *written])
    assert not [c for c in cleartexts if c in everything]
    # after a failed delivery the run issues no more secrets (each key then says so)
    assert b"undelivered" in everything and b"not sent: an earlier secret was not delivered" in everything


def test_a_secret_prints_as_a_mask_and_cannot_be_serialized() -> None:
    secret = Secret("s3cr3t-value")
    shown = [repr(secret), str(secret), f"{secret}", f"{secret:>30}", f"{secret!r:>20}".strip(), "%s" % secret]  # noqa: UP031
    assert all("s3cr3t" not in text for text in shown) and set(shown) == {"Secret(***)"}
    assert "s3cr3t" not in repr(Issued("K1", "n", secret, "run", "now"))
    for dump in (lambda: json.dumps(secret), lambda: pickle.dumps(secret), lambda: copy.copy(secret)):
        with pytest.raises(TypeError):
            dump()
    with pytest.raises(TypeError):
        copy.deepcopy({"key": secret})
    assert not hasattr(secret, "__dict__") and "s3cr3t" not in str(gc.get_referents(secret))


@pytest.mark.parametrize(
    "answer",
    [
        {"keys": [{"id": "0123456789" + SENTINEL}, {"id": "0123456789" + SENTINEL}]},  # a cut id
    ],
)
def test_a_key_echoed_in_a_wrong_answer_is_scrubbed_before_it_is_cut(tmp_path: Path, answer: Any) -> None:
    """A protocol error names where the answer is wrong, names capped at 40 characters: capped after
    scrubbing, or the log's redactor would no longer see the key that the cut left behind. (A claim's
    name was the other case: claims and attributes now hold any JSON value, so none is ever wrong.)"""
    with AnswerStub({"POST /v1/mgmt/accesskey/search": json_answer(answer)}) as stub:
        env = {**stub.env(cli_env(None)), "DESCOPE_MANAGEMENT_KEY": SENTINEL}
        result = run_cli(["plan", str(write_desired(tmp_path / "d", KEYS[:1])), "-vv"], env)
    assert result.code == 1 and "the answer is not as documented" in result.stderr, result.output
    pieces = {SENTINEL[start : start + 8] for start in range(len(SENTINEL) - 7)}
    assert not [piece for piece in pieces if piece in result.output], result.output
