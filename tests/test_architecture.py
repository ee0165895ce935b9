"""The layout is a contract: ARCHITECTURE.md names every stage folder, and import-linter keeps the layering."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "reconcile"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _subpackages() -> set[str]:
    return {path.parent.name for path in PACKAGE.glob("*/__init__.py")}


def test_architecture_describes_every_subpackage_and_names_only_real_folders() -> None:
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    named = set(re.findall(r"reconcile/([a-z_]+)/", text))
    assert named, "ARCHITECTURE.md names no folder"
    assert not named - _subpackages(), f"named but missing: {sorted(named - _subpackages())}"
    described = set(re.findall(r"^- \*\*`reconcile/([a-z_]+)/`\*\*", text, flags=re.MULTILINE))
    assert _subpackages() <= described, f"not described: {sorted(_subpackages() - described)}"


def _run_contracts(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"},
        timeout=120,
        check=False,
    )


def test_import_contracts_hold() -> None:
    result = _run_contracts(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


# Each crossing: the module, the import written into it, the edge import-linter then names, and the
# contract it breaks.
CROSSINGS = [
    ("reconcile/plan/diff.py", "import httpx", "httpx", "The plan is pure"),
    (
        "reconcile/plan/saved.py",
        "from reconcile.files import write_private_atomically",
        "reconcile.files",
        "The plan is pure",
    ),
    ("reconcile/plan/diff.py", "from pathlib import Path", "pathlib", "The plan is pure"),
    ("reconcile/policy/rules.py", "from reconcile.files import read_input", "reconcile.files", "The plan is pure"),
    ("reconcile/policy/policy.py", "from reconcile.job import load", "reconcile.job.load", "Stages are layered"),
    (
        "reconcile/plan/diff.py",
        "from reconcile.apply import executor",
        "reconcile.apply.executor",
        "Stages are layered",
    ),
    (
        "reconcile/cli/plan.py",
        "from reconcile.plan.diff import compute_plan",
        "reconcile.plan.diff",
        "The command line parses and shows",
    ),
    ("reconcile/output/text.py", "import httpx", "httpx", "Only the client layer speaks HTTP"),
    (
        "reconcile/emulator/store.py",
        "from reconcile.desired import validation",
        "reconcile.desired.validation",
        "The emulator is a separate",
    ),
    (
        "reconcile/apply/issue.py",
        "from reconcile.secrets import vault",
        "reconcile.secrets.vault",
        "Only the sinks read a secret",
    ),
    (
        "reconcile/secrets/sinks.py",
        "from reconcile.apply import journal",
        "reconcile.apply.journal",
        "Stages are layered",
    ),
]


@pytest.mark.slow
def test_every_crossing_import_breaks_its_contract(tmp_path: Path) -> None:
    """All the crossings in one copy of the package and one run of import-linter (11 runs took 6.6 s
    of CPU): each is named, by its own line, in the report of the contract it breaks."""
    shutil.copytree(PACKAGE, tmp_path / "reconcile", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    # After the module docstring and `from __future__`, where an import may legally stand.
    anchor = "from __future__ import annotations\n"
    for module, line, _, _ in CROSSINGS:
        target = tmp_path / module
        source = target.read_text(encoding="utf-8")
        assert anchor in source
        target.write_text(source.replace(anchor, anchor + line + "\n", 1), encoding="utf-8")
    result = _run_contracts(tmp_path)
    assert result.returncode != 0
    report = result.stdout.split("Broken contracts\n", 1)[1]
    # A contract's section: from its title (then a line of dashes) to the next title.
    titles = [match.start() for match in re.finditer(r"^\S.*\n(?:.*\n)??-{20,}\n", report, flags=re.MULTILINE)]
    sections = [report[start:end] for start, end in zip(titles, [*titles[1:], len(report)], strict=True)]
    for module, line, imported, contract in CROSSINGS:
        number = (tmp_path / module).read_text(encoding="utf-8").splitlines().index(line) + 1
        edge = f"{module.removesuffix('.py').replace('/', '.')} -> {imported} (l.{number})"
        assert any(section.startswith(contract) and edge in section for section in sections), (edge, contract)


def test_no_function_is_longer_than_80_lines() -> None:
    long = []
    generated = PACKAGE / "schemas" / "compiled"
    for path in PACKAGE.rglob("*.py"):
        if path.parent == generated:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > 80:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    assert not long, long


def test_no_http_client_is_made_that_loads_the_ca_bundle_again() -> None:
    """Every httpx client gets the process's one TLS context (`tls_context`): one made without it
    loads the CA bundle again, 50 ms of CPU, which once cost the suite 70 s. httpx's one-request
    functions make such a client each time."""
    made = re.compile(r"\bhttpx\.(?:post|get|put|patch|delete|head|options|request|stream|Client|AsyncClient)\(")
    allowed = {PACKAGE / "client" / "descope.py", ROOT / "tests" / "support" / "http.py"}
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in (PACKAGE, ROOT / "tests", ROOT / "bench")
        for path in sorted(folder.rglob("*.py"))
        if path not in allowed
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if made.search(line)
    ]
    assert not found, f"use tests.support.http (tests) or pass verify=tls_context(): {found}"
