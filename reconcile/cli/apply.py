"""`descope-reconcile apply`: make every planned change (fresh plan or a reviewed saved plan): updates,
creates (their secrets to the sinks), and prunes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from reconcile.cli.command import Invocation, invocation
from reconcile.cli.options import (
    PATHS_HELP,
    add_command,
    add_policy_option,
    audit_event_options,
    changes,
    desired_options,
    execution_options,
    max_changes_option,
    non_negative_float,
    outputs,
    parsed,
    policy_choice,
    remote,
    remote_options,
    report_options,
    secrets_options,
    targets_options,
    trail,
    trail_options,
)
from reconcile.cli.parser import Parser
from reconcile.plan import saved as savedplan

if TYPE_CHECKING:
    from reconcile.job.apply import ApplyOptions


def register(subcommands: argparse._SubParsersAction[Parser]) -> None:
    parser = add_command(
        subcommands,
        "apply",
        [
            desired_options(),
            remote_options(),
            report_options(),
            targets_options(),
            trail_options(),
            audit_event_options(),
            execution_options(),
            secrets_options(),
        ],
        "Plan (or load a saved plan), then change every key that differs, create the keys named by no project "
        "key (their secrets go to --secrets-out / --secrets-command), prune what the prune scopes say: "
        "rate-limited, retried, journaled. Then look in the audit trail for changes it overwrote, and record "
        "the apply there.",
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help=PATHS_HELP + "; optional with --plan")
    parser.add_argument(
        "--plan",
        type=Path,
        metavar="FILE",
        help="apply this saved plan and nothing else; refused if stale, edited or too old "
        "(with PATHs, also if the desired files changed)",
    )
    parser.add_argument(
        "--max-plan-age",
        type=parsed(savedplan.parse_age),
        default=savedplan.parse_age("24h"),
        metavar="AGE",
        help="refuse a saved plan older than this: 24h (default), 90m, 3600s, 2d",
    )
    max_changes_option(parser, "refuse (exit 3) before any write when more keys would change")
    parser.add_argument("--force", action="store_true", help="apply even over --max-changes")
    parser.add_argument(
        "--recheck",
        action="store_true",
        help="read each key again just before writing it, and skip it (stale, exit 1) if it changed since "
        "the plan's read: one more request per changed key (always on with --plan)",
    )
    parser.add_argument(
        "--allow-recreate",
        action="append",
        default=[],
        metavar="NAME",
        help="create NAME although an earlier run's create of it was lost (its answer never read): only when "
        "you know the server never made that key",
    )
    parser.add_argument(
        "--wait-lock",
        type=non_negative_float,
        default=0.0,
        metavar="SECONDS",
        help="wait this long for another apply on this machine to the same project (default 0: refuse at once)",
    )
    add_policy_option(parser)
    parser.set_defaults(invocation=parse)


def parse(args: argparse.Namespace) -> Invocation[ApplyOptions]:
    from reconcile.job import apply  # noqa: PLC0415 (`apply --help` needs no network stack)
    from reconcile.job.apply import ApplyOptions  # noqa: PLC0415

    options = ApplyOptions(
        tuple(args.paths),
        remote(args),
        trail(args, event=args.audit_event),
        outputs(args),
        changes(args),
        max_file_size=args.max_file_size,
        plan=args.plan,
        max_plan_age=args.max_plan_age,
        max_changes=args.max_changes,
        force=args.force,
        recheck=args.recheck,
        wait_lock=args.wait_lock,
        allow_recreate=tuple(args.allow_recreate),
        verbose=args.verbose > 0,
        policy=policy_choice(args),
    )
    handed = args.secrets_command_env or ()
    return invocation(args, options, apply.run, paths=args.paths, handed_env=handed)
