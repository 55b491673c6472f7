"""Staff's share of the `cleanup.expired` job: bearer tokens that stopped working."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.expiry import BATCH_SIZE, ended_tokens_before
from app.staff.models import StaffToken


async def delete_ended_tokens(session: AsyncSession, now: datetime) -> int:
    """Deletes one batch of tokens that expired, or were revoked, more than a day ago;
    returns how many. Only their HMACs were stored, so this is about the record of
    sessions, not about security: a deleted token is refused like an expired one."""
    cutoff = ended_tokens_before(now)
    doomed = (
        select(StaffToken.id)
        .where(or_(StaffToken.expires_at < cutoff, StaffToken.revoked_at < cutoff))
        .limit(BATCH_SIZE)
        .with_for_update(skip_locked=True)
    )
    deleted = await session.execute(
        delete(StaffToken)
        .where(StaffToken.id.in_(doomed.scalar_subquery()))
        .execution_options(synchronize_session=False)
    )
    return deleted.rowcount
