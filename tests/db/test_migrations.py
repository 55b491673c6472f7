"""The migrations, walked on a real PostgreSQL: every step up, down and up again."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import DateTime, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from app.db import migrations
from app.models import Base


def revisions_oldest_first() -> list[str]:
    script = ScriptDirectory.from_config(migrations.alembic_config())
    return [revision.revision for revision in reversed(list(script.walk_revisions()))]


SCHEMA_SNAPSHOT = text(
    """
    SELECT 'column', c.relname, a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
           || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
           || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
      FROM pg_attribute a
      JOIN pg_class c ON c.oid = a.attrelid
      LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
       AND a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT 'relation', relname, relkind::text FROM pg_class
     WHERE relnamespace = 'public'::regnamespace
    UNION ALL
    SELECT 'constraint', conrelid::regclass::text, conname || ' ' || pg_get_constraintdef(oid)
      FROM pg_constraint WHERE connamespace = 'public'::regnamespace
    UNION ALL
    SELECT 'index', tablename, indexdef FROM pg_indexes WHERE schemaname = 'public'
    UNION ALL
    SELECT 'trigger', tgrelid::regclass::text, pg_get_triggerdef(oid) FROM pg_trigger
     WHERE NOT tgisinternal
       AND tgrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'public'::regnamespace)
    UNION ALL
    SELECT 'function', proname, pg_get_functiondef(oid) FROM pg_proc
     WHERE pronamespace = 'public'::regnamespace AND prokind IN ('f', 'p')
    UNION ALL
    SELECT 'type', typname, typtype::text FROM pg_type
     WHERE typnamespace = 'public'::regnamespace AND typtype IN ('e', 'd')
    ORDER BY 1, 2, 3
    """
)


async def schema_snapshot(engine) -> list[tuple[str, str, str]]:
    """Everything a migration can leave behind: columns with types and defaults,
    constraints, indexes, triggers, functions, types, sequences."""
    async with engine.connect() as connection:
        return [tuple(row) for row in (await connection.execute(SCHEMA_SNAPSHOT)).all()]


async def test_stairway_every_revision_goes_up_down_and_up_again(empty_database_url: str) -> None:
    engine = create_async_engine(empty_database_url)
    try:
        previous = "base"
        before = await schema_snapshot(engine)
        for revision in revisions_oldest_first():
            async with engine.begin() as connection:
                await migrations.upgrade(connection, revision)
            after = await schema_snapshot(engine)
            assert after != before, f"{revision} changed nothing"

            async with engine.begin() as connection:
                await migrations.downgrade(connection, previous)
                assert await migrations.current_revision(connection) == (None if previous == "base" else previous)
            assert _without_alembic(await schema_snapshot(engine)) == _without_alembic(before), (
                f"downgrading {revision} left the schema different"
            )

            async with engine.begin() as connection:
                await migrations.upgrade(connection, revision)
                assert await migrations.current_revision(connection) == revision
            assert await schema_snapshot(engine) == after, f"{revision} upgraded twice differs"
            previous, before = revision, after
    finally:
        await engine.dispose()


def _without_alembic(snapshot: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    # Alembic creates its version table on the first upgrade and keeps it after a
    # downgrade to base; it is not part of any revision.
    return [row for row in snapshot if "alembic_version" not in row[1] and "alembic_version" not in row[2]]


def test_revision_files_are_date_prefixed() -> None:
    versions = migrations.migrations_directory() / "versions"
    names = sorted(path.name for path in versions.glob("*.py"))
    assert names
    for name in names:
        date, _, rest = name.partition("-")
        assert len(date) == len("2026_11_21_2232") and date.replace("_", "").isdigit(), name


def test_there_is_a_single_head() -> None:
    assert migrations.head_revision() == revisions_oldest_first()[-1]


async def test_the_models_match_the_migrated_schema(engine: AsyncEngine) -> None:
    def differences(sync_connection):
        context = MigrationContext.configure(
            sync_connection,
            opts={"compare_type": True, "compare_server_default": True, "include_name": migrations.is_ours},
        )
        return compare_metadata(context, Base.metadata)

    async with engine.connect() as connection:
        assert await connection.run_sync(differences) == []


def test_every_timestamp_column_is_timezone_aware() -> None:
    naive = [
        f"{table.name}.{column.name}"
        for table in Base.metadata.tables.values()
        for column in table.columns
        if isinstance(column.type, DateTime) and not column.type.timezone
    ]
    assert naive == []


async def test_every_constraint_in_the_database_is_named_by_the_convention(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        names = (
            await connection.execute(
                text(
                    "SELECT conname FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
                    "WHERE n.nspname = 'public' AND conrelid <> 'alembic_version'::regclass "
                    # The job queue's tables are procrastinate's, named by its schema file.
                    "AND conrelid::regclass::text NOT LIKE 'procrastinate\\_%'"
                )
            )
        ).scalars().all()
    assert names
    assert [name for name in names if not name.startswith(("pk_", "fk_", "uq_", "ck_"))] == []


async def test_the_role_check_constraint_refuses_unknown_roles(db_connection: AsyncConnection) -> None:
    with pytest.raises(IntegrityError, match="ck_staff_users_role"):
        async with db_connection.begin_nested():
            await db_connection.execute(
                text("INSERT INTO staff_users (id, username, role, password_hash) "
                     "VALUES (gen_random_uuid(), 'rogue', 'superuser', 'x')")
            )


async def test_background_work_dates_a_closed_cases_closing_by_the_organisations_calendar(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Retention counts from `closed_on`: a case closed at 08:30 in Seoul on 2 March (23:30
    UTC on 1 March) closed on 2 March, as the service itself dates it."""
    monkeypatch.delenv("CLEANWINDOW_TIMEZONE", raising=False)  # the default: Asia/Seoul
    await migrations.upgrade_database(empty_database_url, "498834cb3284")
    engine = create_async_engine(empty_database_url)
    try:
        async with engine.begin() as connection:
            actor = await connection.scalar(
                text("INSERT INTO staff_users (id, username, role, password_hash) "
                     "VALUES (gen_random_uuid(), 'closer', 'supervisor', 'x') RETURNING id")
            )
            case_id = await connection.scalar(
                text(
                    "INSERT INTO cases (id, channel, category, language, state, version, received_on, "
                    "acknowledge_due_on, feedback_due_on, resolution, receipt_scheme, receipt_tag, "
                    "reporter_public_key, sealed_report) VALUES (gen_random_uuid(), 'citizen', 'bribery', 'ko', "
                    "'closed', 3, '2026-02-01', '2026-02-10', '2026-05-10', 'duplicate', 1, "
                    "sha256('closer'::bytea), 'k', 'r') RETURNING id"
                )
            )
            await connection.execute(
                text("INSERT INTO case_transitions (id, case_id, version, action, from_state, to_state, actor_id, "
                     "occurred_at, resolution) VALUES (gen_random_uuid(), :case, 3, 'dismiss', 'assessing', 'closed', "
                     ":actor, '2026-03-01T23:30:00Z', 'duplicate')"),
                {"case": case_id, "actor": actor},
            )
        await migrations.upgrade_database(empty_database_url)
        async with engine.connect() as connection:
            closed_on = await connection.scalar(text("SELECT closed_on FROM cases WHERE id = :id"), {"id": case_id})
    finally:
        await engine.dispose()
    assert closed_on.isoformat() == "2026-03-02"
