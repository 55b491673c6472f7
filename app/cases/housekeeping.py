"""Cases' share of the `cleanup.expired` job: uploads that a killed process left staging.

An upload that ends in any way its process sees (published, refused, hung up, timed out)
leaves nothing behind; only a process killed mid-upload leaves a staged row and its
chunks, which no request would ever look at again."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.cases.models import CaseAttachment
from app.domain.clock import organisation_date
from app.domain.expiry import BATCH_SIZE, abandoned_staging_on_or_before
from app.settings import Settings


async def discard_abandoned_uploads(session: AsyncSession, settings: Settings, now: datetime) -> int:
    """Deletes one batch of staged uploads older than an upload can last, their chunks
    with them (the foreign key cascades); returns how many uploads."""
    cutoff = abandoned_staging_on_or_before(organisation_date(now, settings.zone))
    doomed = (
        select(CaseAttachment.id)
        .where(CaseAttachment.staged_on <= cutoff)  # only staged rows have a `staged_on`
        .limit(BATCH_SIZE)
        .with_for_update(skip_locked=True)
    )
    deleted = await session.execute(
        delete(CaseAttachment)
        .where(CaseAttachment.id.in_(doomed.scalar_subquery()), CaseAttachment.case_id.is_(None))
        .execution_options(synchronize_session=False)
    )
    return deleted.rowcount
