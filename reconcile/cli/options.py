"""What every command shares on its command line: value checks, option groups, help text (the parser class
and the epilog: `parser.py`)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconcile.cli.parser import COMMANDS, EPILOG, Parser
from reconcile.desired.loader import DEFAULT_MAX_FILE_BYTES
from reconcile.job.options import Changes, Outputs, PolicyChoice, Remote
from reconcile.plan.limit import DEFAULT_MAX_CHANGES_SHARE, DEFAULT_THRESHOLD_MIN_KEYS, ChangeLimit

if TYPE_CHECKING:  # not for validate, which runs on every commit
    from reconcile.job.trail import TrailSettings

Converter = Callable[[str], Any]

# Descope publishes 1000 requests per 10 s for backend (SDK) traffic: 100/s never exceeds it,
# and the limiter slows down by itself where a project's limit is lower.
DEFAULT_RATE = 100.0
DEFAULT_TIMEOUT_SECONDS = 30.0  # per request; the client itself has no default, the command line decides
DEFAULT_MAX_ATTEMPTS = 6
DEFAULT_KEY_DEADLINE = 300.0
DEFAULT_CONCURRENCY = 8
DEFAULT_ATTRIBUTION_PAGES = 5  # audit searches per step; Descope allows 10 a minute
PATHS_HELP = "desired-state YAML files or folders (recursive); none: the targets of descope-reconcile.yaml"


def _checked(convert: type[float] | type[int], minimum: float, what: str) -> Converter:
    def parse(text: str) -> float | int:
        value = convert(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    return parse


positive_float = _checked(float, 1e-9, "positive")
non_negative_float = _checked(float, 0, "0 or more")
positive_int = _checked(int, 1, "at least 1")
non_negative_int = _checked(int, 0, "0 or more")


def parsed(parse: Converter) -> Converter:
    """A parser's ValueError as argparse's usage error (exit 64)."""

    def wrapper(text: str) -> object:
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return wrapper


def max_changes_option(parser: argparse.ArgumentParser, what: str) -> None:
    """`--max-changes`, the same rule for `plan` (which warns) and `apply` (which refuses)."""
    parser.add_argument(
        "--max-changes",
        type=parsed(ChangeLimit.parse),
        metavar="N|P%",
        help=f"{what}; default {DEFAULT_MAX_CHANGES_SHARE * 100:.0f}%% of the managed keys when more than "
        f"{DEFAULT_THRESHOLD_MIN_KEYS} keys are managed",
    )


def desired_options() -> Parser:
    """For commands that read desired files."""
    group = Parser(add_help=False)
    group.add_argument(
        "--max-file-size",
        type=positive_int,
        default=DEFAULT_MAX_FILE_BYTES,
        metavar="BYTES",
        help=f"refuse desired files larger than this (default {DEFAULT_MAX_FILE_BYTES:,})",
    )
    return group


def remote_options() -> Parser:
    """For commands that call the Management API."""
    group = Parser(add_help=False)
    group.add_argument(
        "--timeout",
        type=positive_float,
        default=DEFAULT_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help=f"per-request timeout (default {DEFAULT_TIMEOUT_SECONDS:g})",
    )
    group.add_argument(
        "--rate",
        type=positive_float,
        default=DEFAULT_RATE,
        metavar="PER_SECOND",
        help=f"request rate ceiling; lowered automatically when throttled (default {DEFAULT_RATE:g}: "
        "Descope's published 1000 requests / 10 s)",
    )
    group.add_argument(
        "--max-attempts",
        type=positive_int,
        default=DEFAULT_MAX_ATTEMPTS,
        help="failed attempts per request before giving up, first included; 429s do not count "
        f"(default {DEFAULT_MAX_ATTEMPTS})",
    )
    group.add_argument(
        "--key-deadline",
        type=positive_float,
        default=DEFAULT_KEY_DEADLINE,
        metavar="SECONDS",
        help=f"give up on a key this long after its first attempt (default {DEFAULT_KEY_DEADLINE:g})",
    )
    return group


def remote(args: argparse.Namespace) -> Remote:
    """The options of `remote_options`, typed."""
    return Remote(args.timeout, args.rate, args.max_attempts, args.key_deadline)


def outputs(args: argparse.Namespace) -> Outputs:
    """The options of `report_options`, typed."""
    return Outputs(args.report, args.summary)


def changes(args: argparse.Namespace) -> Changes:
    """The options of `execution_options` and `secrets_options`, typed (-q: no progress lines)."""
    progress = None if args.quiet else args.progress_every
    return Changes(
        args.concurrency,
        args.journal,
        progress,
        args.secrets_out,
        args.secrets_command,
        tuple(args.secrets_command_env or ()),
    )


def id_list(text: str | None) -> tuple[str, ...]:
    """`--ids A, B,A` → (A, B): each once, in order, blanks dropped."""
    return tuple(dict.fromkeys(part.strip() for part in (text or "").split(",") if part.strip()))


def _actions(text: str) -> tuple[str, ...]:
    actions = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not actions:
        raise ValueError("give at least one audit action, e.g. AccessKeyModified")
    return actions


def trail(args: argparse.Namespace, *, event: bool = False) -> TrailSettings:
    """What the run asks of the audit trail (`trail_options`, and apply's event options)."""
    from reconcile.job.trail import TrailSettings  # noqa: PLC0415 (as in trail_options)

    settings = (args.attribution, args.attribution_pages, args.attribution_actions)
    return TrailSettings(*settings, event, args.audit_tenant)


def trail_options() -> Parser:
    """For commands that say who last changed a drifted key (plan, apply, audit)."""
    from reconcile.trail.records import KEY_ACTIONS  # noqa: PLC0415 (not for validate, which runs on every commit)

    group = Parser(add_help=False)
    group.add_argument(
        "--audit-tenant",
        metavar="TENANT",
        help="tenantId of apply's audit event (Descope's SDKs require one; config: auditTenant); unset: a tenant "
        "of the changed keys, else no event, and a change no event claims may be this tool's own",
    )
    group.add_argument(
        "--no-attribution",
        dest="attribution",
        action="store_false",
        help="do not search the audit trail: no 'who changed what' (and, for apply, no overwritten check)",
    )
    group.add_argument(
        "--attribution-pages",
        type=positive_int,
        default=DEFAULT_ATTRIBUTION_PAGES,
        metavar="N",
        help="audit searches (1,000 records each) per lookup at most; Descope allows 10 a minute "
        f"(default {DEFAULT_ATTRIBUTION_PAGES})",
    )
    group.add_argument(
        "--attribution-actions",
        type=parsed(_actions),
        default=KEY_ACTIONS,
        metavar="ACTION,...",
        help=f"the audit actions that change a key (default {','.join(KEY_ACTIONS)})",
    )
    return group


def targets_options() -> Parser:
    """For commands that act on the targets of a config file when no PATH is given."""
    group = Parser(add_help=False)
    group.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="the targets' config (default: descope-reconcile.yaml in the current folder, when there is one)",
    )
    group.add_argument(
        "--no-config",
        action="store_true",
        help="do not use descope-reconcile.yaml: the environment names the project (as with PATHs)",
    )
    group.add_argument(
        "--target",
        dest="targets",
        action="append",
        metavar="NAME",
        help="act on this target of the config only (repeatable; default: every target)",
    )
    return group


def audit_event_options() -> Parser:
    """For apply: the event it writes into the project's audit trail."""
    from reconcile.trail.records import EVENT_ACTION, EVENT_ACTOR  # noqa: PLC0415 (as in trail_options)

    group = Parser(add_help=False)
    group.add_argument(
        "--no-audit-event",
        dest="audit_event",
        action="store_false",
        help=f"do not record the apply in the project's audit trail (action {EVENT_ACTION}, actorId {EVENT_ACTOR})",
    )
    return group


def report_options() -> Parser:
    """For commands that write the JSON report and the Markdown summary."""
    group = Parser(add_help=False)
    group.add_argument(
        "--report",
        type=Path,
        metavar="FILE",
        help="write the JSON report here (mode 0600); several targets: a {target} pattern, reports/{target}.json",
    )
    group.add_argument(
        "--summary",
        type=Path,
        metavar="FILE",
        help="write a Markdown summary here (default: $GITHUB_STEP_SUMMARY when set)",
    )
    return group


def execution_options() -> Parser:
    """For commands that change keys (apply, rotate)."""
    group = Parser(add_help=False)
    group.add_argument(
        "--concurrency",
        type=positive_int,
        default=DEFAULT_CONCURRENCY,
        help=f"changes in flight at once (default {DEFAULT_CONCURRENCY})",
    )
    group.add_argument("--journal", type=Path, metavar="FILE", help="JSON Lines journal (default: beside --report)")
    group.add_argument(
        "--progress-every",
        type=positive_float,
        default=0.0,
        metavar="SECONDS",
        help="progress on stderr this often (default: a live line on a terminal, else a log line every 5 s)",
    )
    return group


def secrets_options() -> Parser:
    """Where the secrets of created and rotated keys go: nowhere else, and the run refuses without one."""
    group = Parser(add_help=False)
    group.add_argument(
        "--secrets-out",
        type=Path,
        metavar="FILE",
        help="append each new secret to FILE as a JSON line (id, name, cleartext, at, runId); created 0600, "
        "never truncated, fsynced per secret",
    )
    group.add_argument(
        "--secrets-command",
        metavar="CMD",
        help="run the shell command CMD once per new secret: the secret on its stdin only (delivered when it "
        "read all of it and exited 0), KEY_ID and KEY_NAME in its environment (e.g. 'gh secret set "
        "DESCOPE_CI_KEY'); give both options for both sinks",
    )
    group.add_argument(
        "--secrets-command-env",
        action="append",
        type=environment_name,
        metavar="NAME",
        help="hand the environment variable NAME to --secrets-command (repeatable; e.g. GH_TOKEN): it gets only "
        "PATH, HOME, TMPDIR, the locale and KEY_* otherwise, and never a management key",
    )
    return group


def environment_name(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not an environment variable's name")
    return text


def add_command(subcommands: argparse._SubParsersAction[Parser], name: str, parents: list[Parser], text: str) -> Parser:
    """A command's parser: its summary from `COMMANDS` (the top-level `--help` lists it from there)."""
    sub = subcommands.add_parser(
        name,
        parents=parents,
        help=COMMANDS[name],
        description=text,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub.add_argument("-v", "--verbose", action="count", default=0, help="more detail on stderr (-vv: debug)")
    sub.add_argument("-q", "--quiet", action="store_true", help="only errors on stderr, nothing on stdout")
    return sub


def add_policy_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--policy",
        type=Path,
        metavar="FILE",
        help="the rules keys must follow (docs/policy.md), for runs without a config; with one, its `policy:`",
    )


def policy_choice(args: argparse.Namespace) -> PolicyChoice:
    """`--policy FILE`, typed (a config target's policy joins it per target)."""
    return PolicyChoice(args.policy)
