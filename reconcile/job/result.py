"""What a use case hands back to the command line: its exit code, the report, the text and Markdown
to show, the problems found in the files, and what ended the run early. Light: `validate` imports it
on every commit."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reconcile.desired.loader import Diagnostic
from reconcile.errors import ExitCode, ReconcileError
from reconcile.job.clock import RunClock

if TYPE_CHECKING:  # only when a policy was checked
    from reconcile.policy.findings import Finding
    from reconcile.policy.policy import Policy

Message = tuple[int, str]  # a logging level and a line, said once the outputs are written


@dataclass(frozen=True)
class Result:
    """One run's outcome; the command line writes and shows it (or, for a target, combines it)."""

    code: int
    report: Mapping[str, Any] | None = None  # the JSON report (--report)
    text: str = ""  # for people on stdout
    markdown: str | None = None  # the summary (--summary, $GITHUB_STEP_SUMMARY)
    diagnostics: tuple[Diagnostic, ...] = ()  # problems in the files, each located
    findings: tuple[Finding, ...] | None = None  # validate: the policy's findings (None: no policy checked)
    policy: Policy | None = None  # the policy that found them (its rules, for SARIF)
    messages: tuple[Message, ...] = ()  # the last lines on stderr: they say how the run ends
    error: ReconcileError | OSError | None = None  # what ended the run; it decides the exit code
    clock: RunClock | None = None  # the run's phases (the outputs' writing is one more)


@dataclass
class Output:
    """What a use case has to show so far: whatever ends the run, it is still shown."""

    text: list[str] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)

    def show(self, text: str) -> None:
        self.text.append(text)

    def say(self, level: int, line: str) -> None:
        self.messages.append((level, line))

    def error_lines(self, lines: list[str], shown: int = 20) -> None:
        """Why keys failed, whatever the verbosity (-q silences stdout, never the reasons)."""
        for line in lines[:shown]:
            self.say(logging.ERROR, f"error: {line}")
        if len(lines) > shown:
            self.say(logging.ERROR, f"error: and {len(lines) - shown} more (the report lists every key)")

    def result(self, code: int, **more: Any) -> Result:
        return Result(
            code,
            text="".join(self.text),
            diagnostics=tuple(self.diagnostics),
            messages=tuple(self.messages),
            **more,
        )

    def failed(self, error: ReconcileError | OSError) -> Result:
        code = error.exit_code if isinstance(error, ReconcileError) else ExitCode.FAILURE
        return self.result(code, error=error)


def settled(body: Callable[[Output], Result]) -> Result:
    """Run `body`; an error that ends it becomes the Result's error, shown after what was shown before."""
    output = Output()
    try:
        return body(output)
    except (ReconcileError, OSError) as error:
        return output.failed(error)


async def settled_async(body: Callable[[Output], Awaitable[Result]]) -> Result:
    output = Output()
    try:
        return await body(output)
    except (ReconcileError, OSError) as error:
        return output.failed(error)
