"""Plan and results → text for people (stdout), field by field like a diff. Names, values, paths and
error texts come from the server and the files: every line goes out through `escape.text_block`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from functools import partial
from typing import Any

from reconcile.apply.calls import KeyResult
from reconcile.apply.journal import Unsettled
from reconcile.model import MAP_FIELDS, SET_FIELDS
from reconcile.output.escape import json_value, text_block
from reconcile.output.recovery import Recovery
from reconcile.output.trail import (
    attribution_json,
    change_json,
    describe,
    describe_change,
    step_json,
    step_notice,
)
from reconcile.plan.diff import FieldChange, KeyPlan, Outcome, Plan
from reconcile.trail.findings import TrailFindings

_MARKS = {
    Outcome.UPDATE: "~",
    Outcome.UPDATED: "~",
    Outcome.UNCHANGED: "=",
    Outcome.CREATE: "+",
    Outcome.CREATED: "+",
    Outcome.ACTIVATE: "~",
    Outcome.ACTIVATED: "~",
    Outcome.DEACTIVATE: "~",
    Outcome.DEACTIVATED: "~",
    Outcome.DELETE: "-",
    Outcome.DELETED: "-",
    Outcome.ROTATE: "*",
    Outcome.ROTATED: "*",
}
_json = partial(json_value, sort_keys=True)


def _tenant_roles(value: list[dict[str, Any]]) -> dict[str, list[str]]:
    return {tenant["tenantId"]: tenant["roleNames"] for tenant in value}


def render_change(change: FieldChange) -> list[str]:
    """One field's change as indented lines; sets and maps show only what moves."""
    name, before, after = change.field, change.before, change.after
    if before is None:  # a field a create sets
        return [f"    + {name}: {_json(after)}"]
    if name in SET_FIELDS:
        added = [item for item in after if item not in before]
        removed = [item for item in before if item not in after]
        return [f"    {name}:"] + [f"      + {_json(v)}" for v in added] + [f"      - {_json(v)}" for v in removed]
    if name in MAP_FIELDS or name == "keyTenants":
        if name == "keyTenants":
            before, after = _tenant_roles(before), _tenant_roles(after)
        lines = [f"    {name}:"]
        for key in sorted(set(before) | set(after)):
            if key not in before:
                lines.append(f"      + {key}: {_json(after[key])}")
            elif key not in after:
                lines.append(f"      - {key}: {_json(before[key])}")
            elif before[key] != after[key] or type(before[key]) is not type(after[key]):
                lines.append(f"      ~ {key}: {_json(before[key])} -> {_json(after[key])}")
        return lines
    return [f"    {name}: {_json(before)} -> {_json(after)}"]


def _header(item: KeyPlan, outcome: Outcome, key_id: str | None = None) -> str:
    mark = _MARKS.get(outcome, "!")
    shown, name = key_id or item.key.id, f" ({item.name})" if item.name else ""
    if shown is None:  # a key to create: the server chooses its id
        shown, name = "(new)", f" {item.name}"
    word = outcome.value.upper() if outcome is Outcome.DELETE else outcome.value  # unmistakable
    return f"{mark} {shown}{name}  {item.key.source}  [{word}]"


def render_plan(plan: Plan, *, verbose: bool = False, trail: TrailFindings | None = None) -> str:
    """The plan, with each drifted key's last change under it when `trail` has them."""
    lines: list[str] = []
    for item in plan.keys:
        if item.outcome is Outcome.UNCHANGED and not verbose and not item.warnings:
            continue
        lines.append(_header(item, item.outcome))
        if item.outcome is not Outcome.UPDATE:
            lines.append(f"    {item.reason}")
        for change in item.changes:
            lines.extend(render_change(change))
        lines.extend(f"    warning: {warning}" for warning in item.warnings)
        lines.extend(f"    last change: {text}" for text in _described(trail, item.key.id))
    notice = step_notice(step_json(trail.attribution)) if trail is not None else None
    if notice is not None:
        lines.append(notice)
    counts = Counter(item.outcome for item in plan.keys)
    parts = [f"{counts[o]} {o.value.replace('_', ' ')}" for o in Outcome if counts[o]]
    if plan.managed > len(plan.keys):  # a saved plan holds only its changes
        parts.append(f"{plan.managed - len(plan.keys)} unchanged when planned")
    summary = [f"Plan: {', '.join(parts) or 'no managed keys'}; {len(plan.unmanaged)} unmanaged key(s) in the project."]
    creating = [item.name for item in plan.issuing if item.outcome is Outcome.CREATE]
    if creating:  # (a rotation is asked for with its sink)
        names = ", ".join(creating[:20]) + (" ..." if len(creating) > 20 else "")
        summary.append(
            f"Applying needs a secret sink (--secrets-out FILE and/or --secrets-command CMD): "
            f"{len(creating)} key(s) get a new secret: {names}"
        )
    deleted = [item.key.id for item in plan.keys if item.outcome is Outcome.DELETE]
    if deleted:
        shown = ", ".join(str(key_id) for key_id in deleted[:20]) + (" ..." if len(deleted) > 20 else "")
        summary.append(f"!! {len(deleted)} key(s) will be DELETED, which cannot be undone: {shown}")
    if verbose:
        lines.extend(f"  unmanaged: {key.id} ({key.name})" for key in plan.unmanaged)
    return text_block([*lines, *summary])


def render_results(  # noqa: PLR0913 (what a run's last lines say; the rest keyword-only)
    results: Sequence[KeyResult],
    unsent: Sequence[KeyPlan],
    recovery: Recovery,
    trail: TrailFindings | None = None,
    *,
    title: str = "Apply",
    unsettled: int = 0,
) -> str:
    """Every key not changed as planned, and why (with the command that recovers a lost secret), each
    new key's id; then the counts, saying when the run ends in error (or with changes overwritten,
    from `trail`). `unsent`: keys in error from the plan (missing, not editable, ...), for which
    nothing was sent. `unsettled`: keys an earlier run left with a secret nobody received (exit 1)."""
    lines = [f"! {item.key.label}  [{item.outcome.value}]: {item.reason}" for item in unsent]
    for result in results:
        if result.outcome in (Outcome.CREATED, Outcome.ROTATED):  # the new id is worth seeing; never the secret
            lines.append(_header(result.plan, result.outcome, result.id) + " secret delivered")
        if result.outcome is result.plan.outcome.done:
            continue
        error = result.error.message if result.error else result.outcome.value
        attempts = f" after {result.attempts} attempt(s)" if result.attempts else ""
        lines.append(f"! {result.id or result.plan.key.label}  [{result.outcome.value}]{attempts}: {error}")
        if result.outcome is Outcome.UNDELIVERED and result.id is not None:
            recover = recovery.command(result.id, name=result.plan.name, delivered_to=result.delivered_to)
            lines.append(f"    recover: {recover}")
    lines.extend(_recover_all(results, recovery))
    counts = Counter([result.outcome for result in results] + [item.outcome for item in unsent])
    parts = [f"{counts[o]} {o.value.replace('_', ' ')}" for o in Outcome if counts[o]]
    failing = sum(n for outcome, n in counts.items() if outcome.is_error)
    overwritten = len(trail.overwritten) if trail is not None else 0
    verdict = f"; {failing} key(s) not as desired (exit 1)" if failing else ""
    if unsettled:
        verdict += f"; {unsettled} key(s) with a secret an earlier run issued and never delivered (exit 1)"
    if overwritten:
        verdict += f"; {overwritten} change(s) by someone else overwritten" + ("" if failing else " (exit 4)")
    idle = "nothing sent" if unsettled else "nothing to do"
    lines.append(f"{title}: {', '.join(parts) or idle}{verdict}.")
    return text_block(lines)


def _recover_all(results: Sequence[KeyResult], recovery: Recovery) -> list[str]:
    """After issuing stopped at a delivery failure: one command for every key left without its secret
    (rotations not sent included); creates not sent are made by the next apply."""
    held = [result for result in results if result.outcome is Outcome.HELD and result.plan.outcome.issues_secret]
    if not held:
        return []
    lost = [result.id for result in results if result.outcome is Outcome.UNDELIVERED and result.id is not None]
    rotations = [str(result.plan.key.id) for result in held if result.plan.outcome is Outcome.ROTATE]
    creates = len(held) - len(rotations)
    lines = [f"{len(held)} key(s) not sent: issuing stops at the first delivery failure."]
    if lost or rotations:
        lines.append(f"Recover all of them, once the sink works: {recovery.command(','.join([*lost, *rotations]))}")
    if creates:
        lines.append(f"The {creates} key(s) not created are created by the next apply, once the sink works.")
    return lines


def render_unsettled(unsettled: Sequence[Unsettled], recovery: Recovery) -> list[str]:
    """Keys whose secret an earlier run issued and never recorded as delivered: a line each (for stderr)."""
    return [
        f"warning: {u.id} ({u.name}): {u.why} (run {u.run_id}, {u.at}); the secret may be lost. "
        f"Recover: {recovery.command(u.id, u.sinks, name=u.name, delivered_to=u.delivered_to)}"
        for u in unsettled
    ]


def render_trail(trail: TrailFindings, plan: Plan) -> str:
    """After an apply: who last changed each drifted key before it, and the changes it overwrote."""
    lines = [f"last change of {item.key.id}: {text}" for item in plan.keys for text in _described(trail, item.key.id)]
    notices = (step_notice(step_json(trail.attribution)), step_notice(_step(trail), "overwritten check"))
    lines.extend(notice for notice in notices if notice is not None)
    for item in trail.overwritten:
        their = describe_change(change_json(item.change), str)
        lines.append(f"! {item.key_id}  [overwritten] {their}, between this run's read and its write: reverted by it")
    for item in trail.meanwhile:
        their = describe_change(change_json(item.change), str)
        lines.append(
            f"  {item.key_id}  [changed meanwhile] {their}, before this run's {item.write.value} (not reverted)"
        )
    lines.extend(f"  {key_id}  [not checked] {why}" for key_id, why in trail.not_checked.items())
    return text_block(lines) if lines else ""


def _described(trail: TrailFindings | None, key_id: str | None) -> list[str]:
    attribution = trail.keys.get(key_id) if trail is not None and key_id is not None else None
    return [describe(attribution_json(attribution), str)] if attribution else []


def _step(trail: TrailFindings) -> dict[str, Any] | None:
    return step_json(trail.overwrite_check) if trail.overwrite_check is not None else None
