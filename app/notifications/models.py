"""The outbox and its deliveries.

An event row is written in the same transaction as the change that causes it, so a
rolled-back change leaves none and a committed one survives any crash. The delivery job
turns due events into deliveries (one mail per recipient, one call per webhook) and
sends those. Neither table holds report content, a category or anything about the
reporter; an event about a new report or a reporter's message carries no time finer
than its batch.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UUIDPrimaryKey
from app.domain.notifications import AUDIENCES, EVENT_KINDS, DeliveryChannel, DeliveryState


def _in(column: str, values: list[str]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


class NotificationEvent(UUIDPrimaryKey, Base):
    __tablename__ = "notification_events"
    __table_args__ = (
        CheckConstraint(_in("kind", EVENT_KINDS), name="kind"),
        CheckConstraint(f"audience <@ ARRAY[{', '.join(repr(a) for a in AUDIENCES)}]::varchar[]", name="audience"),
        Index("ix_notification_events_not_before", "not_before"),
    )

    kind: Mapped[str] = mapped_column(String(40))
    # Deleted with its case (a drill case purged); a real case's row outlives retention.
    case_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    # A named staff member (the assignee); when they cannot be mailed, the audience roles.
    recipient_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    audience: Mapped[list[str]] = mapped_column(ARRAY(String(16)))
    details: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    # Not sent before: for a batched kind, the end of its batch plus jitter (the only time
    # the row carries); for a deadline, the moment it was written.
    not_before: Mapped[datetime]


class NotificationDelivery(UUIDPrimaryKey, Base):
    """One message to one recipient; its id is the mail's Message-ID and the webhook-id."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        CheckConstraint(_in("channel", [c.value for c in DeliveryChannel]), name="channel"),
        CheckConstraint(_in("state", [s.value for s in DeliveryState]), name="state"),
        CheckConstraint("attempts >= 0", name="attempts"),
        Index(
            "ix_notification_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("state = 'pending'"),
        ),
        Index("ix_notification_deliveries_state", "state"),
    )

    channel: Mapped[str] = mapped_column(String(8))
    # An e-mail address, or a webhook endpoint's name (its URL and secret stay in settings).
    target: Mapped[str] = mapped_column(String(320))
    kind: Mapped[str] = mapped_column(String(40))
    # What is sent, already content-free: the mail's subject and lines, the webhook's data.
    payload: Mapped[dict] = mapped_column(JSONB)
    state: Mapped[str] = mapped_column(String(8), server_default=DeliveryState.PENDING.value)
    attempts: Mapped[int] = mapped_column(server_default="0")
    created_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    # The kind of the last failure and the server's short answer, never a payload.
    last_error: Mapped[str | None] = mapped_column(String(500))
