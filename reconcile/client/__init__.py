"""The Descope Management API client: HTTP, answers mapped to one error hierarchy, secrets redacted."""

import importlib.util
import sys

# httpx's package imports its own command line (click, rich: 0.09 s of CPU and 100 modules at every
# start of a network command) wherever those are installed. This tool never runs it, and httpx
# stands a stub in for it when that import fails.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]  # None: the documented "no such module"
# httpcore asks which event loop runs (`import sniffio`) at every request and lock. Where sniffio is
# not installed (anyio 4 needs it no more), every such import searched sys.path again: 0.11 ms, 3,100
# times in an apply of 600 keys (0.36 s of CPU). Known absent once, the answer is asyncio all the same.
if importlib.util.find_spec("sniffio") is None:
    sys.modules["sniffio"] = None  # type: ignore[assignment]
