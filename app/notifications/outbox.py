"""The outbox: how any part of the service says "staff should hear about this".

`Outbox(session, settings).emit(...)` writes the event in the caller's transaction, so
it commits or rolls back with the change that caused it; the `notifications.deliver`
job sends it later. A drill case's event is never written: each notice and webhook call
it would have caused is recorded on its campaign as a simulated effect instead, in blind
and announced campaigns alike, so nothing about a drill can leave the service.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.cases.models import Case
from app.domain.notifications import BATCHED_KINDS, EventKind, batch_release_time
from app.drills.effects import ExternalEffect, ExternalEffects
from app.notifications.models import NotificationEvent
from app.settings import Settings


class Outbox:
    def __init__(self, session: AsyncSession, settings: Settings):
        self.session = session
        self.settings = settings

    async def emit(
        self,
        kind: EventKind,
        now: datetime,
        *,
        audience: Sequence[str],
        case_id: uuid.UUID | None = None,
        drill_campaign_id: uuid.UUID | None = None,
        recipient_id: uuid.UUID | None = None,
        details: dict | None = None,
    ) -> NotificationEvent | None:
        """Write the event (None for a drill case, whose effects are recorded instead).
        `audience` names the roles to tell when `recipient_id` is unset or cannot be
        mailed; `details` must be content-free (deadline names and dates, counts)."""
        if case_id is not None:
            # Asked of the case itself, so no caller can forget that a case is a drill.
            found = await self.session.scalar(select(Case.drill_campaign_id).where(Case.id == case_id))
            assert drill_campaign_id in (None, found), "the drill campaign given is not the case's"
            drill_campaign_id = found
        not_before = now
        if kind in BATCHED_KINDS:
            not_before = batch_release_time(now, self.settings.notify_batch_seconds, self._window_jitter(now))
        if drill_campaign_id is not None:
            await self._simulate(case_id, drill_campaign_id, kind, now)
            return None
        event = NotificationEvent(
            kind=kind.value,
            case_id=case_id,
            recipient_id=recipient_id,
            audience=list(audience),
            details=details or {},
            not_before=not_before,
        )
        self.session.add(event)
        await self.session.flush()
        return event

    def _window_jitter(self, now: datetime) -> float:
        """The same jitter for every event of a batch window (so the window is still one
        digest), different from window to window, and unknown without the secret key."""
        limit = self.settings.notify.batch_jitter_seconds
        if limit <= 0 or self.settings.notify_batch_seconds <= 0:
            return 0.0
        window_end = batch_release_time(now, self.settings.notify_batch_seconds, 0)
        digest = hmac.new(self.settings.secret_key_bytes, f"notice-batch|{window_end.isoformat()}".encode(), "sha256")
        return int.from_bytes(digest.digest()[:8], "big") % (limit * 1000) / 1000

    async def _simulate(
        self, case_id: uuid.UUID | None, campaign_id: uuid.UUID, kind: EventKind, now: datetime
    ) -> None:
        assert case_id is not None, "a drill event belongs to a drill case"
        # A reporter-side act is dated no finer than its batch would have dated it.
        occurred_at = now
        if kind in BATCHED_KINDS and self.settings.notify_batch_seconds > 0:
            batch = timedelta(seconds=self.settings.notify_batch_seconds)
            occurred_at = batch_release_time(now, self.settings.notify_batch_seconds, 0) - batch
        effects = ExternalEffects(self.session)
        await effects.happen(ExternalEffect.NOTIFICATION, case_id, campaign_id, occurred_at)
        for _ in self.settings.notify.webhooks:
            await effects.happen(ExternalEffect.WEBHOOK, case_id, campaign_id, occurred_at)
