"""Intake's share of the `cleanup.expired` job: retry data and challenge digests past
their day, and the shared budgets' ended windows. Each step runs in the transaction the
job opens for it and returns how many rows it changed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.clock import organisation_date
from app.domain.expiry import BATCH_SIZE, ended_budget_windows_before, retry_data_received_before
from app.intake.repository import IntakeRepository
from app.settings import Settings


async def forget_retry_data(session: AsyncSession, settings: Settings, now: datetime) -> int:
    """One batch of cases whose retry data and challenge digest are past their day."""
    today = organisation_date(now, settings.zone)
    return await IntakeRepository(session).forget_retry_data(retry_data_received_before(today), BATCH_SIZE)


async def delete_ended_budget_windows(session: AsyncSession, settings: Settings, now: datetime) -> int:
    window = ended_budget_windows_before(now, settings.intake.budget_window_seconds)
    return await IntakeRepository(session).delete_budget_windows_before(window)
