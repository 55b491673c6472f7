"""Notifications' share of the `cleanup.expired` job: deliveries sent long ago.

A dead delivery (retries exhausted) is never deleted here: it waits for an administrator,
since it means someone was not told."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.expiry import BATCH_SIZE, sent_notices_before
from app.domain.notifications import DeliveryState
from app.notifications.models import NotificationDelivery


async def delete_old_sent_deliveries(session: AsyncSession, now: datetime) -> int:
    """Deletes one batch of deliveries sent more than 30 days ago; returns how many."""
    doomed = (
        select(NotificationDelivery.id)
        .where(
            NotificationDelivery.state == DeliveryState.SENT.value,
            NotificationDelivery.sent_at < sent_notices_before(now),
        )
        .limit(BATCH_SIZE)
        .with_for_update(skip_locked=True)
    )
    deleted = await session.execute(
        delete(NotificationDelivery)
        .where(NotificationDelivery.id.in_(doomed.scalar_subquery()))
        .execution_options(synchronize_session=False)
    )
    return deleted.rowcount
