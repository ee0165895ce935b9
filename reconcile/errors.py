"""One exception hierarchy; the CLI maps each class to a documented exit code."""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # valid / in sync / everything applied
    FAILURE = 1  # an error, or any key failed, missing, not editable or interrupted
    CHANGES_PENDING = 2  # plan found changes to make
    SAFETY_THRESHOLD = 3  # apply refused: the plan changes more keys than --max-changes allows
    OVERWRITTEN = 4  # apply: every key applied, but a change someone else made meanwhile was overwritten
    USAGE = 64  # bad command line (EX_USAGE); argparse's own 2 would collide with CHANGES_PENDING


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
