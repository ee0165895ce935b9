"""The top of the command line, light enough for `--version` and `--help`: the parser class, the
commands with their one-line summaries, and the epilog every `--help` ends with. A command's own
module (its options, its use case and their imports) is imported only for a command line naming it."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from reconcile.errors import ExitCode
from reconcile.reference import SEVERITY_ORDER, environment_help, exit_codes_help

# The modules of reconcile.cli, in `--help` order, each with its summary: the top-level `--help`
# lists the commands from here, without importing them.
COMMANDS = {
    "validate": "check the desired files offline (no credentials, no network)",
    "plan": "show what apply would change (read-only); exit 2 when there are changes",
    "apply": "make every planned change: updates, creates, prunes; none for keys in sync",
    "rotate": "rotate the named keys: a new secret each, to the sinks; the old ones stop working",
    "export": "write every key of the project as a desired file (bootstrap)",
    "audit": "read-only audit of the whole project, in Markdown and JSON",
    "doctor": "check this tool's assumptions about the API against the project (read-only)",
}
EPILOG = f"""\
exit codes:
{exit_codes_help()}

targets:
  Without PATHs, a command acts on every target of descope-reconcile.yaml (in the current folder,
  or --config FILE); --target NAME (repeatable) picks some. Targets run concurrently, each with
  its own credentials, limiter, report and journal: with several, give file options a {{target}}
  pattern (--report reports/{{target}}.json). The exit code is the most severe of the targets':
  {SEVERITY_ORDER}. With PATHs (or --no-config), the environment names the project.

environment:
{environment_help()}

examples:
  descope-reconcile validate desired/
  descope-reconcile plan desired/ --report report.json --out plan.json   # exit 2: drift
  descope-reconcile apply --plan plan.json --report report.json          # exactly the reviewed plan
  descope-reconcile apply desired/ --report report.json
  descope-reconcile apply desired/ --report report.json --secrets-out secrets.jsonl   # creates keys
  descope-reconcile rotate --ids K2abc --secrets-command 'gh secret set CI_KEY' --report rotate.json
  descope-reconcile export --out desired/keys.yaml
  descope-reconcile audit desired/ --summary audit.md --out audit.json
  descope-reconcile apply --target prod --report reports/{{target}}.json  # with descope-reconcile.yaml
"""


class Parser(argparse.ArgumentParser):
    """Usage errors exit 64 (EX_USAGE), as the exit-code table says, not argparse's 2 (which means drift here)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(ExitCode.USAGE, f"{self.prog}: error: {message}\n")
