"""What administrators do with notifications: see the dead letters, send one again."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from app.audit.service import AuditLog
from app.context import AppContext, Service
from app.domain.audit import AuditAction
from app.domain.errors import Conflict, NotFound
from app.domain.notifications import DeliveryState
from app.notifications.models import NotificationDelivery
from app.notifications.repository import NotificationRepository
from app.staff.models import StaffUser
from sqlalchemy.ext.asyncio import AsyncSession


class NotificationService(Service):
    def __init__(self, session: AsyncSession, context: AppContext):
        super().__init__(session, context)
        self.repository = NotificationRepository(session)

    async def dead_letters(self, limit: int) -> Sequence[NotificationDelivery]:
        return await self.repository.dead_letters(limit)

    async def retry(self, delivery_id: uuid.UUID, admin: StaffUser, now: datetime) -> NotificationDelivery:
        """Back to the queue with a fresh count of tries (after the receiver was fixed)."""
        delivery = await self.repository.delivery(delivery_id, lock=True)
        if delivery is None:
            raise NotFound("No delivery has this id.")
        if delivery.state != DeliveryState.DEAD.value:
            raise Conflict(f"This delivery is {delivery.state}; only a dead letter can be sent again.")
        delivery.state = DeliveryState.PENDING.value
        delivery.attempts = 0
        delivery.next_attempt_at = now
        await self.session.flush()
        await AuditLog(self.session).record(
            AuditAction.NOTIFICATION_RETRIED, now, admin, delivery=str(delivery.id), channel=delivery.channel
        )
        return delivery
