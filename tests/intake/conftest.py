from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select

from app.cases.models import Case
from app.db.session import build_engine, build_sessionmaker
from app.main import create_app
from app.settings import Settings


class LiveService:
    """The app on a database of its own, with real commits seen by every connection
    (concurrency tests, database dumps)."""

    def __init__(self, url: str, settings: Settings, client: httpx.AsyncClient, sessionmaker):
        self.url = url
        self.settings = settings
        self.client = client
        self.sessionmaker = sessionmaker

    async def case_count(self) -> int:
        async with self.sessionmaker() as session:
            return await session.scalar(select(func.count()).select_from(Case))


@pytest.fixture
async def live(fresh_database_url: str, settings: Settings) -> AsyncIterator[LiveService]:
    settings = settings.with_database_url(fresh_database_url)
    engine = build_engine(settings)
    sessionmaker = build_sessionmaker(engine)
    app = create_app(settings, sessionmaker=sessionmaker)
    # A client address and port the app can see, as behind a real connection.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=("203.0.113.77", 40123))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield LiveService(fresh_database_url, settings, client, sessionmaker)
    await engine.dispose()
