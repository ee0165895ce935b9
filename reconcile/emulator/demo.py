"""`make demo`: start the local server with a drifted project, then validate, plan, apply, plan again.

Each step runs the real command line in a subprocess, over HTTP on loopback, exactly as an
operator would against a Descope project.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

from reconcile.emulator import Emulator, EmulatorConfig
from reconcile.emulator.__main__ import load_seed

SEED = Path(__file__).parent / "demo_seed.yaml"


def _run(args: list[str], env: dict[str, str], expected: int) -> None:
    print(f"\n$ descope-reconcile {shlex.join(args)}", flush=True)
    code = subprocess.run([sys.executable, "-m", "reconcile", *args], env=env, check=False).returncode
    print(f"(exit code {code})", flush=True)
    if code != expected:
        raise SystemExit(f"demo: expected exit code {expected}, got {code}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reconcile.emulator.demo", description=__doc__)
    parser.add_argument("desired", nargs="?", default="desired/")
    parser.add_argument("--out", type=Path, default=Path("demo-out"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    seed = load_seed(SEED)
    config = EmulatorConfig()
    with Emulator(config, seed["keys"], tenant_names=seed["tenants"], attributes=seed["attributes"]) as emulator:
        print(f"local Descope-compatible server at {emulator.url} with {len(seed['keys'])} keys")
        env = {
            **os.environ,
            "DESCOPE_PROJECT_ID": config.project_id,
            "DESCOPE_MANAGEMENT_KEY": config.management_key,
            "DESCOPE_BASE_URL": emulator.url,
        }
        _run(["validate", args.desired], env, expected=0)
        _run(["plan", args.desired, "--report", str(args.out / "plan.json")], env, expected=2)
        _run(["apply", args.desired, "--report", str(args.out / "apply.json")], env, expected=0)
        _run(["plan", args.desired, "--report", str(args.out / "after.json")], env, expected=0)
        updates = emulator.counts().get("/v1/mgmt/accesskey/update", {})
    print(f"\nconverged; the server saw {sum(updates.values())} update request(s). Reports in {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
