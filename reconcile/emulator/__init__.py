"""A Descope-compatible local server for access keys: `python -m reconcile.emulator --help`."""

from reconcile.emulator.server import FAULT_KINDS, Emulator, EmulatorConfig, RecordedRequest
from reconcile.emulator.store import KeyStore

__all__ = ["FAULT_KINDS", "Emulator", "EmulatorConfig", "KeyStore", "RecordedRequest"]
