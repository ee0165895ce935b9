"""Log levels beyond the standard ones: VERBOSE (-v) sits between INFO (normal output) and DEBUG (-vv)."""

from __future__ import annotations

import logging

# Retries with their cause, limiter pauses and probes, phase timings: what -v adds to a run's output.
VERBOSE = 15
logging.addLevelName(VERBOSE, "VERBOSE")
