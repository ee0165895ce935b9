"""`descope-reconcile plan`: what apply would change, read-only; exit 2 when there are changes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from reconcile.cli.command import Invocation, invocation
from reconcile.cli.options import (
    PATHS_HELP,
    add_command,
    add_policy_option,
    desired_options,
    max_changes_option,
    outputs,
    policy_choice,
    remote,
    remote_options,
    report_options,
    targets_options,
    trail,
    trail_options,
)
from reconcile.cli.parser import Parser

if TYPE_CHECKING:
    from reconcile.job.plan import PlanOptions


def register(subcommands: argparse._SubParsersAction[Parser]) -> None:
    parser = add_command(
        subcommands,
        "plan",
        [desired_options(), remote_options(), report_options(), targets_options(), trail_options()],
        "Read the project, compare it with the desired files, print the changes and who last changed "
        "each drifted key (the audit trail). Sends no change.",
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help=PATHS_HELP)
    parser.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="save the plan for `apply --plan FILE` (a plan with keys in error is saved, and apply refuses it)",
    )
    max_changes_option(parser, "warn when apply would refuse this plan (with the same --max-changes)")
    add_policy_option(parser)
    parser.set_defaults(invocation=parse)


def parse(args: argparse.Namespace) -> Invocation[PlanOptions]:
    from reconcile.job import plan  # noqa: PLC0415 (`plan --help` needs no network stack)
    from reconcile.job.plan import PlanOptions  # noqa: PLC0415

    options = PlanOptions(
        tuple(args.paths),
        remote(args),
        trail(args),
        outputs(args),
        max_file_size=args.max_file_size,
        out=args.out,
        max_changes=args.max_changes,
        verbose=args.verbose > 0,
        policy=policy_choice(args),
    )
    return invocation(args, options, plan.run, paths=args.paths)
