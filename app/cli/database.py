"""The operator's commands on the database: the settings, the database (DATABASE_URL or
the embedded PostgreSQL), errors as one line, and the staff service in one transaction.

Imported by those commands when they run, never by `cleanwindow --help` or the client
commands: asyncio, SQLAlchemy, Alembic and the settings cost more to import than typer.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from alembic.util.exc import CommandError as AlembicCommandError
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from app.client.errors import fail
from app.db.privileges import RoleRefused
from app.domain.errors import DomainError
from app.settings import Settings

T = TypeVar("T")


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Whatever goes wrong reaches the operator as one line, never as a traceback."""
    try:
        yield
    except DomainError as error:
        raise fail(error.detail) from None
    except RoleRefused as error:
        raise fail(f"nothing was changed: {error}") from None
    except (OSError, SQLAlchemyError) as error:
        reason = getattr(error, "orig", None) or error
        raise fail(f"cannot use the database: {type(reason).__name__}: {reason}".splitlines()[0]) from None
    except subprocess.CalledProcessError as error:
        raise fail(f"the embedded PostgreSQL failed to start ({error.returncode}); see its log") from None
    except AlembicCommandError as error:
        raise fail(f"cannot migrate the database: {error}".splitlines()[0]) from None


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        reasons = "\n".join(
            f"  - {'.'.join(map(str, item['loc'])) or 'settings'}: {item['msg']}"
            for item in error.errors()
        )
        raise fail(f"the configuration is not usable:\n{reasons}", code=2) from None


@contextmanager
def database_url(settings: Settings) -> Iterator[str]:
    """`DATABASE_URL` when set; otherwise the embedded PostgreSQL, for as long as needed."""
    if settings.database_url is not None:
        yield settings.database_url.get_secret_value()
        return
    from app.db.embedded import EmbeddedPostgresError, embedded_postgres

    try:
        with embedded_postgres(settings.data_dir) as url:
            yield url
    except EmbeddedPostgresError as error:
        raise fail(str(error)) from None


def with_app_context(settings: Settings, action: Callable[..., Awaitable[T]]) -> T:
    """Run `action(context)` with the application context on the configured database
    (the embedded one migrated first; another one must already be at the head)."""
    from app.context import AppContext
    from app.db.migrations import database_schema, upgrade_database
    from app.db.session import build_engine, build_sessionmaker

    async def run(url: str) -> T:
        if settings.database_url is None:
            await upgrade_database(url)  # the embedded database is ours to migrate
        elif not (check := await database_schema(url)).fit.runnable:
            # A newer schema declared compatible is fine: a rolling deploy has migrated
            # past this version (docs/operations.md, "Upgrading").
            raise fail(check.explanation()[0].lower() + check.explanation()[1:].rstrip("."))
        connected = settings.with_database_url(url)
        engine = build_engine(connected)
        try:
            return await action(AppContext.build(connected, build_sessionmaker(engine)))
        finally:
            await engine.dispose()

    with one_line_errors(), database_url(settings) as url:
        return asyncio.run(run(url))


def with_staff_service(settings: Settings, action: Callable[..., Awaitable[T]]) -> T:
    """Run `action(service)` in one committed transaction on the configured database."""
    from app.staff.service import StaffService

    async def run(context) -> T:
        async with context.sessionmaker() as session, session.begin():
            return await action(StaffService(session, context))

    return with_app_context(settings, run)
