"""The retention job (`retention.purge`): the content of real cases closed long enough ago
is deleted, case by case, as `settings.retention` says (docs/retention.md).

Each case is purged in a short transaction of its own under its row lock, taken with
SKIP LOCKED: a case someone is working on (a staff act, the reporter, another run of this
job) is left for the next run, and two runs at once never purge one case twice. Under
the lock the case is checked again, so one reopened since the candidates were listed is
left alone. The purge and its audit entry commit together or not at all, so a run that
dies half-way leaves every case either purged and audited, or untouched for the next run.
"""

from __future__ import annotations

import logging
import uuid
from datetime import date, datetime

from sqlalchemy.exc import DBAPIError

from app.audit.service import AuditLog
from app.cases.models import Case
from app.cases.repository import RetentionRepository
from app.context import AppContext
from app.db.session import own_transaction
from app.domain.audit import AuditAction
from app.domain.clock import organisation_date
from app.domain.retention import RetentionPolicy, outcome_of
from app.domain.triage import CaseState
from app.jobs.registry import JobResult
from app.settings import Settings

logger = logging.getLogger("cleanwindow.jobs")

# Cases purged at most per run, so that one run stays short; a backlog (the first run on
# an old installation) is worked off hour by hour.
PURGE_BATCH = 500


def retention_policy(settings: Settings) -> RetentionPolicy:
    days = settings.retention
    return RetentionPolicy(
        dismissed_days=days.dismissed_days,
        substantiated_days=days.substantiated_days,
        unsubstantiated_days=days.unsubstantiated_days,
        referred_days=days.referred_days,
    )


async def due_case_ids(context: AppContext, now: datetime, limit: int = PURGE_BATCH) -> list[uuid.UUID]:
    """The cases due for the purge at `now`, oldest closing first: candidates only."""
    today = organisation_date(now, context.settings.zone)
    async with own_transaction(context.sessionmaker) as session:
        return await RetentionRepository(session).due_case_ids(retention_policy(context.settings), today, limit)


def _still_due(case: Case, policy: RetentionPolicy, today: date) -> bool:
    return (
        not case.is_drill
        and case.purged_on is None
        and case.state == CaseState.CLOSED.value
        and policy.is_due(case.closed_on, case.resolution, today)
    )


async def _held_for_identity(repository: RetentionRepository, case_id: uuid.UUID) -> bool:
    return await repository.identity_work_pending(case_id)


async def purge_case(context: AppContext, case_id: uuid.UUID) -> bool:
    """Purges one case if it is still due and nobody holds it; True when it did."""
    policy = retention_policy(context.settings)
    async with own_transaction(context.sessionmaker) as session:
        repository = RetentionRepository(session)
        case = await repository.lock_unless_busy(case_id)
        now = context.clock()
        today = organisation_date(now, context.settings.zone)
        # Checked again under the case's lock: identity steps lock the case first too.
        if case is None or not _still_due(case, policy, today) or await _held_for_identity(repository, case.id):
            return False
        deleted = await repository.delete_content(case.id)
        case.sealed_report = None
        case.receipt_tag = None
        case.reporter_public_key = None
        case.pow_digest = None
        case.idempotency_digest = None
        case.sealed_replay = None
        case.purged_on = today
        await session.flush()
        outcome = outcome_of(case.resolution)
        # Last: the audit head stays locked until this transaction commits.
        await AuditLog(session).record(
            AuditAction.CASE_PURGED,
            now,
            None,
            case_id=case.id,
            outcome=outcome.value,
            retention_days=policy.days_for(outcome),
            closed_on=case.closed_on.isoformat(),
            **deleted,
        )
        return True


async def purge_expired_cases(context: AppContext, *, batch: int = PURGE_BATCH) -> JobResult:
    """The job: purge up to `batch` due cases, each in its own transaction."""
    candidates = await due_case_ids(context, context.clock(), batch)
    purged = 0
    for case_id in candidates:
        try:
            purged += await purge_case(context, case_id)
        except DBAPIError as error:
            # A deadlock or serialization failure with concurrent work: that case waits
            # for the next run, the others go on.
            logger.warning("purge of a case deferred", extra={"error_type": type(error.orig).__name__})
    held = await _count_held(context)
    return {"purged": purged, "skipped": len(candidates) - purged, "more": len(candidates) == batch, "held": held}


async def _count_held(context: AppContext) -> int:
    """Cases past their period kept because identity work on them is not settled."""
    today = organisation_date(context.clock(), context.settings.zone)
    async with own_transaction(context.sessionmaker) as session:
        return await RetentionRepository(session).held_for_identity_count(retention_policy(context.settings), today)
