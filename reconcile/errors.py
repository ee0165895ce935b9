"""One exception hierarchy; the CLI maps each class to a documented exit code."""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum


class ExitCode(IntEnum):
    """Every exit code the tool gives, each with its meaning: the one text of it, from which `--help`
    and docs/commands.md are made (`python -m reconcile.reference --write`)."""

    meaning: str

    def __new__(cls, code: int, meaning: str) -> ExitCode:
        member = int.__new__(cls, code)
        member._value_ = code
        member.meaning = meaning
        return member

    OK = (
        0,
        "valid (`validate`); in sync (`plan`); every change made (`apply`, `rotate`); done (`export`; `audit`, even "
        "with drift, unless `--fail-on-drift`)",
    )
    FAILURE = (
        1,
        "an error: invalid desired files or config, an output path that cannot be written, an API or "
        "network failure, a refused saved plan, another apply holding the project's lock, a run "
        "interrupted by `SIGINT` or `SIGTERM`, an `export` of values the desired format refuses; a policy "
        "violation: `validate` or `audit --fail-on` finding one no waiver covers, `apply` refusing a change "
        "that would introduce an error-level one (before any write); or a key "
        "`failed`, `missing`, `ambiguous` (a name several keys have), not editable, in conflict, `interrupted`, "
        "`stale`, `unconfirmed` or `undelivered` (its new secret did not reach every sink); apply also while "
        "its journal shows a secret an earlier run issued and never delivered",
    )
    CHANGES_PENDING = (
        2,
        "`plan` found changes to make (drift); `audit --fail-on-drift` found a managed key that differs or a "
        "desired key missing from the project",
    )
    SAFETY_THRESHOLD = (
        3,
        "`apply` refused before any write: the plan changes more keys than `--max-changes` allows (and no `--force`)",
    )
    OVERWRITTEN = (
        4,
        "`apply` made every change, but overwrote a change someone else made between its read of a key and "
        "its write (the audit trail says who and when); 1 when a key also failed",
    )
    # EX_USAGE: argparse's own 2 would collide with CHANGES_PENDING.
    USAGE = (
        64,
        "usage error: a bad command line, PATHs with `--config` or `--target`, an unknown target, several "
        "targets and a file option without `{target}`; `apply` or `rotate` with secrets to issue but no sink "
        "(`--secrets-out`, `--secrets-command`) or no journal (`--report` or `--journal`): refused before any write",
    )
    # 128 + the signal's number (reconcile/job/session.py): the shell's convention for a death by signal.
    SECOND_SIGINT = (
        130,
        "a second `SIGINT` stopped the run at once, before its report (the journal holds every finished key)",
    )
    SECOND_SIGTERM = (
        143,
        "a second `SIGTERM` stopped the run at once, before its report (the journal holds every finished key)",
    )


# Several targets, one exit code: the most severe of theirs, in this order. A usage error means no
# target ran as asked; a failure needs a person; so does someone's change that was overwritten (it is
# lost, though everything applied); a refusal wrote nothing on purpose; drift is news.
SEVERITY = (
    ExitCode.USAGE,
    ExitCode.FAILURE,
    ExitCode.OVERWRITTEN,
    ExitCode.SAFETY_THRESHOLD,
    ExitCode.CHANGES_PENDING,
    ExitCode.OK,
)


def most_severe(codes: Iterable[int]) -> int:
    """The exit code of several targets' runs (a code outside SEVERITY ranks as a failure)."""

    def rank(code: int) -> int:
        return SEVERITY.index(code) if code in SEVERITY else SEVERITY.index(ExitCode.FAILURE)

    return min(codes, key=rank, default=ExitCode.OK)


class ReconcileError(Exception):
    """Base of every error the tool reports to its user (never as a traceback)."""

    exit_code: ExitCode = ExitCode.FAILURE


class UsageError(ReconcileError):
    exit_code = ExitCode.USAGE


class ConfigError(ReconcileError):
    """Missing credentials, an unsafe base URL, an unreadable input path."""


class ValidationFailed(ReconcileError):
    """The desired state has errors; the diagnostics were already printed."""

    def __init__(self, count: int) -> None:
        super().__init__(f"{count} validation error{'s' if count != 1 else ''}; nothing was sent")
        self.count = count


class SafetyThresholdExceeded(ReconcileError):
    exit_code = ExitCode.SAFETY_THRESHOLD


class PolicyRefused(ReconcileError):
    """apply refused: a change would introduce an error-level policy violation that no waiver covers."""


class ApiError(ReconcileError):
    """An HTTP answer from the Descope API that is not a success."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message
        self.retry_after = retry_after


class AuthenticationError(ApiError):
    """401/403: the credentials are wrong or lack rights. Stops the whole run."""


class NotFoundError(ApiError):
    pass


class RateLimitedError(ApiError):
    pass


class ServerError(ApiError):
    pass


class TransportError(ReconcileError):
    """No usable HTTP answer: connection refused or reset, timeout, malformed response."""

    def __init__(self, message: str, *, ambiguous: bool) -> None:
        super().__init__(message)
        # True when the request may have reached the server (a read timeout, a dropped response).
        self.ambiguous = ambiguous


class ProtocolError(ReconcileError):
    """The API answered, but not in its documented shape (a success without `keys`, a body that is not
    JSON, an answer over the size cap). Never retried: asking again gets the same answer."""


class TlsError(ReconcileError):
    """The server's certificate is not trusted, or the handshake failed. Never retried."""


class Interrupted(ReconcileError):
    """SIGINT/SIGTERM during apply; the report is still written."""
