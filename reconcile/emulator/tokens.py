"""Session tokens for an exchanged access key: JWT-shaped, signed with a key only this server knows.

Real Descope signs with RS256 and publishes its public keys; nothing in this project verifies a
session token, so an HS256 signature over the same claims is enough to make each token unique,
tamper-evident and short-lived.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

SESSION_SECONDS = 600


def _segment(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def session_token(key: Mapping[str, Any], project_id: str, signing_key: bytes) -> dict[str, Any]:
    """`{"keyId": ..., "sessionJwt": ..., "expiration": unix seconds}` for this key, capped by the key's own expiry."""
    now = int(time.time())
    expiration = now + SESSION_SECONDS
    if key["expireTime"]:
        expiration = min(expiration, key["expireTime"])
    claims = {
        **key["customClaims"],  # first: a custom claim never overrides a standard one
        "iss": project_id,
        "sub": key["id"],
        "iat": now,
        "exp": expiration,
        "roles": key["roleNames"],
        "tenants": {t["tenantId"]: {"roles": t["roleNames"]} for t in key["keyTenants"]},
    }
    header = {"alg": "HS256", "typ": "JWT", "kid": "emulator"}
    signed = ".".join(_segment(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims))
    signature = hmac.new(signing_key, signed.encode(), hashlib.sha256).digest()
    return {"keyId": key["id"], "sessionJwt": f"{signed}.{_segment(signature)}", "expiration": expiration}
