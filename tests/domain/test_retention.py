"""Retention's rules: the outcome of a closed case, and the day its content goes."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from app.domain.errors import Conflict
from app.domain.retention import (
    CasePurged,
    Outcome,
    RetentionPolicy,
    outcome_of,
    refuse_if_purged,
    resolutions_of,
)
from app.domain.triage import TRANSITIONS, Action, CaseState, Resolution

POLICY = RetentionPolicy(dismissed_days=60, substantiated_days=1825, unsubstantiated_days=90, referred_days=365)


@pytest.mark.parametrize(
    ("resolution", "outcome"),
    [
        ("not_admissible", Outcome.DISMISSED),
        ("duplicate", Outcome.DISMISSED),
        ("substantiated", Outcome.SUBSTANTIATED),
        ("unsubstantiated", Outcome.UNSUBSTANTIATED),
        (None, Outcome.REFERRED),
        (Resolution.DUPLICATE, Outcome.DISMISSED),
    ],
)
def test_the_outcome_of_a_closed_case_comes_from_its_resolution(resolution, outcome) -> None:
    assert outcome_of(resolution) is outcome


def test_every_way_of_closing_a_case_has_an_outcome_and_every_outcome_a_way_in() -> None:
    closings = [transition for transition in TRANSITIONS.values() if transition.target is CaseState.CLOSED]
    closing_resolutions: set[Resolution | None] = set()
    for transition in closings:
        closing_resolutions |= set(transition.resolutions) or {None}  # close_referral carries none
    assert closing_resolutions == set(Resolution) | {None}
    assert {outcome_of(resolution) for resolution in closing_resolutions} == set(Outcome)
    assert TRANSITIONS[Action.CLOSE_REFERRAL].resolutions == frozenset()
    for outcome in Outcome:
        assert all(outcome_of(resolution) is outcome for resolution in resolutions_of(outcome))


def test_an_unknown_resolution_is_refused_rather_than_given_some_period() -> None:
    with pytest.raises(ValueError):
        outcome_of("withdrawn")


@pytest.mark.parametrize(
    ("resolution", "days"),
    [("not_admissible", 60), ("duplicate", 60), ("substantiated", 1825), ("unsubstantiated", 90), (None, 365)],
)
def test_content_is_kept_the_policy_s_days_from_the_closing_day(resolution, days) -> None:
    closed_on = date(2026, 3, 1)
    purge_on = POLICY.purge_on(closed_on, resolution)
    assert purge_on == closed_on + timedelta(days=days)
    assert not POLICY.is_due(closed_on, resolution, purge_on - timedelta(days=1))  # the last day kept
    assert POLICY.is_due(closed_on, resolution, purge_on)
    assert POLICY.is_due(closed_on, resolution, purge_on + timedelta(days=400))
    # The query's bound agrees with the rule on both sides of the day.
    bound = POLICY.closed_on_or_before(outcome_of(resolution), purge_on)
    assert bound == closed_on
    assert POLICY.is_due(bound, resolution, purge_on)
    assert not POLICY.is_due(bound + timedelta(days=1), resolution, purge_on)


def test_sixty_days_from_the_first_of_march_is_the_thirtieth_of_april() -> None:
    assert POLICY.purge_on(date(2026, 3, 1), "duplicate") == date(2026, 4, 30)


def test_an_open_or_reopened_case_has_no_closing_day_and_is_never_due() -> None:
    assert not POLICY.is_due(None, None, date(2099, 1, 1))
    assert not POLICY.is_due(None, "substantiated", date(2099, 1, 1))


@pytest.mark.parametrize("days", [0, -1])
def test_a_policy_that_would_delete_a_case_the_day_it_closes_is_refused(days) -> None:
    with pytest.raises(ValueError, match="referred"):
        RetentionPolicy(dismissed_days=60, substantiated_days=1825, unsubstantiated_days=60, referred_days=days)


def test_acts_on_a_purged_case_are_refused_as_a_conflict_naming_the_day() -> None:
    refuse_if_purged(None, "This case cannot be reopened")  # kept: nothing to refuse
    with pytest.raises(CasePurged) as refused:
        refuse_if_purged(date(2026, 5, 2), "This case cannot be reopened")
    assert isinstance(refused.value, Conflict) and refused.value.status == 409
    assert refused.value.detail.startswith("This case cannot be reopened: its content was deleted by retention on 2026-05-02")
    assert refused.value.extensions == {"purged_on": "2026-05-02"}
