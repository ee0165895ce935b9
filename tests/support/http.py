"""httpx's one-request functions, for the tests' own requests to an emulator: each makes a client,
and every client made without a TLS context loaded the CA bundle again (50 ms of CPU each)."""

from __future__ import annotations

from typing import Any

import httpx

from reconcile.client.descope import tls_context


def post(url: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(url, verify=tls_context(), **kwargs)


def get(url: str, **kwargs: Any) -> httpx.Response:
    return httpx.get(url, verify=tls_context(), **kwargs)
