"""Engine, sessions, and the rule that the request's session owns the transaction.

Services call `flush()` when they need database-generated values; only `get_session`
commits, after the endpoint returned and before the response is sent, so a client is
never told "done" about something that was not committed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.settings import Settings

SessionMaker = async_sessionmaker[AsyncSession]


def build_engine(settings: Settings) -> AsyncEngine:
    if settings.database_url is None:
        raise RuntimeError("no database URL: start the embedded PostgreSQL first")
    return create_async_engine(
        settings.database_url.get_secret_value(),
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        pool_pre_ping=True,
        pool_timeout=settings.database_pool_timeout_seconds,
        # asyncpg's own connect timeout is 60 s; a server that does not answer should cost
        # a request no more than an exhausted pool does.
        connect_args={"timeout": settings.database_pool_timeout_seconds},
        # Error messages would otherwise quote bound parameters (hashes, digests, and
        # later case data) into the logs.
        hide_parameters=True,
        # No `echo`: SQLAlchemy's echo prints every statement straight to stdout with the
        # millisecond, around the held and coarsened reporter-path lines. In debug,
        # `configure_logging` lets the statements through the service's own handler.
    )


def build_sessionmaker(engine: AsyncEngine) -> SessionMaker:
    return async_sessionmaker(engine, expire_on_commit=False)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    sessionmaker: SessionMaker = request.app.state.sessionmaker
    async with sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


# scope="function": the commit above runs before the response is sent.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
