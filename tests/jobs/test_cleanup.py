"""The `cleanup.expired` job: what has expired goes, what has not stays, a second run finds
nothing, and two workers running it at the same moment do each deletion exactly once."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.audit.models import AuditEntry, AuditWindowCount
from app.audit.service import AuditLog
from app.cases.models import AttachmentChunk, Case, CaseAttachment
from app.db.session import SessionMaker
from app.domain.audit import counting_window_start
from app.domain.budgets import window_start
from app.domain.clock import organisation_date, utc_now
from app.domain.expiry import BATCH_SIZE
from app.intake.models import IntakeBudget
from app.jobs import cleanup
from app.jobs.catalogue import BY_NAME
from app.jobs.cleanup import cleanup_expired
from app.notifications.models import NotificationDelivery
from app.settings import Settings
from app.staff.models import StaffToken
from tests.cases.helpers import case_row
from tests.jobs.helpers import context_for, delivery, fresh_context, staff_user, staged_upload, token

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
NOTHING_LEFT = {
    "retry_data_forgotten": 0,
    "budget_windows_deleted": 0,
    "staged_uploads_discarded": 0,
    "audit_windows_written": 0,
    "staff_tokens_deleted": 0,
    "sent_deliveries_deleted": 0,
}


@dataclass
class Seeded:
    expected: dict[str, int]
    kept_cases: set
    kept_tokens: set
    kept_deliveries: set
    kept_uploads: set
    kept_budgets: set


def with_retry_data(received_on) -> Case:
    return case_row(received_on, idempotency_digest=os.urandom(32), sealed_replay=b"sealed", pow_digest=os.urandom(32))


async def seed(sessionmaker: SessionMaker, settings: Settings, now: datetime, copies: int = 1) -> Seeded:
    """`copies` of every expired row, next to one of each kind that has not quite expired."""
    today = organisation_date(now, settings.zone)
    current = window_start(now, settings.intake.budget_window_seconds)
    this_hour = counting_window_start(now)
    async with sessionmaker() as session:
        # Retry data: gone from cases received before yesterday, kept from yesterday's.
        forgotten = [with_retry_data(today - 2 * DAY) for _ in range(copies)]
        kept_cases = [with_retry_data(today - DAY), with_retry_data(today)]
        session.add_all(forgotten + kept_cases)
        # Budget windows: every ended one goes, of every kind; the current one stays.
        session.add_all(
            [
                IntakeBudget(kind="submissions", window_start=current - HOUR, used=3),
                IntakeBudget(kind="receipt_failures", window_start=current - 5 * HOUR, used=1),
                IntakeBudget(kind="submissions", window_start=current, used=2),
            ]
        )
        # Audit counts: each ended hour becomes one entry; the open hour keeps counting.
        session.add_all(
            [
                AuditWindowCount(action="auth.login_failed_unknown_user", window_start=this_hour - n * HOUR, count=n)
                for n in (1, 2, 3)
            ]
            + [AuditWindowCount(action="auth.login_failed_unknown_user", window_start=this_hour, count=9)]
        )
        await session.flush()
        # Staged uploads: two days old is abandoned; one day old may still be last night's.
        uploads = [staged_upload(kept_cases[0].id, today - 2 * DAY) for _ in range(copies)]
        younger = staged_upload(kept_cases[0].id, today - DAY)
        for attachment, chunk in [*uploads, younger]:
            session.add(attachment)
            await session.flush()
            session.add(chunk)
        # Tokens: expired or revoked more than a day ago go; the rest stay.
        user = staff_user()
        session.add(user)
        await session.flush()
        ended = [token(user, expires_at=now - 2 * DAY) for _ in range(copies)]
        ended += [token(user, expires_at=now + HOUR, revoked_at=now - DAY - HOUR) for _ in range(copies)]
        kept_tokens = [
            token(user, expires_at=now - DAY + HOUR),
            token(user, expires_at=now + HOUR, revoked_at=now - HOUR),
            token(user, expires_at=now + HOUR),
        ]
        session.add_all(ended + kept_tokens)
        # Deliveries: sent more than 30 days ago go; dead letters and pending ones stay.
        sent_long_ago = [
            delivery("sent", created_at=now - 31 * DAY, sent_at=now - 31 * DAY) for _ in range(copies)
        ]
        kept_deliveries = [
            delivery("sent", created_at=now - 29 * DAY, sent_at=now - 29 * DAY),
            delivery("dead", created_at=now - 90 * DAY),
            delivery("pending", created_at=now - 40 * DAY),
        ]
        session.add_all(sent_long_ago + kept_deliveries)
        await session.commit()
    return Seeded(
        expected={
            "retry_data_forgotten": copies,
            "budget_windows_deleted": 2,
            "staged_uploads_discarded": copies,
            "audit_windows_written": 3,
            "staff_tokens_deleted": 2 * copies,
            "sent_deliveries_deleted": copies,
        },
        kept_cases={case.id for case in kept_cases},
        kept_tokens={row.id for row in kept_tokens},
        kept_deliveries={row.id for row in kept_deliveries},
        kept_uploads={younger[0].id},
        kept_budgets={("submissions", current)},
    )


async def assert_only_the_unexpired_remain(sessionmaker: SessionMaker, seeded: Seeded) -> None:
    async with sessionmaker() as session:
        with_retry = set(
            (await session.scalars(select(Case.id).where(Case.idempotency_digest.is_not(None)))).all()
        )
        assert with_retry == seeded.kept_cases
        assert await session.scalar(
            select(func.count()).select_from(Case).where(Case.pow_digest.is_not(None) | Case.sealed_replay.is_not(None))
        ) == len(seeded.kept_cases)
        budgets = {tuple(row) for row in await session.execute(select(IntakeBudget.kind, IntakeBudget.window_start))}
        assert budgets == seeded.kept_budgets
        assert set((await session.scalars(select(StaffToken.id))).all()) == seeded.kept_tokens
        assert set((await session.scalars(select(NotificationDelivery.id))).all()) == seeded.kept_deliveries
        assert set((await session.scalars(select(CaseAttachment.id))).all()) == seeded.kept_uploads
        orphans = select(func.count()).select_from(AttachmentChunk).where(
            AttachmentChunk.attachment_id.not_in(select(CaseAttachment.id))
        )
        assert await session.scalar(orphans) == 0
        assert await session.scalar(select(func.count()).select_from(AuditWindowCount)) == 1  # the open hour
        hours = (
            await session.scalars(
                select(AuditEntry.details).where(AuditEntry.action == "auth.login_failed_unknown_user")
            )
        ).all()
        assert sorted(entry["count"] for entry in hours) == [1, 2, 3]
        assert (await AuditLog(session).verify()).ok


def test_the_job_is_in_the_catalogue_every_quarter_hour() -> None:
    job = BY_NAME["cleanup.expired"]
    assert (job.schedule, job.run) == ("*/15 * * * *", cleanup_expired)


async def test_expired_data_goes_and_the_rest_stays(settings: Settings, sessionmaker) -> None:
    now = utc_now()
    seeded = await seed(sessionmaker, settings, now)
    context = context_for(settings, sessionmaker, now)
    assert await cleanup_expired(context) == seeded.expected
    await assert_only_the_unexpired_remain(sessionmaker, seeded)
    assert await cleanup_expired(context) == NOTHING_LEFT


async def test_two_workers_at_once_do_each_deletion_exactly_once(fresh_database_url: str, settings: Settings) -> None:
    """Real commits on separate connections, more rows than a batch, both runs at once:
    together they report each row once, and the audit gets each ended hour once."""
    now = utc_now()
    async with fresh_context(fresh_database_url, settings, now) as first, fresh_context(
        fresh_database_url, settings, now
    ) as second:
        seeded = await seed(first.sessionmaker, settings, now, copies=2 * BATCH_SIZE + 7)
        results = await asyncio.gather(cleanup_expired(first), cleanup_expired(second))
        assert {kind: results[0][kind] + results[1][kind] for kind in NOTHING_LEFT} == seeded.expected
        await assert_only_the_unexpired_remain(first.sessionmaker, seeded)
        assert await cleanup_expired(second) == NOTHING_LEFT


async def test_a_failing_step_does_not_keep_the_others_from_running(
    settings: Settings, sessionmaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = utc_now()
    seeded = await seed(sessionmaker, settings, now)

    async def broken(session, context, now) -> int:
        raise RuntimeError("this step is broken")

    monkeypatch.setattr(cleanup, "STEPS", (("broken", broken), *cleanup.STEPS))
    with pytest.raises(RuntimeError, match="this step is broken"):
        await cleanup_expired(context_for(settings, sessionmaker, now))
    await assert_only_the_unexpired_remain(sessionmaker, seeded)
