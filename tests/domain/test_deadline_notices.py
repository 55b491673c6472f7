"""Which deadline notice a case owes on a given day, and who hears of it.

The expectations are written from the rule as the brief states it, day by day, not from
the module's own helpers: a test built on `waiting_deadline` would agree with any
mistake in it."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from app.domain.deadline_notices import (
    Addressee,
    DeadlineName,
    DueNotice,
    NoticeKind,
    ReminderDays,
    addressees,
    notice_due,
)
from app.domain.notifications import EventKind
from app.domain.triage import Deadlines

DAYS = ReminderDays(acknowledge=2, feedback=14)
ACK_DUE = date(2026, 12, 7)
FEEDBACK_DUE = date(2027, 3, 7)


def facts(
    acknowledged_on: date | None = None,
    feedback_given_on: date | None = None,
    closed: bool = False,
    feedback_due_on: date = FEEDBACK_DUE,
) -> Deadlines:
    return Deadlines(ACK_DUE, acknowledged_on, feedback_due_on, feedback_given_on, closed)


def test_the_acknowledgement_is_reminded_from_two_days_before_through_its_day_then_missed() -> None:
    owed = [notice_due(facts(), ACK_DUE + timedelta(days=offset), DAYS) for offset in range(-4, 4)]
    reminder = DueNotice(DeadlineName.ACKNOWLEDGE, ACK_DUE, NoticeKind.REMINDER)
    missed = DueNotice(DeadlineName.ACKNOWLEDGE, ACK_DUE, NoticeKind.MISSED)
    #                due -4, -3,   -2,       -1,       the day,  +1,     +2,     +3
    assert owed == [None, None, reminder, reminder, reminder, missed, missed, missed]


def test_once_acknowledged_the_feedback_deadline_is_the_one_waiting() -> None:
    acknowledged = facts(acknowledged_on=ACK_DUE + timedelta(days=3))  # late, and no longer waiting
    assert notice_due(acknowledged, ACK_DUE + timedelta(days=4), DAYS) is None
    assert notice_due(acknowledged, FEEDBACK_DUE - timedelta(days=15), DAYS) is None
    assert notice_due(acknowledged, FEEDBACK_DUE - timedelta(days=14), DAYS) == DueNotice(
        DeadlineName.FEEDBACK, FEEDBACK_DUE, NoticeKind.REMINDER
    )
    assert notice_due(acknowledged, FEEDBACK_DUE + timedelta(days=1), DAYS) == DueNotice(
        DeadlineName.FEEDBACK, FEEDBACK_DUE, NoticeKind.MISSED
    )


def test_a_case_that_waits_for_nothing_owes_nothing() -> None:
    long_after = FEEDBACK_DUE + timedelta(days=400)
    assert notice_due(facts(closed=True), ACK_DUE + timedelta(days=1), DAYS) is None
    assert notice_due(facts(closed=True), long_after, DAYS) is None
    done = facts(acknowledged_on=ACK_DUE, feedback_given_on=ACK_DUE + timedelta(days=20))
    assert notice_due(done, long_after, DAYS) is None


def test_a_deadline_missed_long_ago_owes_one_notice_whatever_the_day() -> None:
    """The notice's identity has no date of sending: a year of daily runs owes the same one."""
    owed = {notice_due(facts(), ACK_DUE + timedelta(days=n), DAYS) for n in range(1, 366)}
    assert owed == {DueNotice(DeadlineName.ACKNOWLEDGE, ACK_DUE, NoticeKind.MISSED)}


def test_zero_reminder_days_reminds_on_the_day_only() -> None:
    none_before = ReminderDays(acknowledge=0, feedback=0)
    assert notice_due(facts(), ACK_DUE - timedelta(days=1), none_before) is None
    assert notice_due(facts(), ACK_DUE, none_before).notice is NoticeKind.REMINDER


def test_details_name_the_deadline_and_its_date_and_nothing_else() -> None:
    notice = DueNotice(DeadlineName.FEEDBACK, FEEDBACK_DUE, NoticeKind.MISSED)
    assert notice.details() == {"deadline": "feedback", "due_on": "2027-03-07"}


def test_who_hears_of_a_notice() -> None:
    approaching, missed = EventKind.DEADLINE_APPROACHING, EventKind.DEADLINE_MISSED
    assert addressees(NoticeKind.REMINDER, assigned=True) == (Addressee(approaching, ("triage",), True),)
    assert addressees(NoticeKind.REMINDER, assigned=False) == (Addressee(approaching, ("triage",), False),)
    assert addressees(NoticeKind.MISSED, assigned=True) == (
        Addressee(missed, ("supervisor",), False),
        Addressee(missed, ("triage",), True),
    )
    assert addressees(NoticeKind.MISSED, assigned=False) == (
        Addressee(missed, ("supervisor", "triage"), False),
    )


days_around = st.integers(min_value=-40, max_value=400)


@given(
    received=st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 1, 1)),
    acknowledged_after=st.none() | st.integers(min_value=0, max_value=30),
    feedback_after=st.none() | st.integers(min_value=0, max_value=200),
    closed=st.booleans(),
    today_offset=days_around,
    ack_days=st.integers(min_value=0, max_value=30),
    feedback_days=st.integers(min_value=0, max_value=60),
)
def test_the_notice_owed_follows_the_waiting_deadline(
    received, acknowledged_after, feedback_after, closed, today_offset, ack_days, feedback_days
) -> None:
    acknowledge_due_on = received + timedelta(days=7)
    acknowledged_on = None if acknowledged_after is None else received + timedelta(days=acknowledged_after)
    feedback_due_on = (acknowledged_on or acknowledge_due_on) + timedelta(days=90)
    feedback_given_on = (
        None
        if acknowledged_on is None or feedback_after is None
        else acknowledged_on + timedelta(days=feedback_after)
    )
    case = Deadlines(acknowledge_due_on, acknowledged_on, feedback_due_on, feedback_given_on, closed)
    today = received + timedelta(days=today_offset)
    days = ReminderDays(ack_days, feedback_days)

    owed = notice_due(case, today, days)

    if closed or (acknowledged_on is not None and feedback_given_on is not None):
        assert owed is None
        return
    deadline, due_on, before = (
        (DeadlineName.ACKNOWLEDGE, acknowledge_due_on, ack_days)
        if acknowledged_on is None
        else (DeadlineName.FEEDBACK, feedback_due_on, feedback_days)
    )
    # The due date is the one the queue's "overdue" looks at.
    assert due_on == case.next_due()
    if today > due_on:
        assert owed == DueNotice(deadline, due_on, NoticeKind.MISSED)
        assert case.overdue(today)
    elif (due_on - today).days <= before:
        assert owed == DueNotice(deadline, due_on, NoticeKind.REMINDER)
    else:
        assert owed is None
