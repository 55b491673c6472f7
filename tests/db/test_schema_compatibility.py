"""Rolling deploys: a replica stays ready on a schema newer than its code when the
migrations in between declare themselves backward compatible, and only then."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from app.cli.server import migrate_unless_newer
from app.db.migrations import (
    SchemaFit,
    alembic_config,
    compatible_code_revisions,
    database_schema,
    head_revision,
    migrations_directory,
)
from tests.platform.test_database_outage import service_on
from tests.test_serve import free_port

# The first revision written under the rule; every later one must say whether it is.
FIRST_DECLARING_REVISION = "7e2a91c4d5b0"


async def test_readyz_stays_200_on_a_newer_schema_that_lists_this_code(
    client: httpx.AsyncClient, db_connection: AsyncConnection
) -> None:
    await db_connection.execute(text("UPDATE alembic_version SET version_num = 'f00dfeed0001'"))
    await db_connection.execute(
        text("INSERT INTO schema_compatibility (schema_revision, code_revisions) VALUES ('f00dfeed0001', :code)"),
        {"code": ["f00dfeed0001", head_revision()]},
    )
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "schema_revision": "f00dfeed0001", "schema_fit": "ahead, compatible"}


@pytest.mark.parametrize("listed", [None, ["f00dfeed0002", "f00dfeed0001"]], ids=["no-row", "not-listed"])
async def test_readyz_is_503_on_a_newer_schema_that_does_not_list_this_code(
    client: httpx.AsyncClient, db_connection: AsyncConnection, listed: list[str] | None
) -> None:
    await db_connection.execute(text("UPDATE alembic_version SET version_num = 'f00dfeed0002'"))
    if listed is not None:
        await db_connection.execute(
            text("INSERT INTO schema_compatibility (schema_revision, code_revisions) VALUES ('f00dfeed0002', :code)"),
            {"code": listed},
        )
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert "newer than this version's" in response.json()["detail"]
    assert "finish the rollout" in response.json()["detail"]


async def test_the_migrations_record_what_code_may_run_on_the_head(db_connection: AsyncConnection) -> None:
    recorded = await db_connection.scalar(
        text("SELECT code_revisions FROM schema_compatibility WHERE schema_revision = :head"),
        {"head": head_revision()},
    )
    scripts = ScriptDirectory.from_config(alembic_config())
    assert recorded == compatible_code_revisions(scripts, head_revision())
    assert recorded[0] == head_revision()


def test_every_migration_under_the_rule_declares_whether_it_is_backward_compatible() -> None:
    scripts = ScriptDirectory.from_config(alembic_config())
    under_rule = [FIRST_DECLARING_REVISION] + [
        script.revision
        for script in scripts.walk_revisions(base=FIRST_DECLARING_REVISION, head="heads")
        if script.revision != FIRST_DECLARING_REVISION
    ]
    for revision in under_rule:
        module = scripts.get_revision(revision).module
        assert isinstance(getattr(module, "backward_compatible", None), bool), (
            f"migration {revision} must set `backward_compatible` (see migrations/script.py.mako)"
        )


def test_the_template_makes_a_new_migration_breaking_until_its_author_says_otherwise(project_root: Path) -> None:
    template = (project_root / "migrations" / "script.py.mako").read_text()
    assert "backward_compatible: bool = False" in template


FUTURE_MIGRATION = '''
"""A later release's migration, for the test."""
import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = "{down}"
branch_labels = None
depends_on = None
backward_compatible = {compatible}


def upgrade() -> None:
    op.add_column("cases", sa.Column("{column}", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("cases", "{column}")
'''


def later_release(tmp_path: Path, *migrations: tuple[str, bool]) -> Config:
    """A copy of this release's migrations with the given later ones on top: what the
    next release's migration Job runs."""
    folder = tmp_path / "migrations"
    shutil.copytree(migrations_directory(), folder, ignore=shutil.ignore_patterns("__pycache__"))
    down = head_revision()
    for revision, compatible in migrations:
        (folder / "versions" / f"{revision}_later.py").write_text(
            textwrap.dedent(FUTURE_MIGRATION).format(
                revision=revision, down=down, compatible=compatible, column=f"later_{revision}"
            )
        )
        down = revision
    config = Config()
    config.set_main_option("script_location", str(folder))
    return config


async def run_alembic(database_url: str, config: Config, action, revision: str) -> None:
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as connection:

            def run(sync_connection) -> None:
                config.attributes["connection"] = sync_connection
                action(config, revision)

            await connection.run_sync(run)
    finally:
        await engine.dispose()


@pytest.mark.slow
async def test_a_rolling_deploy_keeps_the_old_code_ready_until_a_breaking_migration(
    tmp_path: Path, fresh_database_url: str, settings
) -> None:
    """The next release migrates (expand): this release's replicas stay ready, its worker
    and CLI still run, and its `serve` does not try to migrate. A release whose migration
    breaks this code makes it unready; going back down makes it ready again."""
    connected = settings.with_database_url(fresh_database_url)
    expand = later_release(tmp_path / "expand", ("aaaa00000001", True))
    await run_alembic(fresh_database_url, expand, command.upgrade, "head")

    check = await database_schema(fresh_database_url)
    assert (check.found, check.fit) == ("aaaa00000001", SchemaFit.AHEAD_COMPATIBLE)
    await migrate_unless_newer(fresh_database_url)  # nothing to do, and no error
    assert (await database_schema(fresh_database_url)).found == "aaaa00000001"
    async with service_on(connected) as (client, _):
        ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["schema_fit"] == "ahead, compatible"

    contract = later_release(tmp_path / "contract", ("aaaa00000001", True), ("aaaa00000002", False))
    await run_alembic(fresh_database_url, contract, command.upgrade, "head")
    assert (await database_schema(fresh_database_url)).fit is SchemaFit.AHEAD_INCOMPATIBLE
    async with service_on(connected) as (client, _):
        assert (await client.get("/readyz")).status_code == 503

    await run_alembic(fresh_database_url, contract, command.downgrade, head_revision())
    check = await database_schema(fresh_database_url)
    assert (check.found, check.fit) == (head_revision(), SchemaFit.CURRENT)
    async with service_on(connected) as (client, _):
        assert (await client.get("/readyz")).json()["schema_fit"] == "current"


@pytest.mark.slow
def test_serve_with_migrate_on_start_off_leaves_the_schema_alone(
    tmp_path: Path, empty_database_url: str, settings
) -> None:
    """Kubernetes' replicas connect as a role that may not change the schema: they start,
    stay unready, and wait for the migration Job."""
    port = free_port()
    env = {
        "PATH": str(Path(sys.executable).parent),
        "CLEANWINDOW_ENV": "production",
        "CLEANWINDOW_SECRET_KEY": settings.secret_key.get_secret_value(),
        "DATABASE_URL": empty_database_url,
        "RECOVERY_PUBLIC_KEY": settings.recovery_public_key,
        "POW_DIFFICULTY": "8",
        "CLEANWINDOW_MIGRATE_ON_START": "false",
        "CLEANWINDOW_DATA_DIR": str(tmp_path),
    }
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "cleanwindow"), "serve", "--port", str(port)],
            env=env, cwd=tmp_path, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    try:
        response = None
        for _ in range(300):
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, log.read_text()
                time.sleep(0.1)
        assert response is not None, log.read_text()
        assert response.status_code == 503
        assert "run `cleanwindow db upgrade`" in response.json()["detail"]
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert asyncio.run(database_schema(empty_database_url)).found is None
