"""Effects outside the service, and the one rule about drills: a drill case's effects
are recorded on its campaign, never performed.

The effects: a referral to an outside authority (the `refer` action: staff then contact
that authority themselves), and the notices the outbox would send about a case (an
e-mail to staff, a call to each configured webhook; app/notifications/outbox.py asks
here before it writes anything).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from app.drills.models import DrillEffect


class ExternalEffect(StrEnum):
    REFERRAL = "referral"
    NOTIFICATION = "notification"
    WEBHOOK = "webhook"


class ExternalEffects:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def happen(
        self, effect: ExternalEffect, case_id: uuid.UUID, drill_campaign_id: uuid.UUID | None, now: datetime
    ) -> bool:
        """True if the effect may really happen (a real case); for a drill case, records
        it as simulated and returns False. Runs in the caller's transaction."""
        if drill_campaign_id is None:
            return True
        self.session.add(
            DrillEffect(campaign_id=drill_campaign_id, case_id=case_id, kind=effect.value, occurred_at=now)
        )
        await self.session.flush()
        return False
