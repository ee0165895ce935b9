"""The README is for a newcomer and short; the reference is in docs/, and every link between them holds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.cli import cli_env, run_cli

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "ARCHITECTURE.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_the_readme_opens_with_what_it_is_then_the_two_commands_and_stays_short() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = readme.splitlines()
    assert len(lines) <= 300, len(lines)
    first_block = readme[readme.index("```\n") : readme.index("```\n", readme.index("```\n") + 4)]
    assert readme.index("```\n") < readme.index("\n## "), "the commands come before any section"
    assert "make demo" in first_block and "make test" in first_block
    assert "access keys" in lines[2], "the first sentence says what it is"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {_slug(match) for match in re.findall(r"^#+ (.+)$", text, flags=re.M)}


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_every_relative_link_reaches_a_file_and_heading(page: Path) -> None:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: {target}"
        if anchor:
            assert anchor in _anchors(linked), f"{page.name}: {target}: no such heading in {linked.name}"


def test_the_readme_desired_file_is_valid(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("```yaml\n# yaml-language-server") + len("```yaml\n")
    (tmp_path / "keys.yaml").write_text(readme[start : readme.index("```", start)], encoding="utf-8")
    assert run_cli(["validate", "-q", str(tmp_path)], cli_env(None)).code == 0


def test_every_docs_page_is_in_the_readme_index() -> None:
    """A page nobody can find from the README is not documentation: add a row to its docs index."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    index = readme[readme.index("## Documentation") :]
    unlisted = [p.name for p in sorted((ROOT / "docs").glob("*.md")) if f"](docs/{p.name})" not in index]
    assert not unlisted, f"not in the README's docs index: {unlisted}"


def test_the_changelog_keeps_one_section_of_each_kind_per_release() -> None:
    """Keep a Changelog: `## [Unreleased]` first; per release each kind of change once, in its order
    (several engineers append to Unreleased at once, and a second "### Fixed" creeps in)."""
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    releases = re.split(r"^## ", text, flags=re.M)[1:]
    assert releases[0].startswith("[Unreleased]")
    order = ["Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"]
    for release in releases:
        kinds = re.findall(r"^### (.+)$", release, flags=re.M)
        assert kinds == sorted(set(kinds), key=order.index), f"{release.splitlines()[0]}: {kinds}"
