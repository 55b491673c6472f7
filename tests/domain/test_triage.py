"""The transition table against the contract, over every (state, action, role) combination.

The contract's table is written out again here as plain text on purpose: a test that
imported `TRANSITIONS` would agree with any mistake in it."""

from __future__ import annotations

import itertools
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.errors import Forbidden, InvalidInput
from app.domain.staff import Role
from app.domain.triage import (
    Action,
    CaseState,
    Deadlines,
    Request,
    Resolution,
    StaleVersion,
    TransitionNotAllowed,
    add_months,
    allowed_actions,
    decide,
    feedback_due,
    may_see_case,
)

# action | from | to | who   (copied from the public contract, docs/contract.md)
CONTRACT = """
acknowledge      | received                 | acknowledged  | triage, supervisor
start_assessment | acknowledged             | assessing     | triage, supervisor
accept           | assessing                | investigating | triage, supervisor
dismiss          | assessing                | closed        | triage, supervisor
refer            | assessing, investigating | referred      | triage, supervisor, assigned investigator
conclude         | investigating            | closed        | assigned investigator, supervisor
close_referral   | referred                 | closed        | triage, supervisor
reopen           | closed                   | assessing     | supervisor
"""


def _contract() -> dict[str, tuple[set[str], str, set[str]]]:
    table = {}
    for line in CONTRACT.strip().splitlines():
        action, sources, target, who = (cell.strip() for cell in line.split("|"))
        table[action] = ({s.strip() for s in sources.split(",")}, target, {w.strip() for w in who.split(",")})
    return table


TABLE = _contract()
# The fields that make each request complete (the contract's parentheses).
COMPLETE = {
    "accept": {"assignee": "ivan"},
    "dismiss": {"resolution": Resolution.DUPLICATE},
    "conclude": {"resolution": Resolution.SUBSTANTIATED},
    "reopen": {"reason": "new evidence"},
}


def contract_allows(action: str, role: Role, is_assignee: bool) -> bool:
    who = TABLE[action][2]
    return role.value in who or (is_assignee and f"assigned {role.value}" in who)


def test_the_table_covers_exactly_the_contracts_actions_and_states() -> None:
    assert set(TABLE) == {action.value for action in Action}
    states = {state for sources, target, _ in TABLE.values() for state in (*sources, target)}
    assert states == {state.value for state in CaseState}


@pytest.mark.parametrize(
    ("state", "action", "role", "is_assignee"),
    list(itertools.product(CaseState, Action, Role, (False, True))),
)
def test_every_combination_matches_the_contract(state: CaseState, action: Action, role: Role, is_assignee: bool) -> None:
    sources, target, _ = TABLE[action.value]
    request = Request(action=action, expected_version=4, **COMPLETE.get(action.value, {}))
    if state.value not in sources:
        with pytest.raises(TransitionNotAllowed) as refused:
            decide(state, 4, request, role, is_assignee)
        possible = [name for name, (from_states, _, _) in TABLE.items() if state.value in from_states]
        assert refused.value.status == 409
        assert refused.value.extensions["allowed_actions"] == possible
        for name in possible:
            assert name in refused.value.detail
    elif not contract_allows(action.value, role, is_assignee):
        with pytest.raises(Forbidden):
            decide(state, 4, request, role, is_assignee)
    else:
        assert decide(state, 4, request, role, is_assignee) == CaseState(target)


@pytest.mark.parametrize(("state", "role", "is_assignee"), list(itertools.product(CaseState, Role, (False, True))))
def test_allowed_actions_are_what_decide_accepts(state: CaseState, role: Role, is_assignee: bool) -> None:
    expected = [
        action
        for action in TABLE
        if state.value in TABLE[action][0] and contract_allows(action, role, is_assignee)
    ]
    assert allowed_actions(state, role, is_assignee) == expected


def test_a_stale_version_is_refused_before_anything_else() -> None:
    # Even an action impossible from this state: the caller's view is what is wrong.
    with pytest.raises(StaleVersion) as refused:
        decide(CaseState.CLOSED, 7, Request(Action.ACKNOWLEDGE, expected_version=6), Role.AUDITOR, False)
    assert refused.value.status == 409
    assert refused.value.extensions["current_version"] == 7


@pytest.mark.parametrize(
    ("state", "action", "fields", "complaint"),
    [
        (CaseState.ASSESSING, Action.ACCEPT, {}, "needs: assignee"),
        (CaseState.ASSESSING, Action.DISMISS, {}, "needs: resolution"),
        (CaseState.ASSESSING, Action.DISMISS, {"resolution": Resolution.SUBSTANTIATED}, "not_admissible"),
        (CaseState.INVESTIGATING, Action.CONCLUDE, {}, "needs: resolution"),
        (CaseState.INVESTIGATING, Action.CONCLUDE, {"resolution": Resolution.DUPLICATE}, "substantiated"),
        (CaseState.CLOSED, Action.REOPEN, {}, "needs: reason"),
        (CaseState.RECEIVED, Action.ACKNOWLEDGE, {"assignee": "ivan"}, "does not take: assignee"),
        (CaseState.ASSESSING, Action.REFER, {"resolution": Resolution.DUPLICATE}, "does not take: resolution"),
    ],
)
def test_missing_or_misplaced_fields_are_422(state, action, fields, complaint) -> None:
    with pytest.raises(InvalidInput) as refused:
        decide(state, 1, Request(action, expected_version=1, **fields), Role.SUPERVISOR, True)
    assert complaint in refused.value.detail


def test_a_reason_is_welcome_on_any_action() -> None:
    request = Request(Action.ACKNOWLEDGE, expected_version=1, reason="seen on Monday")
    assert decide(CaseState.RECEIVED, 1, request, Role.TRIAGE, False) is CaseState.ACKNOWLEDGED


@pytest.mark.parametrize(("role", "is_assignee"), list(itertools.product(Role, (False, True))))
def test_who_sees_cases(role: Role, is_assignee: bool) -> None:
    expected = role in (Role.TRIAGE, Role.SUPERVISOR) or (role is Role.INVESTIGATOR and is_assignee)
    assert may_see_case(role, is_assignee) is expected


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2026, 1, 31), 1, date(2026, 2, 28)),
        (date(2028, 1, 31), 1, date(2028, 2, 29)),
        (date(2026, 11, 30), 3, date(2027, 2, 28)),
        (date(2026, 10, 15), 3, date(2027, 1, 15)),
        (date(2026, 12, 31), 12, date(2027, 12, 31)),
    ],
)
def test_add_months_clamps_to_the_end_of_the_month(day: date, months: int, expected: date) -> None:
    assert add_months(day, months) == expected


def test_feedback_is_due_three_months_after_the_acknowledgement_or_its_deadline() -> None:
    assert feedback_due(date(2026, 3, 8), None, 3) == date(2026, 6, 8)
    assert feedback_due(date(2026, 3, 8), date(2026, 3, 2), 3) == date(2026, 6, 2)


@given(
    acknowledged=st.booleans(),
    feedback=st.booleans(),
    closed=st.booleans(),
    today_offset=st.integers(min_value=-10, max_value=200),
)
def test_overdue_means_a_deadline_passed_without_its_act_on_an_open_case(
    acknowledged: bool, feedback: bool, closed: bool, today_offset: int
) -> None:
    received = date(2026, 1, 1)
    deadlines = Deadlines(
        acknowledge_due_on=date(2026, 1, 8),
        acknowledged_on=date(2026, 1, 5) if acknowledged else None,
        feedback_due_on=date(2026, 4, 5) if acknowledged else date(2026, 4, 8),
        feedback_given_on=date(2026, 2, 1) if feedback else None,
        closed=closed,
    )
    today = date.fromordinal(received.toordinal() + today_offset)
    late_acknowledgement = not acknowledged and today > deadlines.acknowledge_due_on
    late_feedback = not feedback and today > deadlines.feedback_due_on
    assert deadlines.overdue(today) is (not closed and (late_acknowledgement or late_feedback))
