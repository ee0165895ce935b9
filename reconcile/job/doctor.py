"""`doctor`: every assumption this tool makes about the Management API, checked against one project
without changing anything (reads only; no audit event is written). Prints nothing.

Each check passes, warns, fails, or stays unknown (it would need a write to find out). `needed`
marks the checks a plan or an apply cannot do without: the command succeeds when none of them fails.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Any

from reconcile.client.descope import DEFAULT_BASE_URL, Credentials, DescopeClient, License
from reconcile.config.targets import TargetConfig
from reconcile.desired.declared import attribute_names, problems
from reconcile.errors import AuthenticationError, ExitCode, ReconcileError
from reconcile.job.connect import credentials_for
from reconcile.job.declared import held_names
from reconcile.job.load import load_valid
from reconcile.job.options import Remote
from reconcile.job.result import Output, settled_async
from reconcile.job.result import Result as RunResult
from reconcile.job.tenant import HOW
from reconcile.job.trail import search_window
from reconcile.model import DesiredState
from reconcile.output.escape import text_line
from reconcile.trail.records import KEY_ACTIONS, TrailShapeError, parse_record

SKEW_WARN_SECONDS = 2.0  # a change is matched to a run's writes within 2 s (trail/attribution.py)
SKEW_FAIL_SECONDS = 3600.0  # the audit window's margin: beyond it `from` may fall outside 30 days
SAMPLE_SIZE = 50  # audit records read to learn their shape
MAX_HELD_LOOKUPS = 10  # attributes the project's keys hold, looked up to learn what the lookup takes
# Descope publishes two limits: the general API's (100 / 60 s per IP, the lowest bucket) and backend
# SDK traffic's (1000 / 10 s). What each tier allows is not published.
LOWEST_RATE = 100 / 60
SDK_RATE = 1000 / 10


class Status(StrEnum):
    PASS = "pass"  # noqa: S105 (a check's status, not a password)
    WARN = "warn"
    FAIL = "fail"
    UNKNOWN = "unknown"  # cannot be found out without a write


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    needed: bool = False  # a plan or an apply needs it to pass

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status.value, "needed": self.needed, "detail": self.detail}


@dataclass(frozen=True)
class DoctorOptions:
    credentials: Credentials = field(repr=False)
    base_url: str
    base_url_overridden: bool = False
    desired: DesiredState | None = None  # the desired files, when given: their attributes are checked
    audit_tenant: str | None = None
    rate: float = SDK_RATE  # the run's --rate, compared with what the tier implies
    timeout: float = 30.0


@dataclass(frozen=True)
class Result:
    project_id: str
    base_url: str
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """Every check a plan or apply needs passes (or only warns)."""
        return not any(check.needed and check.status is Status.FAIL for check in self.checks)

    def as_json(self) -> dict[str, Any]:
        checks = [check.as_json() for check in self.checks]
        return {"projectId": self.project_id, "baseUrl": self.base_url, "ok": self.ok, "checks": checks}


def region_check(project_id: str, base_url: str, overridden: bool) -> Check:
    """The SDKs' rule: a regional host for project ids of 32+ characters (characters 1..4)."""
    expected = f"https://api.{project_id[1:5]}.descope.com" if len(project_id) >= 32 else DEFAULT_BASE_URL
    region = f"region {project_id[1:5]}" if len(project_id) >= 32 else "the default region"
    if not overridden or base_url == expected:
        return Check("base URL", Status.PASS, f"{base_url} ({region}, the SDKs' rule)", needed=True)
    return Check(
        "base URL", Status.WARN, f"{base_url} is set; the SDKs' rule for this project id gives {expected}", needed=True
    )


def tls_check(base_url: str, found: License) -> Check:
    if base_url.startswith("http://"):
        return Check("TLS", Status.WARN, "plain http (allowed on loopback only)", needed=True)
    if found.tls is None:
        return Check("TLS", Status.UNKNOWN, f"no TLS version seen ({found.problem or 'no answer'})", needed=True)
    return Check("TLS", Status.PASS, f"{found.tls}, certificate verified", needed=True)


def license_check(found: License, rate: float) -> Check:
    if found.tier is None:
        implied = f"Descope's lowest bucket (published general limit 100 / 60 s per IP, {LOWEST_RATE:.1f}/s)"
        return Check("license tier", Status.WARN, f"no tier ({found.problem}): requests go in {implied}")
    note = "" if rate <= SDK_RATE else f"; --rate {rate:g}/s is above it"
    detail = (
        f"{found.tier}: requests carry x-descope-license: {found.tier}; what a tier allows is not published "
        f"(backend SDK traffic: 1000 / 10 s, {SDK_RATE:g}/s){note}"
    )
    return Check("license tier", Status.PASS, detail)


def clock_check(found: License, now: float) -> Check:
    if not found.date:
        return Check("clock", Status.UNKNOWN, "the answer has no Date header")
    try:
        server = email.utils.parsedate_to_datetime(found.date).timestamp()
    except (TypeError, ValueError):
        return Check("clock", Status.UNKNOWN, "the Date header is not a date")
    skew = now - server
    detail = f"this machine is {abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} the server (Date header)"
    if abs(skew) > SKEW_FAIL_SECONDS:
        return Check("clock", Status.FAIL, detail + ": audit windows may be refused; fix the clock")
    if abs(skew) > SKEW_WARN_SECONDS:
        return Check("clock", Status.WARN, detail + ": changes may be matched to the wrong run in the trail")
    return Check("clock", Status.PASS, detail)


def _refused(error: ReconcileError) -> str:
    return f"refused: {error}" if isinstance(error, AuthenticationError) else f"failed: {error}"


def record_shape(records: Sequence[Mapping[str, Any]], key_ids: set[str]) -> Check:
    """Where a recent access-key record names the key, which field names the actor, `occurred`'s type."""
    if not records:
        return Check("audit record shape", Status.UNKNOWN, "no access-key record in the last 30 days to look at")
    raw = records[0]
    try:
        parse_record(raw)
    except TrailShapeError as error:
        return Check("audit record shape", Status.FAIL, f"a record this tool cannot read: {error}")
    places = []
    if isinstance(raw.get("externalIds"), list) and key_ids & set(map(str, raw["externalIds"])):
        places.append("externalIds")
    if raw.get("userId") in key_ids:
        places.append("userId")
    data: Mapping[str, Any] = raw["data"] if isinstance(raw.get("data"), Mapping) else {}
    places += [f"data.{name}" for name, value in data.items() if value in key_ids]
    occurred = type(raw.get("occurred")).__name__
    actor = "actorId" if raw.get("actorId") else "no field (actorId is empty)"
    where = ", ".join(places) or "nowhere this tool could match with a key of the project (it reads all of them)"
    status = Status.PASS if places and raw.get("actorId") else Status.WARN
    detail = f"{raw.get('action')}: key id in {where}; actor named by {actor}; occurred is a {occurred}"
    return Check("audit record shape", status, detail)


def event_check(audit_tenant: str | None, observed: Sequence[Mapping[str, Any]], audit_ok: bool | None) -> Check:
    """Whether apply's event can be written, judged without writing one."""
    tenants = sorted({t.get("tenantId") for key in observed for t in key.get("keyTenants") or () if t.get("tenantId")})
    if audit_tenant:
        tenant = f"tenant {audit_tenant} (configured)"
    elif tenants:
        tenant = f"no auditTenant: a tenant of the changed keys (the project's include {tenants[0]}); {HOW}"
    else:
        return Check("apply event", Status.WARN, f"no tenant to write it under: no event; {HOW}")
    if audit_ok is False:
        return Check("apply event", Status.WARN, f"{tenant}; the key may not search the trail, likely not write to it")
    return Check("apply event", Status.UNKNOWN, f"{tenant}; permission to write events is known only by writing one")


def attributes_check(
    desired: DesiredState | None, observed: Sequence[Mapping[str, Any]], found: Mapping[str, Any], failure: str | None
) -> Check:
    """The lookup's meaning, and the desired files' attributes against the declarations."""
    if failure is not None:
        return Check("declared attributes", Status.WARN, f"the lookup {failure}: plan cannot check attribute names")
    held = held_names(observed)
    confirmed = sorted(name for name in held if found.get(name))
    lookup = "not tested (no key holds an attribute)"
    if held:
        lookup = (
            f"`?name=` takes the machine name (found {confirmed[0]})"
            if confirmed
            else "found no attribute a key holds: the endpoint is missing, or takes another name (display name?)"
        )
    if desired is None or not attribute_names(desired.keys):
        status = Status.PASS if confirmed or not held else Status.WARN
        return Check("declared attributes", status, f"lookup: {lookup}; no desired attributes to check")
    wrong = problems(desired.keys, found)
    if wrong:
        first = wrong[0]
        where = f"{first.path}:{first.line} [{first.field}]"
        return Check(
            "declared attributes", Status.FAIL, f"{len(wrong)} problem(s), first {where}: {first.message}", True
        )
    if not any(found.get(name) for name in attribute_names(desired.keys)) and not confirmed:
        return Check("declared attributes", Status.WARN, f"lookup: {lookup}; the desired names were not found")
    return Check("declared attributes", Status.PASS, f"lookup: {lookup}; every desired attribute is declared", True)


def unknowns(keys: Sequence[Mapping[str, Any]], loaded: Mapping[str, Any] | None) -> list[Check]:
    """What the README lists as unknown about the real API, as far as reads can tell."""
    checks = []
    if loaded is None:
        checks.append(Check("whole-key answers", Status.UNKNOWN, "no key to load"))
    else:
        searched = next(key for key in keys if key.get("id") == loaded.get("id"))
        missing = sorted(set(searched) - set(loaded))
        status = Status.WARN if missing else Status.PASS
        detail = (
            f"a load answer lacks {', '.join(missing)}" if missing else "a load answer holds every field a search does"
        )
        checks.append(Check("whole-key answers", status, detail + "; the update answer is seen only by writing"))
    spelled = [ip for key in keys for ip in key.get("permittedIps") or () if isinstance(ip, str) and ip != ip.lower()]
    normal = (
        f"an IP is kept as written ({spelled[0]}): values are not normalised"
        if spelled
        else "no evidence either way (whether the server normalises values is seen only by writing)"
    )
    checks.append(Check("values kept as written", Status.PASS if spelled else Status.UNKNOWN, normal))
    frozen = sum(1 for key in keys if key.get("editable") is False)
    checks.append(
        Check(
            "status of keys not editable",
            Status.UNKNOWN,
            f"{frozen} key(s) not editable; whether they can be activated or deactivated is seen only by writing",
        )
    )
    return checks


async def _audit(client: DescopeClient, key_ids: set[str]) -> tuple[Check, Check, bool | None]:
    start, end = search_window(None, int(time.time() * 1000))
    body = {"actions": list(KEY_ACTIONS), "from": start, "to": end, "size": SAMPLE_SIZE, "page": 0}
    try:
        answer = await client.search_audit(body)
    except ReconcileError as error:
        allowed = False if isinstance(error, AuthenticationError) else None
        detail = f"audit search {_refused(error)}: attribution and the overwritten check will be unavailable"
        unknown_shape = Check("audit record shape", Status.UNKNOWN, "the trail could not be read")
        return Check("audit search", Status.WARN, detail), unknown_shape, allowed
    records: list[Mapping[str, Any]] = answer["audits"] if isinstance(answer.get("audits"), list) else []
    total = answer.get("total", len(records))
    detail = f"allowed; the SDKs' window (from 30 days less an hour, to now) accepted; {total} access-key record(s)"
    return Check("audit search", Status.PASS, detail), record_shape(records, key_ids), True


async def _attributes(client: DescopeClient, names: set[str]) -> tuple[dict[str, Any], str | None]:
    found: dict[str, Any] = {}
    for name in sorted(names):
        try:
            found[name] = await client.load_attribute(name)
        except ReconcileError as error:
            return found, _refused(error)
    return found, None


async def run(options: DoctorOptions) -> Result:
    project_id = options.credentials.project_id
    checks = [region_check(project_id, options.base_url, options.base_url_overridden)]
    async with DescopeClient(options.credentials, options.base_url, timeout=options.timeout) as client:
        found = await client.handshake()
        checks += [
            tls_check(options.base_url, found),
            license_check(found, options.rate),
            clock_check(found, time.time()),
        ]
        try:
            keys = await client.search_access_keys()
        except AuthenticationError as error:
            name = "credentials" if error.status == 401 else "search keys"
            checks.append(Check(name, Status.FAIL, f"{_refused(error)}", needed=True))
            return Result(project_id, options.base_url, tuple(checks))
        except ReconcileError as error:
            checks.append(Check("search keys", Status.FAIL, _refused(error), needed=True))
            return Result(project_id, options.base_url, tuple(checks))
        checks.append(Check("credentials", Status.PASS, "the management key is accepted", needed=True))
        checks.append(Check("search keys", Status.PASS, f"allowed: {len(keys)} key(s)", needed=True))
        loaded = None
        if keys:
            with contextlib.suppress(ReconcileError):
                loaded = await client.load_access_key(str(keys[0]["id"]))
        audit, shape, allowed = await _audit(client, {str(key["id"]) for key in keys})
        checks += [audit, shape, event_check(options.audit_tenant, keys, allowed)]
        held = set(sorted(held_names(keys))[:MAX_HELD_LOOKUPS])
        wanted = held | (attribute_names(options.desired.keys) if options.desired else set())
        declared, failure = await _attributes(client, wanted)
        checks.append(attributes_check(options.desired, keys, declared, failure))
        checks += unknowns(keys, loaded)
    return Result(project_id, options.base_url, tuple(checks))


_MARKS = {Status.PASS: "ok  ", Status.WARN: "warn", Status.FAIL: "FAIL", Status.UNKNOWN: "?   "}


@dataclass(frozen=True)
class DoctorCommand:
    """`doctor` as the command line gives it: the project (a config target's, else the environment's),
    the desired files whose attributes to check, the event's tenant, and the output format."""

    paths: tuple[str, ...]
    remote: Remote
    audit_tenant: str | None = None
    as_json: bool = False
    outputs: None = None  # writes no report

    def for_target(self, target: TargetConfig) -> DoctorCommand:
        tenant = target.settings.get("auditTenant", self.audit_tenant)
        return replace(self, paths=target.paths, remote=self.remote.for_target(target), audit_tenant=tenant)

    def files(self) -> Mapping[str, Path | None]:
        return {}


def render(result: Result) -> str:
    lines = [f"descope-reconcile doctor: project {result.project_id} at {result.base_url}"]
    for check in result.checks:
        needed = " (needed)" if check.needed else ""
        lines.append(text_line(f"  {_MARKS[check.status]} {check.name}{needed}: {check.detail}"))
    verdict = "every check a plan or apply needs passes" if result.ok else "a check a plan or apply needs fails"
    return "\n".join([*lines, f"Doctor: {verdict}."]) + "\n"


async def _doctor(command: DoctorCommand, output: Output) -> RunResult:
    desired = load_valid(command.paths, output).state if command.paths else None
    config = command.remote.target
    credentials, base_url = credentials_for(config)
    environment = os.environ
    overridden = (
        bool(config.base_url)
        if config
        else bool(environment.get("DESCOPE_BASE_URL") or environment.get("DESCOPE_BASE_URI"))
    )
    options = DoctorOptions(
        credentials=credentials,
        base_url=base_url,
        base_url_overridden=overridden,
        desired=desired,
        audit_tenant=command.audit_tenant,
        rate=command.remote.rate,
        timeout=command.remote.timeout,
    )
    result = await run(options)
    output.show(json.dumps(result.as_json(), indent=2) + "\n" if command.as_json else render(result))
    return output.result(ExitCode.OK if result.ok else ExitCode.FAILURE)


async def doctor(command: DoctorCommand) -> RunResult:
    return await settled_async(partial(_doctor, command))
