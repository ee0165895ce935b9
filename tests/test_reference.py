"""The exit codes and environment variables have one source in the code (`ExitCode`, `VARIABLES`):
`--help` and docs/commands.md are made from it, and it holds what the code does."""

from __future__ import annotations

import ast
import re
import signal
import urllib.request
from pathlib import Path

import pytest

from reconcile import reference
from reconcile.client.descope import Credentials, DescopeClient
from reconcile.environment import VARIABLES
from reconcile.errors import SEVERITY, ExitCode
from tests.support.cli import cli_env, run_cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _words(text: str) -> str:
    return " ".join(text.replace("`", "").split())


def test_the_docs_blocks_are_made_from_the_code() -> None:
    """`make docs` (python -m reconcile.reference --write) was run after the last change to either."""
    assert reference.stale_pages(DOCS) == [], "stale: run `make docs`"
    commands = (DOCS / "commands.md").read_text(encoding="utf-8")
    assert reference.exit_codes_markdown() in commands and reference.environment_markdown() in commands


@pytest.mark.parametrize("command", [[], ["validate"], ["apply"]])
def test_help_lists_every_exit_code_and_variable_as_the_code_says(command: list[str]) -> None:
    done = run_cli([*command, "--help"], cli_env(None))
    assert done.code == 0
    shown = done.stdout
    exit_codes = shown[shown.index("\nexit codes:\n") : shown.index("\ntargets:\n")]
    for code in ExitCode:
        assert re.search(rf"^  {int(code)} +\S", exit_codes, re.M), code
        assert _words(code.meaning) in _words(exit_codes), code
    environment = shown[shown.index("\nenvironment:\n") : shown.index("\nexamples:\n")]
    for variable in VARIABLES:
        assert all(name in environment for name in variable.names)
        assert _words(variable.meaning) in _words(environment), variable.names
    assert reference.SEVERITY_ORDER in _words(shown)


def test_the_severity_order_ranks_every_code_a_target_can_end_with() -> None:
    """Every code but the signals' (those end the process before any summary) has its rank."""
    assert set(SEVERITY) == {code for code in ExitCode if code < 128}


def test_the_signal_codes_are_the_shell_s() -> None:
    """reconcile/job/session.py exits with 128 + the signal's number."""
    assert ExitCode.SECOND_SIGINT == 128 + signal.SIGINT
    assert ExitCode.SECOND_SIGTERM == 128 + signal.SIGTERM


def _environment_reads(tree: ast.AST) -> set[str]:
    """The names the code reads from the environment: env.get("X"), os.environ["X"], os.getenv("X"),
    and a credential source's `*_env` defaults (the variable names it reads)."""

    def is_environment(node: ast.expr) -> bool:
        return (isinstance(node, ast.Name) and node.id in ("env", "environ")) or (
            isinstance(node, ast.Attribute) and node.attr == "environ"
        )

    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            reads = node.func.attr == "get" and is_environment(node.func.value)
            if (reads or node.func.attr == "getenv") and isinstance(node.args[0], ast.Constant):
                names.add(node.args[0].value)
        elif isinstance(node, ast.Subscript) and is_environment(node.value) and isinstance(node.slice, ast.Constant):
            names.add(node.slice.value)
        elif (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id.endswith("_env")
            and isinstance(node.value, ast.Constant)
        ):
            names.add(node.value.value)
    return names - {""}  # an empty name: that way is not offered (a config target's defaults)


def test_the_declared_variables_are_exactly_those_the_code_reads() -> None:
    read: set[str] = set()
    for path in (ROOT / "reconcile").rglob("*.py"):
        if "emulator" not in path.parts:  # a stand-in for Descope, not part of the tool
            read |= _environment_reads(ast.parse(path.read_text(encoding="utf-8")))
    declared = {name for variable in VARIABLES if not variable.by_httpx for name in variable.names}
    assert read == declared, (
        f"read, not declared: {sorted(read - declared)}; declared, not read: {sorted(declared - read)}"
    )


def test_the_variables_httpx_reads_reach_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client leaves httpx's trust_env on: the proxy variables work, as the table says."""
    client = DescopeClient(Credentials("P1", "K1"), "https://api.descope.com", timeout=1)
    assert client._http.trust_env
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.setenv(name, "proxy.example:3128")
        assert urllib.request.getproxies().get(name.split("_")[0].lower()) == "proxy.example:3128", name


def test_no_page_writes_an_exit_code_or_variable_table_by_hand() -> None:
    """Outside the generated blocks, no README or docs line is a row of either table."""
    rows = re.compile(r"^\| *(`?\d+`?|`(DESCOPE|SSL|GITHUB|XDG|HTTPS?|ALL|NO)_[A-Z_]+`) *\|", re.M)
    for page in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        text = re.sub(r"<!-- generated: .*?<!-- end: [a-z-]+ -->", "", page.read_text(encoding="utf-8"), flags=re.S)
        assert not rows.findall(text), f"{page.name}: a hand-written row of a generated table"


def test_a_block_is_replaced_between_its_markers_only() -> None:
    text = "before\n<!-- generated: exit-codes (by make docs) -->\nold\n<!-- end: exit-codes -->\nafter\n"
    assert reference.replace_block(text, "exit-codes", "new") == text.replace("old", "new")
    with pytest.raises(ValueError, match="no block `environment`"):
        reference.replace_block(text, "environment", "new")
