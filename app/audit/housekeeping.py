"""The audit log's background work: writing the counts of ended hours into the chain
(part of `cleanup.expired`), and the daily `audit.verify` job.

Verification runs the same walk as `GET /api/v1/audit/verify`, in a transaction of its
own that only reads and takes no lock: the head is read once and the walk stops there, so staff
keep appending while a long chain is checked. A broken chain is told to administrators
and auditors through the outbox, at once and then once a day while it stays broken
(`should_alert_audit_failure` in `app/domain/audit.py`).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import AuditLog
from app.context import AppContext
from app.domain.audit import Verification, should_alert_audit_failure
from app.domain.clock import organisation_date
from app.domain.notifications import EventKind
from app.jobs.models import JobRun
from app.jobs.registry import JobResult
from app.notifications.outbox import Outbox

VERIFY_JOB = "audit.verify"
ALERT_AUDIENCE = ("admin", "auditor")


async def write_ended_windows(session: AsyncSession, now: datetime) -> int:
    """The counts of ended hours become entries even when nobody reads the log or fails
    a login in the next hour; returns how many entries were appended."""
    return await AuditLog(session).write_ended_windows(now)


async def verify_audit_chain(context: AppContext) -> JobResult:
    """Recompute the chain; on failure, tell administrators and auditors (see
    `should_alert_audit_failure` for how often). Returns what the runner keeps in
    `job_runs.last_result`, which `/metrics` reads."""
    async with context.own_transaction() as session:
        verification = await AuditLog(session).verify()
    now = context.clock()
    return await _record(context, verification, now, organisation_date(now, context.settings.zone))


async def _record(context: AppContext, verification: Verification, now: datetime, today: date) -> JobResult:
    """Writes the verdict into the job's own `job_runs` row, with the failure event when
    it is due, in one transaction. The row, locked, orders two runs at once (the second
    sees the first's alert), and a run that crashes after this commit does not alert
    again when it is run again."""
    result: JobResult = {"ok": verification.ok, "entries": verification.entries, "first_bad": verification.first_bad}
    async with context.own_transaction() as session:
        await session.execute(insert(JobRun).values(name=VERIFY_JOB).on_conflict_do_nothing())
        previous = await session.scalar(select(JobRun.last_result).where(JobRun.name == VERIFY_JOB).with_for_update())
        previous = previous or {}
        last_alert_on = date.fromisoformat(previous["alerted_on"]) if previous.get("alerted_on") else None
        if verification.ok:
            alerted_on = None
        elif should_alert_audit_failure(
            verification.first_bad,
            today,
            last_alert_first_bad=previous.get("first_bad"),
            last_alert_on=last_alert_on,
        ):
            await Outbox(session, context.settings).emit(
                EventKind.AUDIT_VERIFICATION_FAILED,
                now,
                audience=ALERT_AUDIENCE,
                details={"first_bad": verification.first_bad},
            )
            alerted_on = today
        else:
            alerted_on = last_alert_on
        result["alerted_on"] = alerted_on.isoformat() if alerted_on else None
        await session.execute(update(JobRun).where(JobRun.name == VERIFY_JOB).values(last_result=result))
    return result
