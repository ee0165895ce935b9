"""A Descope-compatible local server for access keys: `python -m reconcile.emulator --help`."""

from reconcile.emulator.config import FAULT_KINDS, EmulatorConfig, Window
from reconcile.emulator.server import Emulator, RecordedRequest
from reconcile.emulator.store import KeyStore

__all__ = ["FAULT_KINDS", "Emulator", "EmulatorConfig", "KeyStore", "RecordedRequest", "Window"]
