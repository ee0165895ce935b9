"""The hand-written way, for comparison: a plain loop over the official `descope` SDK.

What a user would write: for each desired key, load it, and update it when name, description or
customClaims differ (the only fields the SDK's update can send), sleeping Retry-After whenever
the SDK raises its rate-limit exception. Sequential, as such scripts are.

    python bench/naive_sdk.py desired.json    # env: DESCOPE_PROJECT_ID, DESCOPE_MANAGEMENT_KEY, DESCOPE_BASE_URL
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from descope import API_RATE_LIMIT_RETRY_AFTER_HEADER, DescopeClient, RateLimitException

FIELDS = ("name", "description", "customClaims")


def patiently(call: Callable[[], Any]) -> Any:
    while True:
        try:
            return call()
        except RateLimitException as error:
            time.sleep(float(error.rate_limit_parameters.get(API_RATE_LIMIT_RETRY_AFTER_HEADER) or 1))


def main(path: str) -> int:
    desired = json.loads(Path(path).read_text(encoding="utf-8"))
    client = DescopeClient(
        project_id=os.environ["DESCOPE_PROJECT_ID"],
        management_key=os.environ["DESCOPE_MANAGEMENT_KEY"],
        base_url=os.environ["DESCOPE_BASE_URL"],
    )
    keys = client.mgmt.access_key
    updated = 0
    for key in desired:
        current = patiently(lambda key=key: keys.load(key["id"]))["key"]
        if any(current.get(field) != key.get(field) for field in FIELDS):
            patiently(
                lambda key=key: keys.update(
                    key["id"], key["name"], description=key.get("description"), custom_claims=key.get("customClaims")
                )
            )
            updated += 1
    print(json.dumps({"updated": updated}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
