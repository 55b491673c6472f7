"""Queries of the outbox and its deliveries."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.notifications import DeliveryState
from app.notifications.models import NotificationDelivery, NotificationEvent
from app.staff.models import StaffUser


class NotificationRepository:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def claim_due_events(self, now: datetime, limit: int) -> Sequence[NotificationEvent]:
        """Due events, locked; another worker's claim is skipped, not waited for."""
        return (
            await self.session.scalars(
                select(NotificationEvent)
                .where(NotificationEvent.not_before <= now)
                .order_by(NotificationEvent.not_before)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()

    async def forget_events(self, ids: Iterable[uuid.UUID]) -> None:
        await self.session.execute(delete(NotificationEvent).where(NotificationEvent.id.in_(list(ids))))

    async def mailable_staff(self, roles: Iterable[str]) -> Sequence[StaffUser]:
        return (
            await self.session.scalars(
                select(StaffUser).where(
                    StaffUser.role.in_(list(roles)), StaffUser.is_active.is_(True), StaffUser.email.is_not(None)
                )
            )
        ).all()

    async def mailable_user(self, user_id: uuid.UUID) -> StaffUser | None:
        user = await self.session.get(StaffUser, user_id)
        return user if user is not None and user.is_active and user.email else None

    async def claim_due_delivery(self, now: datetime) -> NotificationDelivery | None:
        return await self.session.scalar(
            select(NotificationDelivery)
            .where(
                NotificationDelivery.state == DeliveryState.PENDING.value,
                NotificationDelivery.next_attempt_at <= now,
            )
            .order_by(NotificationDelivery.next_attempt_at)
            .limit(1)
            .with_for_update(skip_locked=True)
        )

    async def dead_letters(self, limit: int) -> Sequence[NotificationDelivery]:
        return (
            await self.session.scalars(
                select(NotificationDelivery)
                .where(NotificationDelivery.state == DeliveryState.DEAD.value)
                .order_by(NotificationDelivery.created_at.desc(), NotificationDelivery.id)
                .limit(limit)
            )
        ).all()

    async def delivery(self, delivery_id: uuid.UUID, *, lock: bool = False) -> NotificationDelivery | None:
        return await self.session.get(NotificationDelivery, delivery_id, with_for_update=lock or None)

    async def count_dead(self) -> int:
        return await self.session.scalar(
            select(func.count()).where(NotificationDelivery.state == DeliveryState.DEAD.value)
        ) or 0
