"""Rows the background jobs work on, written straight to the database, and contexts to run
the jobs with."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta

from sqlalchemy.ext.asyncio import create_async_engine

from app.cases.models import AttachmentChunk, CaseAttachment
from app.context import AppContext
from app.db.session import SessionMaker, build_sessionmaker
from app.domain.kdf import TEST_KEY_DERIVATION
from app.notifications.models import NotificationDelivery, NotificationEvent
from app.settings import Settings
from app.staff.models import StaffToken, StaffUser


def context_for(settings: Settings, sessionmaker: SessionMaker, now: datetime | None = None) -> AppContext:
    if now is None:
        return AppContext.build(settings, sessionmaker, key_derivation=TEST_KEY_DERIVATION)
    return AppContext.build(settings, sessionmaker, clock=lambda: now, key_derivation=TEST_KEY_DERIVATION)


@asynccontextmanager
async def fresh_context(database_url: str, settings: Settings, now: datetime | None = None) -> AsyncIterator[AppContext]:
    """A context on a database of the test's own: every transaction really commits."""
    engine = create_async_engine(database_url)
    try:
        yield context_for(settings, build_sessionmaker(engine), now)
    finally:
        await engine.dispose()


def staff_user() -> StaffUser:
    return StaffUser(id=uuid.uuid4(), username=f"officer-{uuid.uuid4().hex[:8]}", role="triage", password_hash="unused")


def token(user: StaffUser, *, expires_at: datetime, revoked_at: datetime | None = None) -> StaffToken:
    return StaffToken(
        user_id=user.id,
        digest=os.urandom(32),
        created_at=expires_at - timedelta(hours=8),
        expires_at=expires_at,
        revoked_at=revoked_at,
    )


def delivery(state: str, *, created_at: datetime, sent_at: datetime | None = None) -> NotificationDelivery:
    return NotificationDelivery(
        channel="email",
        target="triage@example.org",
        kind="case.received",
        payload={"subject": "[Clean Window]", "lines": []},
        state=state,
        attempts=1,
        created_at=created_at,
        next_attempt_at=created_at,
        sent_at=sent_at,
    )


def event(not_before: datetime, kind: str = "case.received") -> NotificationEvent:
    return NotificationEvent(kind=kind, audience=["triage"], details={}, not_before=not_before)


def staged_upload(case_id: uuid.UUID, staged_on: date) -> tuple[CaseAttachment, AttachmentChunk]:
    attachment = CaseAttachment(
        id=uuid.uuid4(),
        case_id=None,
        staging_case_id=case_id,
        staged_on=staged_on,
        author="reporter",
        uploaded_on=staged_on,
        stored_bytes=0,
        chunk_bytes=4096,
        chunk_count=1,
        sealed_meta=b"",
    )
    return attachment, AttachmentChunk(attachment_id=attachment.id, index=0, sealed=b"sealed")
