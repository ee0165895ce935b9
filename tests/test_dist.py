"""The version and the release artifacts. The version comes from git tags and is written to
reconcile/_version.py at every build, editable installs included. The artifacts are built as
`make dist` builds them (`uv build`: the sdist, then the wheel from the sdist) and checked as
it checks them (twine check --strict). The wheel carries the schemas and its version; installed the
way a consumer repository gets it, by the action's own install step into a fresh virtual
environment, it answers --version and validates desired/ from anywhere.
"""

from __future__ import annotations

import email.parser
import fcntl
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import reconcile
from tests.conftest import REPO, cli_env
from tests.test_action import plant_modules, run_action_step


def test_the_editable_install_wrote_the_version_file() -> None:
    version_file = REPO / "reconcile" / "_version.py"
    assert version_file.is_file(), "`make install` (pip install -e) runs the build hook that writes it"
    assert f"__version__ = version = '{reconcile.__version__}'" in version_file.read_text()
    ignored = subprocess.run(["git", "check-ignore", "-q", str(version_file)], cwd=REPO, check=False)
    assert ignored.returncode == 0, "written by every build, never committed"


def test_the_version_is_read_without_importlib_metadata() -> None:
    code = "import sys, reconcile; print(reconcile.__version__, 'importlib.metadata' in sys.modules)"
    done = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == [reconcile.__version__, "False"]


def test_a_source_tree_never_built_has_a_clear_fallback_version(tmp_path: Path) -> None:
    (tmp_path / "reconcile").mkdir()
    shutil.copy(REPO / "reconcile" / "__init__.py", tmp_path / "reconcile")  # and no _version.py
    code = "import reconcile; print(reconcile.__version__)"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "0.0.0+unknown"


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and wheel, built once for the whole run: the test workers share them (the first
    one to get here builds, under a lock the others wait on)."""
    run = tmp_path_factory.getbasetemp()  # under pytest-xdist, a worker's own: the run's is above it
    shared = run.parent if os.environ.get("PYTEST_XDIST_WORKER") else run
    out = shared / "dist"
    with (shared / "dist.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "built").exists():
            shutil.rmtree(out, ignore_errors=True)
            uv = Path(sys.executable).with_name("uv")
            source = copy_of_the_source(shared / "source")
            command = [str(uv), "build", "--quiet", "--python", sys.executable, "--out-dir", str(out), str(source)]
            done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
            assert done.returncode == 0, done.stdout + done.stderr
            (out / "built").touch()
    return out


def copy_of_the_source(folder: Path) -> Path:
    """What a build of this checkout sees (its git metadata, and every file git does not ignore), in a
    folder of its own: a build writes reconcile/_version.py where it builds, and the tests that
    compare the installed version with that file must not see it change under them."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(REPO / ".git", folder / ".git", symlinks=True)
    for name in filter(None, listed.decode().split("\0")):
        if (REPO / name).exists():  # listed, yet deleted in the working tree
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, folder / name, follow_symlinks=False)
    return folder


def wheel_of(dist: Path) -> Path:
    (wheel,) = dist.glob("descope_reconcile-*-py3-none-any.whl")
    return wheel


def version_of(dist: Path) -> str:
    with zipfile.ZipFile(wheel_of(dist)) as wheel:
        (metadata,) = [name for name in wheel.namelist() if name.endswith(".dist-info/METADATA")]
        version: str = email.parser.Parser().parsestr(wheel.read(metadata).decode())["Version"]
    return version


@pytest.mark.slow
@pytest.mark.network
def test_sdist_and_wheel_pass_twine_check(dist: Path) -> None:
    files = sorted(str(path) for path in dist.iterdir() if path.name.endswith((".whl", ".tar.gz")))
    assert len(files) == 2
    twine = Path(sys.executable).with_name("twine")
    done = subprocess.run([str(twine), "check", "--strict", *files], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
@pytest.mark.network
def test_wheel_carries_the_schemas_its_version_and_the_command(dist: Path) -> None:
    version = version_of(dist)
    with zipfile.ZipFile(wheel_of(dist)) as wheel:
        names = set(wheel.namelist())
        for schema in sorted((REPO / "schemas").glob("*.json")):
            assert wheel.read(f"reconcile/_schemas/{schema.name}") == schema.read_bytes()
        assert f"__version__ = version = '{version}'" in wheel.read("reconcile/_version.py").decode()
        (entry_points,) = [name for name in names if name.endswith(".dist-info/entry_points.txt")]
        assert "descope-reconcile = reconcile.__main__:main" in wheel.read(entry_points).decode()
    assert not {name for name in names if name.startswith(("tests/", "bench/", "desired/"))}
    with tarfile.open(next(dist.glob("*.tar.gz"))) as sdist:
        root = f"descope_reconcile-{version}"
        assert {f"{root}/reconcile/_version.py", f"{root}/schemas/desired.schema.json"} <= set(sdist.getnames())


@pytest.mark.slow
@pytest.mark.network
def test_version_comes_from_git(dist: Path) -> None:
    described = subprocess.run(
        ["git", "describe", "--tags", "--match", "v*", "--always"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    version = version_of(dist)
    if re.fullmatch(r"v\d+(\.\d+)*", described):  # HEAD is a release tag: exactly its version
        assert version == described.removeprefix("v")
    else:  # a development build: after the last tag (or 0.0.0), naming the commit
        assert re.fullmatch(r"\d+(\.\d+)*\.dev\d+\+g[0-9a-f]+(\.d\d{8})?", version), version
        assert described.rsplit("-g", 1)[-1][:7] in version


@pytest.mark.slow
@pytest.mark.network
def test_the_action_installs_the_wheel_and_validates_desired(dist: Path, tmp_path: Path) -> None:
    version = version_of(dist)
    runner = tmp_path / "runner"
    planted = plant_modules(tmp_path, ["pip", "venv", "ensurepip"])
    # The action's commit ships the hashed constraints `make dist` writes for this wheel.
    action = tmp_path / "action"
    made = subprocess.run(
        ["make", "--no-print-directory", "constraints", f"DIST={dist}", f"CONSTRAINTS={action / 'constraints'}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    constraints = (action / "constraints" / f"descope-reconcile-{version}.txt").read_text()
    pins = [line for line in constraints.splitlines() if line and not line.startswith((" ", "#"))]
    assert all("==" in pin for pin in pins) and {"httpx", "pyyaml"} <= {pin.split("==")[0] for pin in pins}
    # pip finds this wheel first (no index has this version) and the dependencies on PyPI.
    env = {**cli_env(None), "PIP_FIND_LINKS": str(dist)}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"  # python3: 3.11+, as setup-python leaves it

    # A wheel that is not the one reviewed (rebuilt, or swapped on the index) is refused by its hash,
    # and the environment it was to go into is not taken for installed by the next use in the job.
    tampered = tmp_path / "tampered-constraints"
    tampered.mkdir()
    (tampered / "constraints").mkdir()
    first_hash = constraints.split("--hash=sha256:", 1)[1][:64]
    swapped = constraints.replace(first_hash, "0" * 64, 1)
    (tampered / "constraints" / f"descope-reconcile-{version}.txt").write_text(swapped)
    refused = run_action_step("install", {"version": version}, tmp_path, runner, env=env, action_path=tampered)
    assert refused.code != 0 and "THESE PACKAGES DO NOT MATCH THE HASHES" in refused.output, refused.output
    assert "bin" not in refused.outputs
    install = run_action_step("install", {"version": version}, tmp_path, runner, env=env, action_path=action)
    assert install.code == 0, install.output
    assert f"descope-reconcile {version}" in install.output
    tool_bin = Path(install.outputs["bin"])
    assert tool_bin == runner / f"descope-reconcile-{version}" / "bin"
    assert not planted.exists()
    where = subprocess.run(
        [str(tool_bin / "python"), "-I", "-c", "import reconcile; print(reconcile.__file__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(tool_bin.parent) and not Path(where).is_relative_to(REPO)

    workspace = tmp_path / "consumer"
    shutil.copytree(REPO / "desired", workspace / "desired")
    valid = run_action_step("run", {"command": "validate", "paths": "desired/"}, workspace, runner, tool_bin=tool_bin)
    assert valid.code == 0 and valid.outputs["exit-code"] == "0", valid.output
    (workspace / "desired" / "bad.yaml").write_text("version: 1\nkeys:\n  - id: K1\n    roleName: [x]\n")
    invalid = run_action_step("run", {"command": "validate", "paths": "desired/"}, workspace, runner, tool_bin=tool_bin)
    assert invalid.code == 1, invalid.output
    # A schema error: the schemas came with the wheel (there is no schemas/ folder beside it).
    assert "desired/bad.yaml:4:5: error: unknown field `roleName`: did you mean `roleNames`?" in invalid.output

    # Used again in the job, the action installs nothing: a python3 that cannot make a venv is not asked.
    old = tmp_path / "old-python"
    old.mkdir()
    (old / "python3").write_text("#!/bin/sh\nexit 1\n")
    (old / "python3").chmod(0o755)
    again = run_action_step(
        "install",
        {"version": version},
        tmp_path,
        runner,
        env={**env, "PATH": f"{old}:{env['PATH']}"},
        action_path=action,
    )
    assert again.code == 0 and again.outputs["bin"] == str(tool_bin), again.output
