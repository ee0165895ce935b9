"""`descope-reconcile audit`: a read-only audit of the whole project, in Markdown and JSON."""

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
    non_negative_int,
    parsed,
    policy_choice,
    remote,
    remote_options,
    targets_options,
    trail,
    trail_options,
)
from reconcile.cli.parser import Parser
from reconcile.cli.policy import fail_on
from reconcile.job.options import Outputs

if TYPE_CHECKING:
    from reconcile.job.audit import AuditOptions


def register(subcommands: argparse._SubParsersAction[Parser]) -> None:
    parser = add_command(
        subcommands,
        "audit",
        [desired_options(), remote_options(), targets_options(), trail_options()],
        "Managed and unmanaged keys, drift, inactive keys, keys expiring soon, keys with no IP "
        "restriction, keys with neither roles nor tenants; who last changed each drifted or missing key (the "
        "audit trail). Exit 0 even with drift, unless --fail-on-drift.",
    )
    parser.add_argument(
        "paths", nargs="*", metavar="PATH", help=PATHS_HELP + " (or, without a config, every key is unmanaged)"
    )
    parser.add_argument("--out", type=Path, metavar="FILE", help="write the audit as JSON (mode 0600)")
    parser.add_argument(
        "--summary", type=Path, metavar="FILE", help="write it as Markdown (default: $GITHUB_STEP_SUMMARY when set)"
    )
    parser.add_argument("--expiring-within", type=non_negative_int, default=30, metavar="DAYS", help="default 30 days")
    parser.add_argument(
        "--fail-on-drift",
        action="store_true",
        help="exit 2 when any managed key drifted or a desired key is missing from the project",
    )
    add_policy_option(parser)
    parser.add_argument(
        "--sarif",
        type=Path,
        metavar="FILE",
        help="write the policy's findings as SARIF 2.1.0 (needs a policy; an unmanaged key has no file location, "
        "so upload it as an artifact rather than to code scanning)",
    )
    parser.add_argument(
        "--fail-on",
        type=parsed(fail_on),
        default=(),
        metavar="SEVERITIES",
        help="exit 1 when the policy finds a violation of these severities no waiver covers: error, warning, "
        "error,warning, or none (default: report only); needs a policy",
    )
    parser.add_argument(
        "--journal",
        type=Path,
        metavar="FILE",
        help="the journal of earlier rotations (rotate --journal): a key's secret is as old as its last rotation",
    )
    parser.set_defaults(invocation=parse)


def parse(args: argparse.Namespace) -> Invocation[AuditOptions]:
    from reconcile.job import audit  # noqa: PLC0415 (`audit --help` needs no network stack)
    from reconcile.job.audit import AuditOptions  # noqa: PLC0415
    from reconcile.job.policing import AuditPolicy  # noqa: PLC0415

    options = AuditOptions(
        tuple(args.paths),
        remote(args),
        trail(args),
        Outputs(summary=args.summary),
        max_file_size=args.max_file_size,
        out=args.out,
        expiring_within=args.expiring_within,
        fail_on_drift=args.fail_on_drift,
        policy=policy_choice(args),
        checks=AuditPolicy(args.sarif, args.fail_on, args.journal),
    )
    return invocation(args, options, audit.run, paths=args.paths)
