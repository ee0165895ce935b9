"""Diff semantics and update bodies (pure functions)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from reconcile.model import DesiredKey, DesiredState, SourceLocation, normalize_field, same_field
from reconcile.plan.diff import Outcome, compute_plan, diff_fields, plan_key, update_body
from tests.conftest import cli_env, run_cli

HERE = SourceLocation("desired/keys.yaml", 3)


def desired(**fields: Any) -> DesiredKey:
    return DesiredKey("K1", fields, HERE)


def server_key(**fields: Any) -> dict[str, Any]:
    key: dict[str, Any] = {
        "id": "K1",
        "name": "ci",
        "description": "",
        "roleNames": [],
        "keyTenants": [],
        "customClaims": {},
        "permittedIps": [],
        "customAttributes": {},
        "status": "active",
        "createdTime": 1,
        "expireTime": 0,
        "createdBy": "someone",
        "clientId": "C1",
        "boundUserId": "",
        "editable": True,
    }
    key.update(fields)
    return key


@pytest.mark.parametrize(
    ("wanted", "present"),
    [
        ({"roleNames": ["a", "b"]}, {"roleNames": ["b", "a"]}),
        ({"permittedIps": ["10.0.0.0/8", "1.2.3.4"]}, {"permittedIps": ["1.2.3.4", "10.0.0.0/8"]}),
        (
            {"keyTenants": [{"tenantId": "T1", "roleNames": ["x", "y"]}, {"tenantId": "T2"}]},
            {
                "keyTenants": [
                    {"tenantId": "T2", "roleNames": [], "tenantName": "Two"},
                    {"tenantId": "T1", "roleNames": ["y", "x"], "tenantName": "One"},
                ]
            },
        ),
        ({"customClaims": {"tier": 2}}, {"customClaims": {"tier": 2.0}}),
        ({"description": ""}, {"description": None}),
        ({"customAttributes": {}}, {}),
    ],
)
def test_semantically_equal_values_make_no_diff(wanted: dict[str, Any], present: dict[str, Any]) -> None:
    assert diff_fields(desired(**wanted), server_key(**present)) == ()


@pytest.mark.parametrize(
    ("wanted", "present"),
    [
        ({"customClaims": {"tier": 1}}, {"customClaims": {"tier": "1"}}),
        ({"customClaims": {"prod": True}}, {"customClaims": {"prod": 1}}),
        ({"customAttributes": {"regions": ["eu", "us"]}}, {"customAttributes": {"regions": ["us", "eu"]}}),
        ({"roleNames": []}, {"roleNames": ["admin"]}),
        (
            {"keyTenants": [{"tenantId": "T1", "roleNames": ["x"]}]},
            {"keyTenants": [{"tenantId": "T1", "roleNames": []}]},
        ),
        ({"name": "new"}, {"name": "ci"}),
    ],
)
def test_real_differences_are_found(wanted: dict[str, Any], present: dict[str, Any]) -> None:
    changes = diff_fields(desired(**wanted), server_key(**present))
    assert [c.field for c in changes] == list(wanted)


def test_absent_fields_are_not_managed_and_server_fields_never_diff() -> None:
    key = server_key(roleNames=["admin"], description="anything", status="inactive", editable=True, expireTime=99)
    assert plan_key(desired(name="ci"), key).outcome is Outcome.UNCHANGED


def test_change_records_canonical_before_and_after() -> None:
    changes = diff_fields(desired(roleNames=["b", "a"]), server_key(roleNames=["c"]))
    assert [(c.field, c.before, c.after) for c in changes] == [("roleNames", ["c"], ["a", "b"])]


def test_update_body_holds_every_updatable_field_with_its_final_value() -> None:
    current = server_key(
        description="kept",
        permittedIps=["1.2.3.4"],
        keyTenants=[{"tenantId": "T1", "roleNames": ["r"], "tenantName": "One"}],
    )
    body = update_body(desired(name="renamed", customClaims={"a": 1}), current)
    assert body == {
        "id": "K1",
        "name": "renamed",
        "description": "kept",
        "roleNames": [],
        "keyTenants": [{"tenantId": "T1", "roleNames": ["r"]}],
        "customClaims": {"a": 1},
        "permittedIps": ["1.2.3.4"],
        "customAttributes": {},
    }


def test_outcomes_missing_not_editable_conflict_and_unmanaged() -> None:
    state = DesiredState(
        keys=(
            DesiredKey("K1", {"name": "x"}, HERE),
            DesiredKey("K2", {"name": "y"}, HERE),
            DesiredKey("K3", {"keyTenants": [{"tenantId": "T1"}]}, HERE),
            DesiredKey("K4", {"name": "same"}, HERE),
        )
    )
    observed = [
        server_key(id="K2", name="old", editable=False),
        server_key(id="K3", roleNames=["admin"]),
        server_key(id="K4", name="same", editable=False),
        server_key(id="K9", name="stranger"),
    ]
    plan = compute_plan(state, observed)
    outcomes = {item.key.id: item.outcome for item in plan.keys}
    assert outcomes == {
        "K1": Outcome.MISSING,
        "K2": Outcome.NOT_EDITABLE,
        "K3": Outcome.CONFLICT,
        "K4": Outcome.UNCHANGED,  # not editable, but nothing to change: not an error
    }
    assert "roleNames must be set to []" in plan.keys[2].reason
    assert [(k.id, k.name) for k in plan.unmanaged] == [("K9", "stranger")]
    assert plan.changes == ()
    assert {k.key.id for k in plan.errors} == {"K1", "K2", "K3"}


def test_only_differing_keys_get_a_body() -> None:
    state = DesiredState(keys=(DesiredKey("K1", {"name": "a"}, HERE), DesiredKey("K2", {"name": "b"}, HERE)))
    plan = compute_plan(state, [server_key(id="K1", name="a"), server_key(id="K2", name="old")])
    assert [(k.key.id, k.outcome, k.body is not None) for k in plan.keys] == [
        ("K1", Outcome.UNCHANGED, False),
        ("K2", Outcome.UPDATE, True),
    ]


@pytest.mark.parametrize(
    ("wanted", "present"),
    [
        ({"customClaims": {"n": 9007199254740993}}, {"customClaims": {"n": 9007199254740992}}),  # beyond 2**53
        ({"customAttributes": {"n": [9007199254740993]}}, {"customAttributes": {"n": [9007199254740992.0]}}),
        ({"customAttributes": {"n": [1]}}, {"customAttributes": {"n": [True]}}),
        ({"customAttributes": {"n": ["1"]}}, {"customAttributes": {"n": [1]}}),
        ({"permittedIps": ["2001:db8::1"]}, {"permittedIps": ["2001:db8::1/128"]}),  # a range is not an address
    ],
)
def test_exact_values_differ(wanted: dict[str, Any], present: dict[str, Any]) -> None:
    assert [c.field for c in diff_fields(desired(**wanted), server_key(**present))] == list(wanted)


@pytest.mark.parametrize(
    ("wanted", "present"),
    [
        ({"customClaims": {"n": 9007199254740993}}, {"customClaims": {"n": 9007199254740993}}),
        ({"customAttributes": {"n": [2]}}, {"customAttributes": {"n": [2.0]}}),
        ({"permittedIps": ["2001:0db8::1", "10.0.0.0/8"]}, {"permittedIps": ["10.0.0.0/8", "2001:db8::1"]}),
        ({"permittedIps": ["2001:DB8::/32"]}, {"permittedIps": ["2001:db8::/32", "2001:0db8::/32"]}),
        (
            {"keyTenants": [{"tenantId": "T1", "roleNames": ["a", "b"]}]},
            {"keyTenants": [{"tenantId": "T1", "roleNames": ["a"]}, {"tenantId": "T1", "roleNames": ["b"]}]},
        ),
    ],
)
def test_one_meaning_written_two_ways_is_no_drift(wanted: dict[str, Any], present: dict[str, Any]) -> None:
    assert diff_fields(desired(**wanted), server_key(**present)) == ()


def test_export_then_plan_is_in_sync_for_odd_server_values(start_emulator: Any, tmp_path: Path) -> None:
    """Duplicate tenant entries, two spellings of one address, integers beyond 2**53: what export
    writes, plan finds equal (exit 0, no empty `keyTenants:` diff)."""
    emulator = start_emulator(
        [
            {
                "id": "K1",
                "name": "odd",
                "keyTenants": [{"tenantId": "T1", "roleNames": ["a"]}, {"tenantId": "T1", "roleNames": ["b"]}],
                "permittedIps": ["2001:0DB8::1", "2001:db8::1", "10.0.0.0/8"],
                "customClaims": {"big": 9007199254740993},
            }
        ]
    )
    out = tmp_path / "keys.yaml"
    exported = run_cli(["export", "--out", str(out)], cli_env(emulator))
    assert exported.code == 0, exported.output
    planned = run_cli(["plan", str(out)], cli_env(emulator))
    assert planned.code == 0, planned.output


_json_scalars = (
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from([1.0, 2.0, 0.5]) | st.sampled_from("ab")
)
_json = st.recursive(
    _json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("xy"), inner, max_size=2)
)
_ips = st.sampled_from(["10.0.0.0/8", "2001:db8::1", "2001:0DB8::1", "a", "b"])
_field_values = {
    "name": st.sampled_from(["a", "b"]) | _json,
    "roleNames": st.lists(st.sampled_from(["r", "s", "t"]), max_size=3) | _json,
    "permittedIps": st.lists(_ips, max_size=3) | _json,
    "keyTenants": st.lists(
        st.fixed_dictionaries(
            {"tenantId": st.sampled_from(["T1", "T2"])},
            optional={"roleNames": st.lists(st.sampled_from(["r", "s"]), max_size=2), "tenantName": st.just("n")},
        ),
        max_size=3,
    ),
    "customClaims": st.dictionaries(st.sampled_from("xyz"), _json, max_size=3) | st.none(),
}


@settings(max_examples=250, deadline=None)
@given(data=st.data())
def test_the_spelling_shortcut_never_hides_a_difference(data: st.DataObject) -> None:
    """`same_field` lets a key in sync skip the normal forms: it may say "compare them" when they
    are equal, never "equal" when they differ (`true` vs `1`, `1` vs `1.0`, order, tenantName)."""
    name = data.draw(st.sampled_from(sorted(_field_values)))
    wanted = data.draw(_field_values[name])
    present = data.draw(st.one_of(st.just(copy.deepcopy(wanted)), _field_values[name]))
    try:
        equal = normalize_field(name, wanted) == normalize_field(name, present)
    except (TypeError, KeyError, AttributeError):
        assume(False)
    if same_field(name, wanted, present):
        assert equal
    if name in ("roleNames", "permittedIps") and type(wanted) is list and all(type(i) is str for i in wanted):
        assert same_field(name, wanted, list(reversed(wanted)))  # another order: still the shortcut
