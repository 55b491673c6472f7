"""Running Alembic from the service and the CLI, and asking whether a schema is current."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

if TYPE_CHECKING:
    from app.db.privileges import PrivilegeChanges

_PACKAGE_DIR = Path(__file__).resolve().parent.parent

# Several replicas may start at once and each applies migrations; this transaction-level
# advisory lock makes the others wait and then find nothing left to do. Granting the
# service's role takes it too (app/db/privileges.py).
MIGRATION_LOCK_KEY = 0x636C65616E77  # "cleanw"


# The job queue's own tables, types and functions: created by our migration from the
# library's schema file, then compared by no one (the library owns their shape).
JOB_QUEUE_PREFIX = "procrastinate_"


def is_ours(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic's `include_name`: autogenerate and the schema comparison skip the job
    queue's objects."""
    return not (name or "").startswith(JOB_QUEUE_PREFIX)


def migrations_directory() -> Path:
    # Installed from a wheel the migrations live inside the package; in a source
    # checkout they are the top-level `migrations/` folder.
    for candidate in (_PACKAGE_DIR / "migrations", _PACKAGE_DIR.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise RuntimeError("the Alembic migrations folder is missing from this installation")


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_directory()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@lru_cache(maxsize=1)
def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"the migrations have {len(heads)} heads; merge them")
    return heads[0]


def _upgrade_on(connection: Connection, revision: str) -> None:
    command.upgrade(alembic_config(connection=connection), revision)


def _downgrade_on(connection: Connection, revision: str) -> None:
    command.downgrade(alembic_config(connection=connection), revision)


async def upgrade(connection: AsyncConnection, revision: str = "head") -> None:
    await connection.run_sync(_upgrade_on, revision)


async def downgrade(connection: AsyncConnection, revision: str) -> None:
    await connection.run_sync(_downgrade_on, revision)


async def upgrade_database(
    database_url: str, revision: str = "head", *, grant_to: str | None = None
) -> PrivilegeChanges | None:
    """Migrate; with `grant_to`, then give that role the service's privileges in the same
    transaction, so that a refused role leaves the database as it was and the service's
    role never sees a table it may not yet use."""
    engine = create_async_engine(database_url, hide_parameters=True)
    try:
        async with engine.begin() as connection:
            await upgrade(connection, revision)
            if grant_to is None:
                return None
            from app.db.privileges import grant_service_role

            return await grant_service_role(connection, grant_to)
    finally:
        await engine.dispose()


async def grant_database(database_url: str, role: str) -> PrivilegeChanges:
    """Give `role` the service's privileges on the database as it stands, in one transaction."""
    from app.db.privileges import grant_service_role

    engine = create_async_engine(database_url, hide_parameters=True)
    try:
        async with engine.begin() as connection:
            return await grant_service_role(connection, role)
    finally:
        await engine.dispose()


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(connection: AsyncConnection) -> str | None:
    return await connection.run_sync(_current_revision)


async def database_revision(database_url: str) -> str | None:
    engine = create_async_engine(database_url, hide_parameters=True)
    try:
        async with engine.connect() as connection:
            return await current_revision(connection)
    finally:
        await engine.dispose()
