"""A Descope-compatible local server for access keys: `python -m reconcile.emulator --help`."""

from reconcile.emulator.answers import Answer, error
from reconcile.emulator.config import FAULT_KINDS, EmulatorConfig, Window
from reconcile.emulator.server import Call, Emulator, Hook, RecordedRequest
from reconcile.emulator.store import KeyStore

__all__ = [
    "FAULT_KINDS",
    "Answer",
    "Call",
    "Emulator",
    "EmulatorConfig",
    "Hook",
    "KeyStore",
    "RecordedRequest",
    "Window",
    "error",
]
