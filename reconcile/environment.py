"""Every environment variable the tool reads, each with its meaning: the one text of it, from which
`--help` and docs/commands.md are made (`python -m reconcile.reference --write`). A test holds this
list to the variables the code reads."""

from __future__ import annotations


class Variable:
    """Not a dataclass: `validate` (the pre-commit hook) imports this module, and a dataclass costs
    its start-up a generated __init__."""

    __slots__ = ("by_httpx", "meaning", "names")

    def __init__(self, names: tuple[str, ...], meaning: str, *, by_httpx: bool = False) -> None:
        self.names = names  # the first is the one to set; the others are read too
        self.meaning = meaning
        self.by_httpx = by_httpx  # read by httpx (trust_env), not by the tool's own code

    @property
    def label(self) -> str:
        return " / ".join(self.names)


VARIABLES = (
    Variable(
        ("DESCOPE_PROJECT_ID",),
        "the project (every command but `validate`), when PATHs are given or there is no config; a target of "
        "`descope-reconcile.yaml` reads only the variables it names",
    ),
    Variable(
        ("DESCOPE_MANAGEMENT_KEY",),
        "its management key; never accepted as a flag (it would show in `ps`), never handed to `--secrets-command`",
    ),
    Variable(("DESCOPE_MANAGEMENT_KEY_FILE",), "or a file holding the key, for mounted secrets (not both)"),
    Variable(
        ("DESCOPE_BASE_URL", "DESCOPE_BASE_URI"),
        "API base URL (`DESCOPE_BASE_URI` is the SDKs' name); default `https://api.descope.com`, or "
        "`https://api.<id[1:5]>.descope.com` for project ids of 32+ characters, as the SDKs do; plain `http://` "
        "only on loopback; not for a target (its `baseUrl`)",
    ),
    Variable(
        ("SSL_CERT_FILE", "SSL_CERT_DIR"),
        "a CA bundle (or folder) for TLS, read as httpx reads them; verification cannot be switched off",
    ),
    Variable(
        ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"),
        "a proxy for the API's requests, and the hosts that bypass it",
        by_httpx=True,
    ),
    Variable(
        ("GITHUB_STEP_SUMMARY",),
        "where the Markdown summary goes when `--summary` is not given (set by GitHub Actions)",
    ),
    Variable(
        ("GITHUB_REPOSITORY", "GITHUB_RUN_ID", "GITHUB_SERVER_URL"),
        "recorded in the apply's audit event: the repository (else the `origin` remote, without credentials) "
        "and the link to the workflow run",
    ),
    Variable(
        ("XDG_STATE_HOME",),
        "where apply keeps its per-project locks: `$XDG_STATE_HOME/descope-reconcile/locks`, default "
        "`~/.local/state/descope-reconcile/locks`",
    ),
)
