"""The Descope Management API client: HTTP, answers mapped to one error hierarchy, secrets redacted."""

import sys

# httpx's package imports its own command line (click, rich: 0.09 s of CPU and 100 modules at every
# start of a network command) wherever those are installed. This tool never runs it, and httpx
# stands a stub in for it when that import fails.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]  # None: the documented "no such module"
