"""The `cleanwindow` command, run as a separate process the way an operator runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from app.db.migrations import head_revision
from app.main import create_app
from app.staff.models import StaffUser

PASSWORD = "a sufficiently long passphrase"


def run_cli(*args: str, database_url: str | None, stdin: str | None = None, cwd: Path | None = None,
            extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEANWINDOW_") and k != "DATABASE_URL"}
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        input=stdin, env=env, cwd=cwd, capture_output=True, text=True, timeout=120,
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )


async def stored_user(database_url: str, username: str) -> StaffUser | None:
    engine = create_async_engine(database_url)
    try:
        async with async_sessionmaker(engine)() as session:
            return await session.scalar(select(StaffUser).where(StaffUser.username == username))
    finally:
        await engine.dispose()


async def test_users_create_reads_the_password_from_stdin_and_the_account_logs_in(
    fresh_database_url: str, settings
) -> None:
    result = run_cli("users", "create", "Chief.Auditor", "--role", "auditor",
                     database_url=fresh_database_url, stdin=PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    assert "created auditor account 'chief.auditor'" in result.stdout
    user = await stored_user(fresh_database_url, "chief.auditor")
    assert user is not None and user.role == "auditor"
    assert user.password_hash.startswith("$argon2id$")

    engine = create_async_engine(fresh_database_url)
    app = create_app(settings, sessionmaker=async_sessionmaker(engine, expire_on_commit=False))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.post("/api/v1/auth/token", data={"username": "chief.auditor", "password": PASSWORD})
    await engine.dispose()
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["users", "create", "weak", "--role", "triage"], "short\n", "at least 12 characters"),
        (["users", "create", "no-password", "--role", "triage"], "\n", "no password on standard input"),
        (["users", "create", "x", "--role", "triage"], PASSWORD + "\n", "username is 3 to 64"),
    ],
)
async def test_users_create_refuses_bad_input_with_a_clear_message(
    fresh_database_url: str, args: list[str], stdin: str, message: str
) -> None:
    result = run_cli(*args, database_url=fresh_database_url, stdin=stdin)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert await stored_user(fresh_database_url, args[2]) is None


async def test_users_create_refuses_an_unknown_role(fresh_database_url: str) -> None:
    result = run_cli("users", "create", "someone", "--role", "superuser", database_url=fresh_database_url, stdin=PASSWORD)
    assert result.returncode == 2
    assert "superuser" in result.stderr


async def test_users_create_refuses_a_duplicate(fresh_database_url: str) -> None:
    first = run_cli("users", "create", "twice", "--role", "triage", database_url=fresh_database_url, stdin=PASSWORD)
    second = run_cli("users", "create", "twice", "--role", "admin", database_url=fresh_database_url, stdin=PASSWORD)
    assert first.returncode == 0
    assert second.returncode == 1
    assert "already exists" in second.stderr
    assert (await stored_user(fresh_database_url, "twice")).role == "triage"


async def test_users_create_asks_for_a_migration_on_an_unmigrated_database(empty_database_url: str) -> None:
    result = run_cli("users", "create", "early", "--role", "admin", database_url=empty_database_url, stdin=PASSWORD)
    assert result.returncode == 1
    assert "cleanwindow db upgrade" in result.stderr


async def test_db_upgrade_migrates_the_database_named_by_database_url(empty_database_url: str) -> None:
    result = run_cli("db", "upgrade", database_url=empty_database_url)
    assert result.returncode == 0, result.stderr
    assert head_revision() in result.stdout
    again = run_cli("db", "upgrade", database_url=empty_database_url)
    assert again.returncode == 0


@pytest.mark.parametrize(
    ("args", "stdin"),
    [(["db", "upgrade"], None), (["users", "create", "someone", "--role", "triage"], PASSWORD + "\n")],
)
def test_an_unreachable_database_is_a_one_line_error(tmp_path: Path, args: list[str], stdin: str | None) -> None:
    result = run_cli(*args, database_url="postgresql://nobody@127.0.0.1:1/none", cwd=tmp_path, stdin=stdin)
    assert result.returncode == 1
    assert result.stderr.startswith("cleanwindow: cannot use the database")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_a_missing_database_is_a_one_line_error(postgres_server_url: str, tmp_path: Path) -> None:
    from sqlalchemy import make_url

    missing = make_url(postgres_server_url).set(database="cw_does_not_exist").render_as_string(hide_password=False)
    result = run_cli("db", "upgrade", database_url=missing, cwd=tmp_path)
    assert result.returncode == 1
    assert "cw_does_not_exist" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


async def test_users_unlock_lifts_a_lock(fresh_database_url: str) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import text, update

    assert run_cli("users", "create", "locked-out", "--role", "admin", database_url=fresh_database_url, stdin=PASSWORD).returncode == 0
    engine = create_async_engine(fresh_database_url)
    async with engine.begin() as connection:
        await connection.execute(
            update(StaffUser).where(StaffUser.username == "locked-out")
            .values(failed_login_count=9, locked_until=datetime.now(UTC) + timedelta(hours=1))
        )
    await engine.dispose()

    result = run_cli("users", "unlock", "locked-out", database_url=fresh_database_url)
    assert result.returncode == 0, result.stderr
    user = await stored_user(fresh_database_url, "locked-out")
    assert (user.failed_login_count, user.locked_until) == (0, None)
    # Both account changes made at the command line are in the audit chain, by no one.
    engine = create_async_engine(fresh_database_url)
    async with engine.connect() as connection:
        audited = (await connection.execute(text("SELECT action, actor_username, details FROM audit_log ORDER BY seq"))).all()
    await engine.dispose()
    assert [(row.action, row.actor_username, row.details["username"]) for row in audited] == [
        ("user.created", None, "locked-out"),
        ("user.unlocked", None, "locked-out"),
    ]

    unknown = run_cli("users", "unlock", "nobody-at-all", database_url=fresh_database_url)
    assert unknown.returncode == 1
    assert "No staff account" in unknown.stderr


async def test_a_database_newer_than_this_version_is_a_one_line_error(fresh_database_url: str) -> None:
    from sqlalchemy import text

    engine = create_async_engine(fresh_database_url)
    async with engine.begin() as connection:
        await connection.execute(text("UPDATE alembic_version SET version_num = 'fromthefuture'"))
    await engine.dispose()
    upgrade = run_cli("db", "upgrade", database_url=fresh_database_url)
    assert upgrade.returncode == 1
    assert "fromthefuture" in upgrade.stderr
    assert len(upgrade.stderr.strip().splitlines()) == 1
    create = run_cli("users", "create", "someone", "--role", "triage", database_url=fresh_database_url, stdin=PASSWORD)
    assert create.returncode == 1
    assert "fromthefuture" in create.stderr
