"""The exit-code and environment tables, made from their one source in the code (`ExitCode`,
`VARIABLES`): as text for `--help`, and as Markdown in the marked blocks of docs/*.md. The meanings
are written in Markdown (`code` in backticks); `--help` shows them without the backticks.

    python -m reconcile.reference --write   # rewrite the blocks in docs/ (make docs)
    python -m reconcile.reference --check   # exit 1 when a block is stale

`validate` imports this module for its `--help` (the pre-commit hook runs it on every commit):
keep it to the standard library's light modules.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from reconcile.environment import VARIABLES
from reconcile.errors import SEVERITY, ExitCode

HELP_WIDTH = 100
SEVERITY_ORDER = ", then ".join(str(int(code)) for code in SEVERITY)


def _wrap(text: str, width: int) -> list[str]:
    """Words into lines of at most `width` (a longer word gets a line of its own). Not textwrap: the
    pre-commit hook's `validate` would pay for importing it."""
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def _help_rows(rows: Sequence[tuple[str, str]], column: int) -> str:
    """Two columns, the second wrapped under itself; a label too long for the first gets a line of its own."""
    lines: list[str] = []
    indent = " " * (2 + column)
    for label, meaning in rows:
        wrapped = _wrap(meaning.replace("`", ""), HELP_WIDTH - len(indent))
        if len(label) < column:
            lines.append(f"  {label:<{column}}{wrapped[0]}")
        else:
            lines += [f"  {label}", indent + wrapped[0]]
        lines += [indent + line for line in wrapped[1:]]
    return "\n".join(lines)


def exit_codes_help() -> str:
    return _help_rows([(str(int(code)), code.meaning) for code in ExitCode], 5)


def environment_help() -> str:
    return _help_rows([(variable.label, variable.meaning) for variable in VARIABLES], 30)


def _cell(text: str) -> str:
    return text.replace("|", r"\|")


def exit_codes_markdown() -> str:
    rows = "\n".join(f"| {int(code)} | {_cell(code.meaning)} |" for code in ExitCode)
    return (
        f"| code | meaning |\n|---|---|\n{rows}\n\n"
        f"With several targets, the exit code is the most severe of theirs: {SEVERITY_ORDER}."
    )


def environment_markdown() -> str:
    rows = "\n".join(
        f"| {', '.join(f'`{name}`' for name in variable.names)} | {_cell(variable.meaning)}"
        f"{' (read by httpx)' if variable.by_httpx else ''} |"
        for variable in VARIABLES
    )
    return f"| variable | meaning |\n|---|---|\n{rows}"


BLOCKS: Mapping[str, Callable[[], str]] = {"exit-codes": exit_codes_markdown, "environment": environment_markdown}


def _block(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- generated: {re.escape(name)} [^\n]*-->\n)(.*?)(<!-- end: {re.escape(name)} -->)", re.S)


def replace_block(text: str, name: str, content: str) -> str:
    """`text` with the block marked `name` holding `content`. The markers:
    `<!-- generated: NAME (by ...) -->` and `<!-- end: NAME -->`, each on a line of its own."""
    pattern = _block(name)
    if not pattern.search(text):
        raise ValueError(f"no block `{name}` (<!-- generated: {name} ... --> ... <!-- end: {name} -->)")
    return pattern.sub(lambda match: f"{match.group(1)}{content}\n{match.group(3)}", text, count=1)


def refreshed(text: str) -> str:
    """`text` with every generated block it holds made current."""
    for name, render in BLOCKS.items():
        if _block(name).search(text):
            text = replace_block(text, name, render())
    return text


def stale_pages(folder: Path) -> list[Path]:
    pages = sorted(folder.glob("*.md"))
    return [page for page in pages if refreshed(text := page.read_text(encoding="utf-8")) != text]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reconcile.reference", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="rewrite the stale blocks")
    mode.add_argument("--check", action="store_true", help="exit 1 when a block is stale")
    parser.add_argument("--docs", type=Path, default=Path("docs"), help="the folder of pages (default: docs/)")
    args = parser.parse_args(argv)
    stale = stale_pages(args.docs)
    for page in stale:
        if args.write:
            page.write_text(refreshed(page.read_text(encoding="utf-8")), encoding="utf-8")
        print(f"{'rewrote' if args.write else 'stale'}: {page}", file=sys.stderr)
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
