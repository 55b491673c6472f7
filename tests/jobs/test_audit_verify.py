"""The `audit.verify` job: the chain checked as GET /api/v1/audit/verify checks it, and a
broken chain told to administrators and auditors at once, then once a day while it stays
broken, however many workers run the job."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from app.audit.housekeeping import verify_audit_chain
from app.audit.models import AuditHead
from app.audit.service import AuditLog
from app.db.session import SessionMaker
from app.domain.audit import AuditAction
from app.domain.clock import organisation_date, utc_now
from app.jobs.catalogue import BY_NAME
from app.jobs.models import JobRun
from app.jobs.runner import run_job
from app.notifications.models import NotificationEvent
from app.settings import Settings
from tests.jobs.helpers import context_for, fresh_context

FAILED = "audit.verification_failed"


async def append_entries(sessionmaker: SessionMaker, count: int) -> list[int]:
    async with sessionmaker() as session:
        log = AuditLog(session)
        seqs = [await log.record(AuditAction.CASE_READ, utc_now(), None, case_id=uuid.uuid4()) for _ in range(count)]
        await session.commit()
    return seqs


async def head_seq(sessionmaker: SessionMaker) -> int:
    async with sessionmaker() as session:
        return await session.scalar(select(AuditHead.seq))


async def alerts(sessionmaker: SessionMaker) -> list[NotificationEvent]:
    async with sessionmaker() as session:
        return list((await session.scalars(select(NotificationEvent).where(NotificationEvent.kind == FAILED))).all())


async def rewrite(connection: AsyncConnection, seq: int, username: str | None) -> None:
    """As a superuser with the append-only trigger off, the way someone with the
    database's keys but not the chain's would rewrite history."""
    await connection.execute(text("SET LOCAL session_replication_role = replica"))
    await connection.execute(text("UPDATE audit_log SET actor_username = :name WHERE seq = :seq"), {"name": username, "seq": seq})
    await connection.execute(text("SET LOCAL session_replication_role = origin"))


def test_the_job_is_in_the_catalogue_daily() -> None:
    job = BY_NAME["audit.verify"]
    assert (job.schedule, job.run) == ("30 3 * * *", verify_audit_chain)


async def test_an_intact_chain_verifies_and_alerts_nobody(settings: Settings, sessionmaker) -> None:
    await append_entries(sessionmaker, 4)
    result = await verify_audit_chain(context_for(settings, sessionmaker))
    assert result == {"ok": True, "entries": await head_seq(sessionmaker), "first_bad": None, "alerted_on": None}
    assert await alerts(sessionmaker) == []


async def test_a_broken_chain_is_told_at_once_then_daily_and_a_new_break_at_once(
    settings: Settings, sessionmaker, db_connection: AsyncConnection
) -> None:
    seqs = await append_entries(sessionmaker, 5)
    # Early in the organisation's day, so that two hours later is still the same date
    # whatever time the suite runs.
    zone = settings.zone
    today = organisation_date(utc_now(), zone)
    now = datetime.combine(today, time(1, 0), tzinfo=zone).astimezone(UTC)
    await rewrite(db_connection, seqs[3], "someone-else")

    result = await verify_audit_chain(context_for(settings, sessionmaker, now))
    assert result == {
        "ok": False,
        "entries": await head_seq(sessionmaker),
        "first_bad": seqs[3],
        "alerted_on": today.isoformat(),
    }
    [alert] = await alerts(sessionmaker)
    assert sorted(alert.audience) == ["admin", "auditor"]
    assert alert.details == {"first_bad": seqs[3]}
    assert (alert.case_id, alert.recipient_id) == (None, None)

    # Again the same day: already told.
    assert (await verify_audit_chain(context_for(settings, sessionmaker, now + timedelta(hours=2))))["ok"] is False
    assert len(await alerts(sessionmaker)) == 1
    # Still broken the next day: told again, so silence never reads as "fixed".
    tomorrow = now + timedelta(days=1)
    await verify_audit_chain(context_for(settings, sessionmaker, tomorrow))
    assert len(await alerts(sessionmaker)) == 2
    # An earlier entry changed the same day is a new failure: told at once.
    await rewrite(db_connection, seqs[1], "someone-else")
    assert (await verify_audit_chain(context_for(settings, sessionmaker, tomorrow)))["first_bad"] == seqs[1]
    assert [alert.details["first_bad"] for alert in await alerts(sessionmaker)].count(seqs[1]) == 1

    # Repaired, then broken again the same day: the new break is told at once too.
    await rewrite(db_connection, seqs[1], None)
    await rewrite(db_connection, seqs[3], None)
    assert (await verify_audit_chain(context_for(settings, sessionmaker, tomorrow)))["alerted_on"] is None
    await rewrite(db_connection, seqs[1], "someone-else")
    await verify_audit_chain(context_for(settings, sessionmaker, tomorrow))
    assert len(await alerts(sessionmaker)) == 4


async def test_two_workers_at_once_alert_once_and_the_runner_keeps_the_result(
    fresh_database_url: str, settings: Settings
) -> None:
    now = utc_now()
    async with fresh_context(fresh_database_url, settings, now) as first, fresh_context(
        fresh_database_url, settings, now
    ) as second:
        seqs = await append_entries(first.sessionmaker, 3)
        engine = create_async_engine(fresh_database_url)
        try:
            async with engine.begin() as connection:
                await rewrite(connection, seqs[0], "someone-else")
        finally:
            await engine.dispose()

        results = await asyncio.gather(verify_audit_chain(first), verify_audit_chain(second))
        assert [result["first_bad"] for result in results] == [seqs[0], seqs[0]]
        assert len(await alerts(first.sessionmaker)) == 1

        reported = await run_job(first, BY_NAME["audit.verify"])
        assert len(await alerts(first.sessionmaker)) == 1
        async with first.sessionmaker() as session:
            run = await session.get(JobRun, "audit.verify")
        assert run.last_result == reported
        assert (reported["ok"], reported["first_bad"]) == (False, seqs[0])


async def test_verification_does_not_hold_the_chains_head(fresh_database_url: str, settings: Settings) -> None:
    """Staff keep appending while the job walks the chain: the walk takes no lock, and
    entries appended meanwhile wait for the next check."""
    async with fresh_context(fresh_database_url, settings) as context:
        await append_entries(context.sessionmaker, 3)
        async with context.own_transaction() as session:
            # An append in progress holds the head's row lock until it commits.
            await AuditLog(session).record(AuditAction.CASE_READ, utc_now(), None)
            result = await asyncio.wait_for(verify_audit_chain(context), timeout=30)
        assert result["ok"] is True and result["entries"] == 3
