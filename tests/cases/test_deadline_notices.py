"""The `deadlines.remind` job on a real database: what it writes to the outbox, and that
it writes each notice once however often and however many workers run it, and nothing
when its transaction does not commit."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import create_async_engine

from app.cases import reminders
from app.cases.models import Case, DeadlineNotice
from app.cases.reminders import send_deadline_notices
from app.context import AppContext
from app.db.session import SessionMaker, build_sessionmaker
from app.domain.clock import organisation_date, utc_now
from app.domain.deadline_notices import ReminderDays, notice_due
from app.domain.kdf import TEST_KEY_DERIVATION
from app.domain.triage import Deadlines
from app.drills.models import DrillEffect
from app.jobs.catalogue import BY_NAME
from app.notifications.models import NotificationEvent
from app.notifications.outbox import Outbox
from app.settings import Settings
from app.staff.models import StaffUser
from tests.cases.helpers import insert_case
from tests.conftest import FixedClock

APPROACHING, MISSED = "case.deadline_approaching", "case.deadline_missed"


@pytest.fixture
async def context(settings: Settings, fresh_database_url: str) -> AsyncIterator[AppContext]:
    """What a worker runs the job with: its own engine on a database where commits are real."""
    engine = create_async_engine(fresh_database_url)
    clock = FixedClock(utc_now())
    yield AppContext.build(
        settings.with_database_url(fresh_database_url),
        build_sessionmaker(engine),
        clock=clock,
        key_derivation=TEST_KEY_DERIVATION,
    )
    await engine.dispose()


def today_of(context: AppContext) -> date:
    return organisation_date(context.clock(), context.settings.zone)


async def add_investigator(sessionmaker: SessionMaker) -> StaffUser:
    async with sessionmaker() as session:
        user = StaffUser(username=f"investigator-{uuid.uuid4().hex[:8]}", role="investigator", password_hash="!")
        session.add(user)
        await session.commit()
    return user


async def events(context: AppContext, case_id: uuid.UUID | None = None) -> list[tuple]:
    """(case, kind, audience, recipient, details) of every outbox event, in a stable order."""
    async with context.sessionmaker() as session:
        query = select(NotificationEvent)
        if case_id is not None:
            query = query.where(NotificationEvent.case_id == case_id)
        rows = (await session.scalars(query)).all()
    return sorted(
        ((row.case_id, row.kind, row.audience, row.recipient_id, row.details) for row in rows),
        key=lambda event: tuple(map(str, event)),
    )


async def notices(context: AppContext) -> list[tuple]:
    async with context.sessionmaker() as session:
        rows = (await session.scalars(select(DeadlineNotice))).all()
    return sorted((row.case_id, row.deadline, row.due_on, row.notice) for row in rows)


async def test_a_reminder_the_day_before_the_acknowledgement_goes_to_the_assignee_or_to_triage(
    context: AppContext,
) -> None:
    today = today_of(context)
    investigator = await add_investigator(context.sessionmaker)
    tomorrow = today + timedelta(days=1)
    assigned = await insert_case(context.sessionmaker, acknowledge_due_on=tomorrow, assignee_id=investigator.id)
    unassigned = await insert_case(context.sessionmaker, acknowledge_due_on=tomorrow)
    # Outside the two reminder days, today and tomorrow.
    not_yet = await insert_case(context.sessionmaker, acknowledge_due_on=today + timedelta(days=4))

    result = await send_deadline_notices(context)

    details = {"deadline": "acknowledge", "due_on": tomorrow.isoformat()}
    assert await events(context, assigned.id) == [(assigned.id, APPROACHING, ["triage"], investigator.id, details)]
    assert await events(context, unassigned.id) == [(unassigned.id, APPROACHING, ["triage"], None, details)]
    assert await events(context, not_yet.id) == []
    assert result == {"cases": 2, "reminders": 2, "missed": 0, "cap_reached": False}

    # Run again, in the same hour or a day later: nothing new.
    before = await events(context)
    assert (await send_deadline_notices(context))["cases"] == 0
    context.clock.now += timedelta(days=1)  # the due day itself: the same reminder, still owed once
    await send_deadline_notices(context)
    assert await events(context) == before


async def test_two_workers_at_once_write_each_notice_once(
    context: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small batches, so that the runs interleave over many transactions.
    monkeypatch.setattr(reminders, "BATCH_SIZE", 3)
    today = today_of(context)
    investigator = await add_investigator(context.sessionmaker)
    cases = [
        await insert_case(
            context.sessionmaker,
            acknowledge_due_on=today + timedelta(days=offset % 4 - 2),
            assignee_id=investigator.id if offset % 2 else None,
        )
        for offset in range(20)
    ]

    results = await asyncio.gather(*(send_deadline_notices(context) for _ in range(3)))

    owed = {case.id: notice_due(deadlines_of(case), today, days_of(context)) for case in cases}
    claimed = sorted((case_id, n.deadline, n.due_on, n.notice) for case_id, n in owed.items() if n)
    assert await notices(context) == claimed
    expected = []
    for case in cases:
        notice, assignee = owed[case.id], case.assignee_id
        if notice is None:
            continue
        if notice.notice == "reminder":
            expected.append((case.id, APPROACHING, ["triage"], assignee))
        elif assignee is not None:
            expected += [(case.id, MISSED, ["supervisor"], None), (case.id, MISSED, ["triage"], assignee)]
        else:
            expected.append((case.id, MISSED, ["supervisor", "triage"], None))
    written = [event[:4] for event in await events(context)]
    assert written == sorted(expected, key=lambda event: tuple(map(str, event)))
    assert sum(r["reminders"] + r["missed"] for r in results) == sum(1 for n in owed.values() if n)


async def test_a_missed_deadline_is_escalated_to_supervisors_once_however_long_ago(context: AppContext) -> None:
    today = today_of(context)
    investigator = await add_investigator(context.sessionmaker)
    yesterday = today - timedelta(days=1)
    assigned = await insert_case(context.sessionmaker, acknowledge_due_on=yesterday, assignee_id=investigator.id)
    # Missed half a year before the feature was deployed: one notice, not one per day.
    long_ago = today - timedelta(days=180)
    forgotten = await insert_case(context.sessionmaker, received_on=long_ago - timedelta(days=7))

    await send_deadline_notices(context)
    for _ in range(3):
        context.clock.now += timedelta(days=1)
        await send_deadline_notices(context)

    assert await events(context, assigned.id) == [
        (assigned.id, MISSED, ["supervisor"], None, {"deadline": "acknowledge", "due_on": yesterday.isoformat()}),
        (
            assigned.id,
            MISSED,
            ["triage"],
            investigator.id,
            {"deadline": "acknowledge", "due_on": yesterday.isoformat()},
        ),
    ]
    assert await events(context, forgotten.id) == [
        (
            forgotten.id,
            MISSED,
            ["supervisor", "triage"],
            None,
            {"deadline": "acknowledge", "due_on": long_ago.isoformat()},
        )
    ]


async def test_an_acknowledged_case_is_reminded_of_its_feedback_and_a_moved_deadline_anew(
    context: AppContext,
) -> None:
    today = today_of(context)
    # Acknowledged late (its acknowledgement deadline passed unnoticed): that deadline
    # waits no more, so it is not escalated after the fact.
    feedback_due_on = today + timedelta(days=10)
    case = await insert_case(
        context.sessionmaker,
        received_on=today - timedelta(days=30),
        acknowledged_on=today - timedelta(days=20),
        state="acknowledged",
        feedback_due_on=feedback_due_on,
    )
    far = await insert_case(
        context.sessionmaker,
        acknowledged_on=today,
        state="acknowledged",
        feedback_due_on=today + timedelta(days=15),  # the reminder starts at 14 days
    )

    await send_deadline_notices(context)
    assert await events(context, case.id) == [
        (case.id, APPROACHING, ["triage"], None, {"deadline": "feedback", "due_on": feedback_due_on.isoformat()})
    ]
    assert await events(context, far.id) == []

    # The deadline moves: it is a deadline of its own, with its own reminder.
    moved = feedback_due_on + timedelta(days=3)
    async with context.sessionmaker() as session:
        await session.execute(
            update(Case).where(Case.id == case.id).values(feedback_due_on=moved, next_due_on=moved)
        )
        await session.commit()
    await send_deadline_notices(context)
    assert [event[4]["due_on"] for event in await events(context, case.id)] == sorted(
        [feedback_due_on.isoformat(), moved.isoformat()]
    )


async def test_a_closed_case_or_one_whose_acts_are_done_hears_nothing(context: AppContext) -> None:
    today = today_of(context)
    closed = await insert_case(
        context.sessionmaker, state="closed", resolution="duplicate", acknowledge_due_on=today - timedelta(days=1)
    )
    done = await insert_case(
        context.sessionmaker,
        state="assessing",
        acknowledged_on=today - timedelta(days=3),
        feedback_given_on=today - timedelta(days=1),
        feedback_due_on=today - timedelta(days=1),
    )
    assert closed.next_due_on is None and done.next_due_on is None

    assert (await send_deadline_notices(context))["cases"] == 0
    assert await events(context) == [] and await notices(context) == []


async def test_a_drill_case_notice_is_a_simulated_effect_on_its_campaign_and_never_an_event(
    context: AppContext,
) -> None:
    today = today_of(context)
    drill = await insert_case(context.sessionmaker, is_drill=True, blind=True, acknowledge_due_on=today)

    await send_deadline_notices(context)
    await send_deadline_notices(context)

    assert await events(context) == []
    async with context.sessionmaker() as session:
        effects = (await session.execute(select(DrillEffect.case_id, DrillEffect.campaign_id, DrillEffect.kind))).all()
    assert effects == [(drill.id, drill.drill_campaign_id, "notification")]
    # Claimed like a real one, so it is not simulated again every hour.
    assert await notices(context) == [(drill.id, "acknowledge", today, "reminder")]


async def test_a_crash_half_way_loses_no_notice_and_doubles_none(
    context: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim and its events commit together: the batch under way when the worker dies
    leaves neither, and the next run sends exactly what was not sent."""
    monkeypatch.setattr(reminders, "BATCH_SIZE", 2)
    today = today_of(context)
    cases = [await insert_case(context.sessionmaker, acknowledge_due_on=today) for _ in range(5)]
    real_emit = Outbox.emit
    emitted = itertools.count()

    async def dies_at_the_fourth_event(self, *args, **kwargs):
        if next(emitted) == 3:
            raise ConnectionResetError("the worker's connection dropped")
        return await real_emit(self, *args, **kwargs)

    monkeypatch.setattr(Outbox, "emit", dies_at_the_fourth_event)
    with pytest.raises(ConnectionResetError):
        await send_deadline_notices(context)
    # The first batch of two committed; the second batch's first claim and event did not.
    assert len(await notices(context)) == len(await events(context)) == 2
    assert {notice[0] for notice in await notices(context)} == {event[0] for event in await events(context)}

    monkeypatch.setattr(Outbox, "emit", real_emit)
    result = await send_deadline_notices(context)
    assert result["reminders"] == 3
    assert sorted(event[0] for event in await events(context)) == sorted(case.id for case in cases)


async def test_a_run_stops_at_its_cap_and_the_next_run_goes_on_from_there(
    context: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reminders, "MAX_CASES_PER_RUN", 3)
    monkeypatch.setattr(reminders, "BATCH_SIZE", 2)
    today = today_of(context)
    for offset in range(5):
        await insert_case(context.sessionmaker, acknowledge_due_on=today - timedelta(days=offset))

    first, second, third = [await send_deadline_notices(context) for _ in range(3)]

    assert first == {"cases": 3, "reminders": 0, "missed": 3, "cap_reached": True}
    assert second == {"cases": 2, "reminders": 1, "missed": 1, "cap_reached": False}
    assert third["cases"] == 0
    assert len(await events(context)) == 5


async def test_the_cases_walked_are_exactly_those_the_rule_says_owe_a_notice(context: AppContext) -> None:
    """The query's filter (which keeps cases already told from being walked every hour)
    against the domain's rule, over every combination of state and distance to a deadline."""
    today = today_of(context)
    cases = []
    for offset, acknowledged, closed in itertools.product(range(-3, 17), (False, True), (False, True)):
        due_on = today + timedelta(days=offset)
        fields = dict(acknowledge_due_on=due_on)
        if acknowledged:
            fields.update(acknowledged_on=today - timedelta(days=1), feedback_due_on=due_on, state="assessing")
        if closed:
            fields.update(state="closed", resolution="duplicate")
        cases.append(await insert_case(context.sessionmaker, **fields))

    await send_deadline_notices(context)

    owed = [
        (case.id, notice.deadline.value, notice.due_on, notice.notice.value)
        for case in cases
        if (notice := notice_due(deadlines_of(case), today, days_of(context))) is not None
    ]
    assert len(owed) == 2 * 3 + 3 + 15  # missed (both deadlines), acknowledge: 3 days, feedback: 15
    assert await notices(context) == sorted(owed)


def test_the_job_is_in_the_catalogue_hourly() -> None:
    job = BY_NAME["deadlines.remind"]
    assert job.run is send_deadline_notices and job.schedule == "5 * * * *"


def deadlines_of(case: Case) -> Deadlines:
    return Deadlines(
        case.acknowledge_due_on,
        case.acknowledged_on,
        case.feedback_due_on,
        case.feedback_given_on,
        case.state == "closed",
    )


def days_of(context: AppContext) -> ReminderDays:
    notify = context.settings.notify
    return ReminderDays(notify.acknowledge_reminder_days, notify.feedback_reminder_days)

