"""`descope-reconcile audit`: a read-only audit of the whole project, in Markdown and JSON."""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path

from reconcile.cli.common import check_outputs, desired_inputs, load, show, write_markdown
from reconcile.cli.options import (
    PATHS_HELP,
    Parser,
    add_command,
    add_policy_option,
    desired_options,
    non_negative_int,
    parsed,
    policy_wanted,
    remote_options,
    targets_options,
    trail_options,
)
from reconcile.cli.policy import audit_policy, configured, fail_on
from reconcile.cli.remote import connect, trail_settings
from reconcile.errors import ExitCode, UsageError
from reconcile.files import write_private_atomically
from reconcile.job.clock import RunClock, bulk
from reconcile.job.session import fetch_keys
from reconcile.job.trail import attribute_plan
from reconcile.model import DesiredState
from reconcile.output.audit import build_audit, render_audit
from reconcile.output.escape import json_document
from reconcile.plan.diff import compute_plan


def register(subcommands: argparse._SubParsersAction[Parser]) -> None:
    parser = add_command(
        subcommands,
        "audit",
        [desired_options(), remote_options(), targets_options(), trail_options()],
        "read-only audit of the whole project, in Markdown and JSON",
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
    parser.set_defaults(handler=run)


async def run(args: argparse.Namespace) -> int:
    clock = RunClock("audit")
    with bulk():
        loaded = load(args) if args.paths else None
        desired = loaded.state if loaded else DesiredState(keys=())
        policy = configured(args) if policy_wanted(args) else None
        if policy is None and (args.fail_on or args.sarif):
            # Fail closed: a scheduled `audit --fail-on error` whose policy went missing must not pass.
            raise UsageError(
                "--fail-on and --sarif need a policy (--policy FILE, or the config's `policy:` for this target): "
                "without one nothing is checked"
            )
        check_outputs(args, "--out", "--summary", "--sarif", inputs=desired_inputs(loaded))
        async with connect(args) as (session, target):
            observed = await fetch_keys(session)
            result = compute_plan(desired, observed)
            trail = await attribute_plan(session, result, trail_settings(args))
    within = timedelta(days=args.expiring_within)
    findings = build_audit(result, observed, now=clock.started, expiring_within=within, trail=trail)
    markdown = render_audit(findings, project_id=target.project_id)
    violations = audit_policy(args, policy, findings, observed, desired=desired, now=clock.started)
    markdown += violations.markdown
    show(args, markdown)
    if args.out:
        write_private_atomically(args.out, json_document(findings))
    write_markdown(args.summary, markdown)
    drifted = findings["drift"] or findings["missing"]  # a desired key the project lacks is drift too
    if violations.failing:
        return ExitCode.FAILURE
    return ExitCode.CHANGES_PENDING if args.fail_on_drift and drifted else ExitCode.OK
