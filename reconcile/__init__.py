"""descope-reconcile: keep a Descope project's access keys exactly as versioned YAML says."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("descope-reconcile")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
