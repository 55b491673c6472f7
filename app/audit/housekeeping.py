"""The audit log's background work: writing the counts of ended hours into the chain
(part of `cleanup.expired`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import AuditLog


async def write_ended_windows(session: AsyncSession, now: datetime) -> int:
    """The counts of ended hours become entries even when nobody reads the log or fails
    a login in the next hour; returns how many entries were appended."""
    return await AuditLog(session).write_ended_windows(now)
