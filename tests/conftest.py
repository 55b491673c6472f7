"""Test fixtures: a real PostgreSQL, the real migrations, the real app over HTTP.

The server is `TEST_DATABASE_URL` when given (any database on a server where the suite
may create and drop databases), else an embedded PostgreSQL started for the run. The
suite migrates a template database once; each test then either runs inside a transaction
rolled back at its end (`db_connection`, the default for HTTP tests), or gets a database
of its own cloned from the template (`fresh_database_url`) when it needs real commits
seen by several connections.

Argon2 is the suite's largest cost: apps built here derive keys with the cheap
`TEST_KEY_DERIVATION` (the `key_derivation` fixture), except where a test asks for
production's (the KDF tests in tests/domain, the end-to-end run, `cleanwindow serve`).
Hypothesis runs its quick profile locally and its thorough one when `CI` is set (or
`HYPOTHESIS_PROFILE` names one).
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import date, datetime
from pathlib import Path

import httpx
import pytest
from hypothesis import settings as hypothesis_settings
from sqlalchemy import func, make_url, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker, create_async_engine

from app.db import migrations
from app.cases.models import Case
from app.db.session import SessionMaker, build_engine, build_sessionmaker
from app.domain.clock import organisation_date, organisation_zone, utc_now
from app.domain.crypto import PrivateKey
from app.domain.kdf import TEST_KEY_DERIVATION, KeyDerivation
from app.domain.staff import PasswordHashing, Role
from app.main import create_app
from app.settings import Settings
from app.staff.models import StaffUser

TEST_SECRET_KEY = "test-secret-key-that-is-long-enough-0123456789"
STRONG_PASSWORD = "correct horse battery staple"
# Set explicitly so that no CLEANWINDOW_TIMEZONE in the environment changes the tests' dates.
# Seoul is UTC+9 all year: its date differs from UTC's from 00:00 to 09:00 every day.
TEST_TIMEZONE = "Asia/Seoul"


def organisation_today() -> date:
    """Today as the app under test dates things (its clock, the test settings' zone)."""
    return organisation_date(utc_now(), organisation_zone(TEST_TIMEZONE))

# "ci" keeps hypothesis's default of 100 examples (what the tests ran before profiles
# existed); "quick" is for the edit-test loop. Tests that ask for more or fewer examples
# than the default scale from the profile with `examples()`.
hypothesis_settings.register_profile("ci", max_examples=100)
hypothesis_settings.register_profile("quick", max_examples=25)
_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if _CI else "quick"))


def examples(thorough: int) -> int:
    """`thorough` examples under the "ci" profile, proportionally fewer under "quick"."""
    return max(1, thorough * hypothesis_settings.default.max_examples // 100)


def _async_url(raw: str) -> str:
    url = make_url(raw)
    return url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """URL of a maintenance database on the PostgreSQL server the suite uses.

    The embedded server's folder is a temporary folder of its own, not one under pytest's
    base temporary folder: a second pytest run on the machine deletes all but the three
    newest of those when it starts, and with them this run's database."""
    given = os.environ.get("TEST_DATABASE_URL")
    if given:
        yield _async_url(given)
        return
    from app.db.embedded import embedded_postgres

    folder = Path(tempfile.mkdtemp(prefix="cw-suite-pg-"))
    try:
        with embedded_postgres(folder, database="postgres") as url:
            yield url
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def database_url_named(server_url: str, name: str) -> str:
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def _admin(server_url: str, *statements: str) -> None:
    engine = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
async def template_database(postgres_server_url: str) -> AsyncIterator[str]:
    """Name of a database migrated to head that nothing stays connected to."""
    name = f"cw_template_{secrets.token_hex(4)}"
    await _admin(postgres_server_url, f'CREATE DATABASE "{name}"')
    await migrations.upgrade_database(database_url_named(postgres_server_url, name))
    yield name
    await _admin(postgres_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def clone_database(server_url: str, template: str) -> str:
    name = f"cw_test_{secrets.token_hex(6)}"
    await _admin(server_url, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return name


@pytest.fixture(scope="session")
async def engine(postgres_server_url: str, template_database: str) -> AsyncIterator[AsyncEngine]:
    name = await clone_database(postgres_server_url, template_database)
    engine = create_async_engine(database_url_named(postgres_server_url, name))
    yield engine
    await engine.dispose()
    await _admin(postgres_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def db_connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection inside a transaction that is rolled back when the test ends."""
    async with engine.connect() as connection:
        transaction = await connection.begin()
        try:
            yield connection
        finally:
            if transaction.is_active:
                await transaction.rollback()


@pytest.fixture
def sessionmaker(db_connection: AsyncConnection) -> SessionMaker:
    # The app's commits become savepoint releases inside the test's outer transaction.
    return async_sessionmaker(
        bind=db_connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )


@pytest.fixture
async def fresh_database_url(postgres_server_url: str, template_database: str) -> AsyncIterator[str]:
    """A migrated database of this test's own, for tests that need real commits."""
    name = await clone_database(postgres_server_url, template_database)
    yield database_url_named(postgres_server_url, name)
    await _admin(postgres_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def empty_database_url(postgres_server_url: str) -> AsyncIterator[str]:
    """A database with no schema at all, for migration tests."""
    name = f"cw_empty_{secrets.token_hex(6)}"
    await _admin(postgres_server_url, f'CREATE DATABASE "{name}"')
    yield database_url_named(postgres_server_url, name)
    await _admin(postgres_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def recovery_key() -> PrivateKey:
    """The organisation's offline recovery key pair; the test suite plays the offline side."""
    return PrivateKey.generate()


# Low enough to solve in a few milliseconds, high enough that a wrong nonce fails.
TEST_POW_DIFFICULTY = 8


@pytest.fixture
def settings(recovery_key: PrivateKey) -> Settings:
    return Settings(
        _env_file=None,
        environment="production",
        secret_key=TEST_SECRET_KEY,
        DATABASE_URL="postgresql+asyncpg://unused@localhost/unused",
        RECOVERY_PUBLIC_KEY=recovery_key.public_key.to_text(),
        POW_DIFFICULTY=TEST_POW_DIFFICULTY,
        timezone=TEST_TIMEZONE,
    )


@pytest.fixture
def key_derivation() -> KeyDerivation:
    """What the test's apps derive keys with; a module that must run production's
    parameters overrides this fixture."""
    return TEST_KEY_DERIVATION


@pytest.fixture(scope="session")
def password_hashing() -> PasswordHashing:
    """Makes stored staff hashes with the cheap parameters (an app on production's
    parameters rehashes one at its first login, as it would an old hash)."""
    return PasswordHashing(TEST_KEY_DERIVATION.passwords)


@pytest.fixture(scope="session")
def strong_password_hash(password_hashing: PasswordHashing) -> str:
    """Every account the suite creates shares one password: hash it once."""
    return password_hashing.hash(STRONG_PASSWORD)


@pytest.fixture
def app(settings: Settings, sessionmaker: SessionMaker, key_derivation: KeyDerivation):
    return create_app(settings, sessionmaker=sessionmaker, key_derivation=key_derivation)


class FixedClock:
    """The app's clock, stopped at an instant the test sets: `clock.now = datetime(...)`."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(app) -> FixedClock:
    """Stops the app's clock (the context's `clock`) at the present until the test moves it."""
    fixed = FixedClock(utc_now())
    app.state.context = dataclasses.replace(app.state.context, clock=fixed)
    return fixed


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


class StaffFactory:
    """Creates staff accounts directly in the test's transaction and logs them in."""

    def __init__(
        self,
        sessionmaker: SessionMaker,
        client: httpx.AsyncClient,
        hashing: PasswordHashing,
        strong_password_hash: str | None = None,
    ):
        self.sessionmaker = sessionmaker
        self.client = client
        self.hashing = hashing
        self.strong_password_hash = strong_password_hash or hashing.hash(STRONG_PASSWORD)

    def _hash(self, password: str) -> str:
        return self.strong_password_hash if password == STRONG_PASSWORD else self.hashing.hash(password)

    async def create(self, role: Role, *, username: str | None = None, password: str = STRONG_PASSWORD) -> StaffUser:
        username = username or f"{role.value.replace('_', '-')}-{secrets.token_hex(3)}"
        async with self.sessionmaker() as session:
            user = StaffUser(username=username, role=role.value, password_hash=self._hash(password))
            session.add(user)
            await session.commit()
        return user

    async def token_for(self, user: StaffUser, password: str = STRONG_PASSWORD) -> str:
        response = await self.client.post(
            "/api/v1/auth/token", data={"username": user.username, "password": password}
        )
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    async def headers_for(self, role: Role) -> dict[str, str]:
        user = await self.create(role)
        return {"Authorization": f"Bearer {await self.token_for(user)}"}


@pytest.fixture
def staff(
    sessionmaker: SessionMaker,
    client: httpx.AsyncClient,
    password_hashing: PasswordHashing,
    strong_password_hash: str,
) -> StaffFactory:
    return StaffFactory(sessionmaker, client, password_hashing, strong_password_hash)


@pytest.fixture(scope="session")
def project_root() -> Path:
    return Path(__file__).resolve().parent.parent


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
async def live(
    fresh_database_url: str, settings: Settings, key_derivation: KeyDerivation
) -> AsyncIterator[LiveService]:
    settings = settings.with_database_url(fresh_database_url)
    engine = build_engine(settings)
    sessionmaker = build_sessionmaker(engine)
    app = create_app(settings, sessionmaker=sessionmaker, key_derivation=key_derivation)
    # A client address and port the app can see, as behind a real connection.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=("203.0.113.77", 40123))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield LiveService(fresh_database_url, settings, client, sessionmaker)
    await engine.dispose()
