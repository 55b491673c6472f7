"""Running Alembic from the service and the CLI, and asking whether this code may run on
the schema it finds.

A rolling deploy migrates the schema while the previous release's pods still serve. Each
migration declares `backward_compatible` (True: the previous revision's code still runs on
the new schema; see migrations/script.py.mako). After every upgrade or downgrade,
migrations/env.py records in `schema_compatibility` which code revisions may run on the
schema reached: its own head, and each earlier revision reached back through backward
compatible migrations only. Code whose head is on that list stays ready on a newer schema;
code that finds its own head's ancestors is behind and waits for `cleanwindow db upgrade`.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Connection, DateTime, String, Table, func, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from app.db.base import Base

if TYPE_CHECKING:
    from app.db.privileges import PrivilegeChanges

_PACKAGE_DIR = Path(__file__).resolve().parent.parent

# Several replicas may start at once and each applies migrations; this transaction-level
# advisory lock makes the others wait and then find nothing left to do. Granting the
# service's role takes it too (app/db/privileges.py).
MIGRATION_LOCK_KEY = 0x636C65616E77  # "cleanw"

# Written by migrations/env.py, one row per schema revision ever reached.
schema_compatibility = Table(
    "schema_compatibility",
    Base.metadata,
    Column("schema_revision", String(32), primary_key=True),
    Column("code_revisions", ARRAY(String(32)), nullable=False),
    Column("recorded_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
)


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


@lru_cache(maxsize=1)
def known_revisions() -> frozenset[str]:
    return frozenset(script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions())


def compatible_code_revisions(scripts: ScriptDirectory, schema_revision: str) -> list[str]:
    """The code revisions that may run on a schema at `schema_revision`: itself, then each
    parent for as long as the migration leading away from it declares
    `backward_compatible = True` (a migration that does not say is taken as breaking)."""
    revisions = [schema_revision]
    script = scripts.get_revision(schema_revision)
    while script is not None and getattr(script.module, "backward_compatible", False) is True:
        down = script.down_revision
        parents = (down,) if isinstance(down, str) else tuple(down or ())
        if len(parents) != 1:  # a merge point: which parent's code would be meant is unclear
            break
        revisions.append(parents[0])
        script = scripts.get_revision(parents[0])
    return revisions


def record_compatibility(connection: Connection, scripts: ScriptDirectory) -> None:
    """Called by migrations/env.py in the migration's transaction, once the schema is where
    it was asked to be. Nothing to record before this table's own migration, or below it."""
    if connection.scalar(text("SELECT to_regclass('schema_compatibility') IS NOT NULL")) is not True:
        return
    reached = MigrationContext.configure(connection).get_current_revision()
    if reached is None:
        return
    code = compatible_code_revisions(scripts, reached)
    connection.execute(
        text(
            "INSERT INTO schema_compatibility (schema_revision, code_revisions) VALUES (:schema, :code) "
            "ON CONFLICT (schema_revision) DO UPDATE SET code_revisions = EXCLUDED.code_revisions, "
            "recorded_at = now()"
        ),
        {"schema": reached, "code": code},
    )


class SchemaFit(enum.Enum):
    CURRENT = "current"  # at this code's head
    AHEAD_COMPATIBLE = "ahead, compatible"  # newer, and it lists this code's head
    AHEAD_INCOMPATIBLE = "ahead, incompatible"  # newer, and this code may not run on it
    BEHIND = "behind"  # older (or empty): `cleanwindow db upgrade`

    @property
    def runnable(self) -> bool:
        return self in (SchemaFit.CURRENT, SchemaFit.AHEAD_COMPATIBLE)


@dataclass(frozen=True)
class SchemaCheck:
    found: str | None
    fit: SchemaFit

    def explanation(self) -> str:
        head = head_revision()
        found = self.found or "no revision"
        if self.fit is SchemaFit.CURRENT:
            return f"The database schema is at {found}, this version's head."
        if self.fit is SchemaFit.AHEAD_COMPATIBLE:
            return f"The database schema is at {found}, newer than this version's {head}, and declared compatible with it."
        if self.fit is SchemaFit.AHEAD_INCOMPATIBLE:
            return (
                f"The database schema is at {found}, newer than this version's {head}, and not compatible "
                "with it: finish the rollout of the newer version."
            )
        return f"The database schema is at {found}, not at {head}; run `cleanwindow db upgrade`."


def schema_fit(found: str | None, compatible_code: Collection[str] | None) -> SchemaFit:
    """`compatible_code` is what `schema_compatibility` lists for `found` (None if no row)."""
    head = head_revision()
    if found == head:
        return SchemaFit.CURRENT
    if found is None or found in known_revisions():
        return SchemaFit.BEHIND
    return SchemaFit.AHEAD_COMPATIBLE if compatible_code and head in compatible_code else SchemaFit.AHEAD_INCOMPATIBLE


def _check_schema(connection: Connection) -> SchemaCheck:
    found = _current_revision(connection)
    compatible = None
    if found is not None and found != head_revision() and found not in known_revisions():
        compatible = connection.scalar(
            text("SELECT code_revisions FROM schema_compatibility WHERE schema_revision = :revision"),
            {"revision": found},
        )
    return SchemaCheck(found, schema_fit(found, compatible))


async def check_schema(connection: AsyncConnection) -> SchemaCheck:
    return await connection.run_sync(_check_schema)


async def database_schema(database_url: str) -> SchemaCheck:
    engine = create_async_engine(database_url, hide_parameters=True)
    try:
        async with engine.connect() as connection:
            return await check_schema(connection)
    finally:
        await engine.dispose()


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
