"""A violation as the outputs show it: the rule, the key, and where the key is written. Pure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from reconcile.policy.rules import ERROR, Violation


@dataclass(frozen=True, order=True)
class Finding:
    file: str  # the desired file that says the key ("" for a key no file names)
    line: int
    column: int
    rule: str
    severity: str
    message: str
    key: str  # the key's id, or its name
    field: str = ""  # where in the file (`keys[1].permittedIps[0]`)
    waived: str = ""  # the reason of the waiver that covers it
    status: str = ""  # plan and apply: introduced, or existing

    @property
    def failing(self) -> bool:
        return self.severity == ERROR and not self.waived

    def record(self) -> dict[str, Any]:
        return {name: value for name, value in asdict(self).items() if value not in ("", None)}


Where = tuple[str, int, int, str]  # file, line, column, field


def finding(violation: Violation, key: str, where: Where = ("", 0, 0, ""), status: str = "") -> Finding:
    file, line, column, field = where
    return Finding(
        file, line, column, violation.rule, violation.severity, violation.message, key, field, violation.waived, status
    )


def counts(findings: Iterable[Finding]) -> dict[str, dict[str, int]]:
    """Per rule: its violations by severity, and how many are waived."""
    table: dict[str, Counter[str]] = {}
    for item in findings:
        row = table.setdefault(item.rule, Counter())
        row["waived" if item.waived else item.severity] += 1
    return {rule: dict(sorted(row.items())) for rule, row in sorted(table.items())}


def failing(findings: Sequence[Finding], severities: Iterable[str] = (ERROR,)) -> list[Finding]:
    """The findings of these severities that no waiver covers."""
    wanted = set(severities)
    return [item for item in findings if item.severity in wanted and not item.waived]
