"""`descope-reconcile doctor`: check every assumption about the API against the project, read-only."""

from __future__ import annotations

import argparse
import json
import os

from reconcile.cli.common import load, show
from reconcile.cli.options import Parser, add_command, desired_options, remote_options, targets_options
from reconcile.cli.remote import credentials_for
from reconcile.errors import ExitCode
from reconcile.job.doctor import DoctorOptions, Result, Status, run
from reconcile.output.escape import text_line

_MARKS = {Status.PASS: "ok  ", Status.WARN: "warn", Status.FAIL: "FAIL", Status.UNKNOWN: "?   "}


def register(subcommands: argparse._SubParsersAction[Parser]) -> None:
    parser = add_command(
        subcommands,
        "doctor",
        [desired_options(), remote_options(), targets_options()],
        "check this tool's assumptions about the API against the project (read-only)",
        "Base URL and region, TLS, credentials, the rate-limit tier, permission to search keys and the "
        "audit trail, the shape of a recent access-key record, whether the apply event can be written, "
        "the desired files' custom attributes against the project's declarations, clock skew, and what "
        "stays unknown without a write. Changes nothing. Exit 0 when every check a plan or apply needs passes.",
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="desired files or folders whose attributes to check")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format (default text)")
    parser.add_argument("--audit-tenant", metavar="TENANT", help="the apply event's tenant (config: auditTenant)")
    parser.set_defaults(handler=handle)


def render(result: Result) -> str:
    lines = [f"descope-reconcile doctor: project {result.project_id} at {result.base_url}"]
    for check in result.checks:
        needed = " (needed)" if check.needed else ""
        lines.append(text_line(f"  {_MARKS[check.status]} {check.name}{needed}: {check.detail}"))
    verdict = "every check a plan or apply needs passes" if result.ok else "a check a plan or apply needs fails"
    return "\n".join([*lines, f"Doctor: {verdict}."]) + "\n"


async def handle(args: argparse.Namespace) -> int:
    desired = load(args).state if args.paths else None
    credentials, base_url = credentials_for(args)
    config = getattr(args, "target_config", None)
    overridden = (
        bool(config.base_url)
        if config
        else bool(os.environ.get("DESCOPE_BASE_URL") or os.environ.get("DESCOPE_BASE_URI"))
    )
    options = DoctorOptions(
        credentials=credentials,
        base_url=base_url,
        base_url_overridden=overridden,
        desired=desired,
        audit_tenant=args.audit_tenant,
        rate=args.rate,
        timeout=args.timeout,
    )
    result = await run(options)
    show(args, json.dumps(result.as_json(), indent=2) + "\n" if args.format == "json" else render(result))
    return ExitCode.OK if result.ok else ExitCode.FAILURE
