from __future__ import annotations

import base64
import dataclasses
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

import httpx
from pydantic import SecretStr
from sqlalchemy import select

from app.context import AppContext
from app.db.session import SessionMaker, build_engine, build_sessionmaker
from app.domain.kdf import TEST_KEY_DERIVATION
from app.main import create_app
from app.notifications.models import NotificationDelivery, NotificationEvent
from app.settings import NotifySettings, Settings, WebhookEndpoint
from app.staff.models import StaffUser

WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"webhook-secret-for-the-tests-32b").decode()
SENDER = "cleanwindow@notices.example.org"


def notifying(settings: Settings, *, smtp_url: str | None, webhook_url: str | None, batch_seconds: int = 0, **notify) -> Settings:
    webhooks = [WebhookEndpoint(name="tracker", url=webhook_url, secret=WEBHOOK_SECRET)] if webhook_url else []
    return settings.model_copy(
        update={
            "smtp_url": SecretStr(smtp_url) if smtp_url else None,
            "notify_from": SENDER,
            "notify_batch_seconds": batch_seconds,
            "notify": NotifySettings(webhooks=webhooks, retry_base_seconds=0, batch_jitter_seconds=0, **notify),
        }
    )


@dataclass
class Service:
    """The app and a job context on one database of the test's own (real commits)."""

    settings: Settings
    sessionmaker: SessionMaker
    context: AppContext
    client: httpx.AsyncClient

    def at(self, now: datetime) -> AppContext:
        return dataclasses.replace(self.context, clock=lambda: now)

    async def add_staff(self, role: str, email: str | None) -> StaffUser:
        async with self.sessionmaker() as session:
            user = StaffUser(
                username=f"{role.replace('_', '-')}-{uuid.uuid4().hex[:6]}", role=role, password_hash="unused", email=email
            )
            session.add(user)
            await session.commit()
        return user

    async def events(self) -> list[NotificationEvent]:
        async with self.sessionmaker() as session:
            return list((await session.scalars(select(NotificationEvent))).all())

    async def deliveries(self) -> list[NotificationDelivery]:
        async with self.sessionmaker() as session:
            return list((await session.scalars(select(NotificationDelivery).order_by(NotificationDelivery.created_at))).all())


@asynccontextmanager
async def service_on(database_url: str, settings: Settings) -> AsyncIterator[Service]:
    settings = settings.with_database_url(database_url)
    engine = build_engine(settings)
    sessionmaker = build_sessionmaker(engine)
    app = create_app(settings, sessionmaker=sessionmaker, key_derivation=TEST_KEY_DERIVATION)
    context = AppContext.build(settings, sessionmaker, key_derivation=TEST_KEY_DERIVATION)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
            yield Service(settings, sessionmaker, context, client)
    finally:
        await engine.dispose()


async def token_headers(service: Service, role: str) -> dict[str, str]:
    """A staff account of `role` with a real password, logged in through the API."""
    from tests.conftest import STRONG_PASSWORD
    from app.domain.staff import PasswordHashing

    hashing = PasswordHashing(TEST_KEY_DERIVATION.passwords)
    async with service.sessionmaker() as session:
        user = StaffUser(username=f"{role}-{uuid.uuid4().hex[:6]}", role=role, password_hash=hashing.hash(STRONG_PASSWORD))
        session.add(user)
        await session.commit()
    response = await service.client.post("/api/v1/auth/token", data={"username": user.username, "password": STRONG_PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}
