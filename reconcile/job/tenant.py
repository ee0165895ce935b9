"""Which tenant the apply event goes under. Descope's SDKs all require a `tenantId` on an audit event
(the OpenAPI marks nothing required): an event without one may be refused, so none is ever sent.

The nearest right thing when `auditTenant` is not set: a tenant of the keys the run changed (the
event is about them), else of any key the run wrote to; failing that, no event, and attribution says
that a change no event claims may still be this tool's own. Either way one line says how to set it.
Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from reconcile.plan.diff import KeyPlan

HOW = "set `auditTenant` in the config (or --audit-tenant) to choose the event's tenant"


@dataclass(frozen=True)
class TenantChoice:
    tenant: str | None
    notice: str | None = None  # one line for people when the tenant was not configured


def _tenants(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [t["tenantId"] for t in value if isinstance(t, Mapping) and isinstance(t.get("tenantId"), str)]


def key_tenants(item: KeyPlan) -> list[str]:
    """Every tenant a planned key names: in the request, in the desired files, or as it was read."""
    found: list[str] = []
    for source in (item.body, item.key.fields, item.last_state):
        found += _tenants(source.get("keyTenants")) if source else []
    return found


def event_tenant(configured: str | None, changed: Iterable[KeyPlan], written: Iterable[KeyPlan] = ()) -> TenantChoice:
    if configured:
        return TenantChoice(configured)
    for keys, which in ((changed, "the changed keys"), (written, "the keys this run wrote to")):
        tenants = sorted({tenant for item in keys for tenant in key_tenants(item) if tenant})
        if tenants:
            return TenantChoice(tenants[0], f"the apply event is recorded under tenant {tenants[0]}, of {which}: {HOW}")
    return TenantChoice(
        None,
        "the apply event is not written: Descope requires a tenant and no key of this run names one; "
        f"{HOW} (until then the trail cannot tell this tool's changes from others')",
    )


def unclaimed_caveat(configured: str | None, planned: Iterable[KeyPlan]) -> str | None:
    """Why a change no apply event claims may still be this tool's own (None: events can be written)."""
    if configured or any(key_tenants(item) for item in planned):
        return None
    return "no apply event can be written without a tenant, so a change shown as not this tool's may be its own; " + HOW
