"""descope-reconcile: keep a Descope project's access keys exactly as versioned YAML says."""

# Every build, editable installs included, writes the version from the git tag (hatch-vcs) into
# `_version.py`. Reading it is one small import, where importlib.metadata would scan the installed
# distributions on every start (the pre-commit hook starts the tool on every commit).
try:
    from reconcile._version import __version__
except ModuleNotFoundError:  # a source tree that was never built or installed: `make install` writes it
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
