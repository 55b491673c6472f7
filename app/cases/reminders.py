"""The `deadlines.remind` job: a reminder before a case's deadline, an escalation after it.

The rules (which notice a case owes today, who hears of it) are
`app/domain/deadline_notices.py`; this module finds the cases that owe one and writes
it. A notice is claimed by its row in `deadline_notices` (primary key: case, deadline,
due date, notice) with `INSERT ... ON CONFLICT DO NOTHING RETURNING`, in the same
transaction as its outbox events: two workers at once write it once (the second waits on
the first's key and then finds it taken), and a crash before the commit loses both the
claim and the events, so the next run sends it. Drill cases are handled like real ones;
the outbox records their notices on the campaign instead of writing them.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta

from sqlalchemy import ColumnElement, Row, and_, case, exists, literal, or_, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.cases.models import Case, DeadlineNotice
from app.cases.service import deadlines
from app.context import AppContext
from app.db.session import own_transaction
from app.domain.clock import organisation_date
from app.domain.deadline_notices import (
    DeadlineName,
    DueNotice,
    NoticeKind,
    ReminderDays,
    addressees,
    notice_due,
)
from app.jobs.registry import JobResult
from app.notifications.outbox import Outbox

# Cases locked and written per transaction: a crash loses at most one batch's work in
# progress (to be done again by the next run), and staff wait at most a batch's
# milliseconds for a case the job holds.
BATCH_SIZE = 100
# Cases handled per run. Cases that already had their notice are not walked again, so the
# next run (an hour later) picks up where this one stopped, earliest deadline first; even
# a first run after deployment over years of history ends in bounded time.
MAX_CASES_PER_RUN = 1000

_FACTS = (
    Case.id,
    Case.state,
    Case.acknowledge_due_on,
    Case.acknowledged_on,
    Case.feedback_due_on,
    Case.feedback_given_on,
    Case.next_due_on,
    Case.assignee_id,
    Case.drill_campaign_id,
)


def _owing_notice(today: date, days: ReminderDays) -> ColumnElement[bool]:
    """Cases whose waiting deadline owes a notice today that has not been sent: the SQL
    face of `notice_due`, so that a case already told is not walked again every hour.
    `next_due_on` is the waiting deadline's date (`Deadlines.next_due`)."""
    waiting = case(
        (Case.acknowledged_on.is_(None), literal(DeadlineName.ACKNOWLEDGE.value)),
        else_=literal(DeadlineName.FEEDBACK.value),
    )
    owed = case(
        (Case.next_due_on < today, literal(NoticeKind.MISSED.value)),
        else_=literal(NoticeKind.REMINDER.value),
    )
    sent = exists().where(
        DeadlineNotice.case_id == Case.id,
        DeadlineNotice.deadline == waiting,
        DeadlineNotice.due_on == Case.next_due_on,
        DeadlineNotice.notice == owed,
    )
    in_reminder_window = or_(
        and_(Case.acknowledged_on.is_(None), Case.next_due_on <= today + timedelta(days=days.acknowledge)),
        and_(Case.acknowledged_on.is_not(None), Case.next_due_on <= today + timedelta(days=days.feedback)),
    )
    return and_(
        # The range ix_cases_next_due serves; the rest is checked on the rows it finds.
        Case.next_due_on.is_not(None),
        Case.next_due_on <= today + timedelta(days=days.longest),
        in_reminder_window,
        ~sent,
    )


async def _next_batch(
    session: AsyncSession, today: date, days: ReminderDays, after: tuple[date, object] | None, limit: int
) -> list[Row]:
    query = select(*_FACTS).where(_owing_notice(today, days))
    if after is not None:
        query = query.where(tuple_(Case.next_due_on, Case.id) > tuple_(*after))
    # FOR NO KEY UPDATE: staff changing a case right now (acknowledging it, say) finish
    # first or wait for this batch, so a notice is decided on the facts that commit;
    # SKIP LOCKED: a second worker takes the cases the first does not hold, and a case
    # held by staff is left to the next run. Rows that merely reference the case (a
    # reporter's message) are not held up.
    query = (
        query.order_by(Case.next_due_on, Case.id)
        .limit(limit)
        .with_for_update(key_share=True, skip_locked=True)
    )
    return list((await session.execute(query)).all())


async def _claim(session: AsyncSession, row: Row, notice: DueNotice, today: date) -> bool:
    """True if this transaction is the one to send `notice` (its row was not there)."""
    claimed = await session.scalar(
        insert(DeadlineNotice)
        .values(
            case_id=row.id,
            deadline=notice.deadline.value,
            due_on=notice.due_on,
            notice=notice.notice.value,
            sent_on=today,
        )
        .on_conflict_do_nothing()
        .returning(DeadlineNotice.case_id)
    )
    return claimed is not None


async def _announce(outbox: Outbox, row: Row, notice: DueNotice, now: datetime) -> None:
    for addressee in addressees(notice.notice, assigned=row.assignee_id is not None):
        await outbox.emit(
            addressee.kind,
            now,
            audience=addressee.audience,
            case_id=row.id,
            drill_campaign_id=row.drill_campaign_id,
            recipient_id=row.assignee_id if addressee.to_assignee else None,
            details=notice.details(),
        )


async def send_deadline_notices(context: AppContext) -> JobResult:
    """Send every reminder and escalation owed today (up to MAX_CASES_PER_RUN cases),
    each once however often or however many workers run this."""
    settings = context.settings
    now = context.clock()
    today = organisation_date(now, settings.zone)
    days = ReminderDays(settings.notify.acknowledge_reminder_days, settings.notify.feedback_reminder_days)
    sent: Counter[NoticeKind] = Counter()
    handled = 0
    after: tuple[date, object] | None = None
    while handled < MAX_CASES_PER_RUN:
        limit = min(BATCH_SIZE, MAX_CASES_PER_RUN - handled)
        async with own_transaction(context.sessionmaker) as session:
            rows = await _next_batch(session, today, days, after, limit)
            outbox = Outbox(session, settings)
            for row in rows:
                notice = notice_due(deadlines(row), today, days)
                # None only if the query and the rule disagreed; the rule decides.
                if notice is not None and await _claim(session, row, notice, today):
                    await _announce(outbox, row, notice, now)
                    sent[notice.notice] += 1
        handled += len(rows)
        if len(rows) < limit:
            break
        after = (rows[-1].next_due_on, rows[-1].id)
    return {
        "cases": handled,
        "reminders": sent[NoticeKind.REMINDER],
        "missed": sent[NoticeKind.MISSED],
        "cap_reached": handled >= MAX_CASES_PER_RUN,
    }
