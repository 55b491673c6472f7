"""Staff login, tokens, throttling and role checks, through the real HTTP API."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, async_sessionmaker, create_async_engine

from app.domain.kdf import PRODUCTION_KEY_DERIVATION, TEST_KEY_DERIVATION
from app.domain.staff import Role
from app.main import create_app
from app.platform.cpu import CpuBudget
from app.staff.models import StaffToken, StaffUser
from tests.conftest import STRONG_PASSWORD, StaffFactory

TOKEN_URL = "/api/v1/auth/token"


async def login(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post(TOKEN_URL, data={"username": username, "password": password})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_good_login_issues_a_bearer_token_that_identifies_the_user(
    client: httpx.AsyncClient, staff: StaffFactory
) -> None:
    user = await staff.create(Role.TRIAGE)
    response = await login(client, user.username, STRONG_PASSWORD)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["access_token"].startswith("cws_")
    assert 0 < body["expires_in"] <= 8 * 3600
    assert body["expires_at"].endswith("Z")

    me = await client.get("/api/v1/users/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json()["username"] == user.username
    assert me.json()["role"] == "triage"


async def test_usernames_are_case_insensitive_at_login(client: httpx.AsyncClient, staff: StaffFactory) -> None:
    user = await staff.create(Role.TRIAGE)
    assert (await login(client, user.username.upper(), STRONG_PASSWORD)).status_code == 200


async def test_bad_password_and_unknown_user_get_the_same_401(
    client: httpx.AsyncClient, staff: StaffFactory
) -> None:
    user = await staff.create(Role.TRIAGE)
    wrong = await login(client, user.username, "not the password at all")
    unknown = await login(client, "nobody-here", "not the password at all")
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
    assert wrong.json() == unknown.json()
    assert wrong.json()["type"] == "urn:cleanwindow:problem:invalid-credentials"


async def test_a_deactivated_account_cannot_log_in(
    client: httpx.AsyncClient, staff: StaffFactory, db_connection: AsyncConnection
) -> None:
    user = await staff.create(Role.TRIAGE)
    await db_connection.execute(update(StaffUser).where(StaffUser.id == user.id).values(is_active=False))
    assert (await login(client, user.username, STRONG_PASSWORD)).status_code == 401


async def test_repeated_failures_lock_the_account_even_against_the_right_password(
    client: httpx.AsyncClient, staff: StaffFactory, settings, db_connection: AsyncConnection
) -> None:
    user = await staff.create(Role.TRIAGE)
    free = settings.auth.login_free_attempts
    for _ in range(free):
        assert (await login(client, user.username, "wrong password guess")).status_code == 401

    locked = await login(client, user.username, STRONG_PASSWORD)
    assert locked.status_code == 429
    assert locked.headers["content-type"] == "application/problem+json"
    retry_after = int(locked.headers["retry-after"])
    assert 0 < retry_after <= settings.auth.login_base_lockout_seconds
    assert locked.json()["retry_after"] == retry_after

    # Once the lock has passed, the right password works and the count starts over.
    await db_connection.execute(
        update(StaffUser)
        .where(StaffUser.id == user.id)
        .values(locked_until=datetime.now(UTC) - timedelta(seconds=1))
    )
    assert (await login(client, user.username, STRONG_PASSWORD)).status_code == 200
    row = (await db_connection.execute(select(StaffUser.failed_login_count).where(StaffUser.id == user.id))).one()
    assert row.failed_login_count == 0


async def test_each_failure_after_the_lock_doubles_it(
    client: httpx.AsyncClient, staff: StaffFactory, settings, db_connection: AsyncConnection
) -> None:
    user = await staff.create(Role.TRIAGE)
    await db_connection.execute(
        update(StaffUser)
        .where(StaffUser.id == user.id)
        .values(
            failed_login_count=settings.auth.login_free_attempts,
            last_failed_login_at=datetime.now(UTC) - timedelta(minutes=1),
            locked_until=None,
        )
    )
    assert (await login(client, user.username, "still wrong password")).status_code == 401
    retry_after = int((await login(client, user.username, STRONG_PASSWORD)).headers["retry-after"])
    assert settings.auth.login_base_lockout_seconds < retry_after <= 2 * settings.auth.login_base_lockout_seconds


async def test_failures_older_than_the_memory_window_are_forgotten(
    client: httpx.AsyncClient, staff: StaffFactory, settings, db_connection: AsyncConnection
) -> None:
    user = await staff.create(Role.TRIAGE)
    long_ago = datetime.now(UTC) - timedelta(seconds=settings.auth.login_failure_memory_seconds + 60)
    await db_connection.execute(
        update(StaffUser)
        .where(StaffUser.id == user.id)
        .values(failed_login_count=50, last_failed_login_at=long_ago, locked_until=None)
    )
    # Last month's burst does not make today's first typo lock the account.
    assert (await login(client, user.username, "one honest typo")).status_code == 401
    assert (await login(client, user.username, STRONG_PASSWORD)).status_code == 200


async def test_an_admin_can_lift_a_lock_at_once(
    client: httpx.AsyncClient, staff: StaffFactory, settings
) -> None:
    admin_headers = await staff.headers_for(Role.ADMIN)
    victim = await staff.create(Role.INVESTIGATOR)
    for _ in range(settings.auth.login_free_attempts):
        await login(client, victim.username, "attacker guess here")
    assert (await login(client, victim.username, STRONG_PASSWORD)).status_code == 429

    unlocked = await client.post(f"/api/v1/users/{victim.id}/unlock", headers=admin_headers)
    assert unlocked.status_code == 200
    assert (await login(client, victim.username, STRONG_PASSWORD)).status_code == 200


async def test_only_admins_can_unlock(client: httpx.AsyncClient, staff: StaffFactory) -> None:
    headers = await staff.headers_for(Role.SUPERVISOR)
    target = await staff.create(Role.TRIAGE)
    assert (await client.post(f"/api/v1/users/{target.id}/unlock", headers=headers)).status_code == 403


async def test_a_revoked_token_stops_working(client: httpx.AsyncClient, staff: StaffFactory) -> None:
    user = await staff.create(Role.INVESTIGATOR)
    token = await staff.token_for(user)
    assert (await client.delete(TOKEN_URL, headers=bearer(token))).status_code == 204
    response = await client.get("/api/v1/users/me", headers=bearer(token))
    assert response.status_code == 401
    assert response.json()["type"] == "urn:cleanwindow:problem:not-authenticated"


async def test_an_expired_token_stops_working(
    client: httpx.AsyncClient, staff: StaffFactory, db_connection: AsyncConnection
) -> None:
    user = await staff.create(Role.INVESTIGATOR)
    token = await staff.token_for(user)
    assert (await client.get("/api/v1/users/me", headers=bearer(token))).status_code == 200
    await db_connection.execute(
        update(StaffToken)
        .where(StaffToken.user_id == user.id)
        .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    assert (await client.get("/api/v1/users/me", headers=bearer(token))).status_code == 401


@pytest.mark.parametrize("token", ["", "cws_forged", "not-even-a-token", "cws_" + "A" * 43])
async def test_unknown_tokens_are_refused(client: httpx.AsyncClient, token: str) -> None:
    response = await client.get("/api/v1/users/me", headers=bearer(token))
    assert response.status_code == 401


async def test_tokens_and_passwords_are_stored_only_as_digests(
    client: httpx.AsyncClient, staff: StaffFactory, db_connection: AsyncConnection
) -> None:
    user = await staff.create(Role.SUPERVISOR)
    token = await staff.token_for(user)
    rows = []
    for table in ("staff_users", "staff_tokens"):
        rows += (await db_connection.execute(text(f"SELECT t::text FROM {table} t"))).scalars().all()
    dump = "\n".join(rows)
    assert user.username in dump  # the dump does contain the rows
    assert token not in dump
    assert token.removeprefix("cws_") not in dump
    assert STRONG_PASSWORD not in dump
    stored_hash = (await db_connection.execute(select(StaffUser.password_hash).where(StaffUser.id == user.id))).scalar()
    assert stored_hash.startswith("$argon2id$")


@pytest.mark.parametrize("role", [role for role in Role if role is not Role.ADMIN])
async def test_every_role_but_admin_gets_403_on_user_administration(
    client: httpx.AsyncClient, staff: StaffFactory, role: Role
) -> None:
    headers = await staff.headers_for(role)
    response = await client.get("/api/v1/users", headers=headers)
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert "admin" in response.json()["detail"]
    created = await client.post(
        "/api/v1/users", headers=headers, json={"username": "sneaky", "role": "admin", "password": "x" * 20}
    )
    assert created.status_code == 403


async def test_an_admin_creates_lists_and_deactivates_accounts(
    client: httpx.AsyncClient, staff: StaffFactory
) -> None:
    admin_headers = await staff.headers_for(Role.ADMIN)
    created = await client.post(
        "/api/v1/users",
        headers=admin_headers,
        json={"username": "New.Investigator", "role": "investigator", "password": "a long enough passphrase"},
    )
    assert created.status_code == 201, created.text
    assert created.json()["username"] == "new.investigator"

    listed = await client.get("/api/v1/users", headers=admin_headers)
    assert "new.investigator" in [user["username"] for user in listed.json()]

    token = (await login(client, "new.investigator", "a long enough passphrase")).json()["access_token"]
    deactivated = await client.post(f"/api/v1/users/{created.json()['id']}/deactivate", headers=admin_headers)
    assert deactivated.status_code == 200
    assert deactivated.json()["is_active"] is False
    assert (await client.get("/api/v1/users/me", headers=bearer(token))).status_code == 401


@pytest.mark.parametrize(
    ("username", "password", "fragment"),
    [
        ("ab", "a long enough passphrase", "username"),
        ("has space", "a long enough passphrase", "username"),
        ("valid-name", "short", "at least 12"),
        ("valid-name", "my valid-name password", "must not contain the username"),
    ],
)
async def test_account_creation_refuses_bad_usernames_and_weak_passwords(
    client: httpx.AsyncClient, staff: StaffFactory, username: str, password: str, fragment: str
) -> None:
    headers = await staff.headers_for(Role.ADMIN)
    response = await client.post(
        "/api/v1/users", headers=headers, json={"username": username, "role": "triage", "password": password}
    )
    assert response.status_code == 422
    assert fragment in response.json()["detail"]


async def test_a_duplicate_username_is_a_409(client: httpx.AsyncClient, staff: StaffFactory) -> None:
    headers = await staff.headers_for(Role.ADMIN)
    existing = await staff.create(Role.TRIAGE)
    response = await client.post(
        "/api/v1/users",
        headers=headers,
        json={"username": existing.username, "role": "triage", "password": "a long enough passphrase"},
    )
    assert response.status_code == 409


async def test_an_admin_cannot_deactivate_themselves(client: httpx.AsyncClient, staff: StaffFactory) -> None:
    admin = await staff.create(Role.ADMIN)
    headers = bearer(await staff.token_for(admin))
    response = await client.post(f"/api/v1/users/{admin.id}/deactivate", headers=headers)
    assert response.status_code == 409


# --- the throttle is shared state in PostgreSQL, not per process -------------------------


class Replica:
    """One more instance of the service on the same database, as behind a load balancer."""

    def __init__(self, settings, database_url: str):
        self.engine = create_async_engine(database_url, pool_size=12)
        self.app = create_app(
            settings,
            sessionmaker=async_sessionmaker(self.engine, expire_on_commit=False),
            key_derivation=TEST_KEY_DERIVATION,
        )
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app, raise_app_exceptions=False), base_url="http://replica"
        )

    async def close(self) -> None:
        await self.client.aclose()
        await self.engine.dispose()


async def _create_committed_user(database_url: str, password_hashing, username: str) -> None:
    engine = create_async_engine(database_url)
    async with async_sessionmaker(engine)() as session:
        session.add(StaffUser(username=username, role="triage", password_hash=password_hashing.hash(STRONG_PASSWORD)))
        await session.commit()
    await engine.dispose()


async def test_a_lock_earned_on_one_replica_holds_on_another(
    settings, fresh_database_url: str, password_hashing
) -> None:
    await _create_committed_user(fresh_database_url, password_hashing, "shared-lock")
    first, second = Replica(settings, fresh_database_url), Replica(settings, fresh_database_url)
    try:
        for _ in range(settings.auth.login_free_attempts):
            assert (await login(first.client, "shared-lock", "a wrong guess here")).status_code == 401
        assert (await login(second.client, "shared-lock", STRONG_PASSWORD)).status_code == 429
    finally:
        await first.close()
        await second.close()


async def test_parallel_guesses_are_each_counted(settings, fresh_database_url: str, password_hashing) -> None:
    await _create_committed_user(fresh_database_url, password_hashing, "parallel-target")
    replica = Replica(settings, fresh_database_url)
    attempts = 2 * settings.auth.login_free_attempts
    try:
        responses = await asyncio.gather(
            *(login(replica.client, "parallel-target", f"guess number {n}") for n in range(attempts))
        )
    finally:
        await replica.close()
    statuses = sorted(response.status_code for response in responses)
    free = settings.auth.login_free_attempts
    assert statuses == [401] * free + [429] * (attempts - free)

    engine = create_async_engine(fresh_database_url)
    async with engine.connect() as connection:
        count = await connection.scalar(
            select(StaffUser.failed_login_count).where(StaffUser.username == "parallel-target")
        )
    await engine.dispose()
    assert count == free


async def test_a_login_flood_gets_503_instead_of_exhausting_the_replica(
    settings, fresh_database_url: str, password_hashing
) -> None:
    """Argon2 work is bounded per process; what does not fit in time is refused with 503,
    and no database connection is held while hashing, so the rest of the service (here
    the readiness probe, on a pool of a single connection) keeps answering."""
    await _create_committed_user(fresh_database_url, password_hashing, "flood-target")
    tight = settings.model_copy(
        update={"auth": settings.auth.model_copy(update={"max_concurrent_hashes": 1, "hash_queue_seconds": 1.5})}
    )
    # With a single connection and a short pool timeout, a login that held its connection
    # while hashing would make the probe (or other logins) time out.
    engine = create_async_engine(fresh_database_url, pool_size=1, max_overflow=0, pool_timeout=1)
    # Production's Argon2 on purpose: the flood must cost what a real one does.
    app = create_app(
        tight,
        sessionmaker=async_sessionmaker(engine, expire_on_commit=False),
        key_derivation=PRODUCTION_KEY_DERIVATION,
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://replica") as client:
        flood = [
            # ~24 Argon2 evaluations of ~0.13 s each cannot all fit in a 1.5 s queue.
            login(client, "flood-target" if n % 6 == 0 else f"nobody-{n}", f"guess {n} wrong")
            for n in range(24)
        ]
        *responses, ready = await asyncio.gather(*flood, client.get("/readyz"))
    await engine.dispose()

    statuses = [response.status_code for response in responses]
    assert 503 in statuses
    busy = next(response for response in responses if response.status_code == 503)
    assert busy.headers["content-type"] == "application/problem+json"
    assert busy.json()["type"] == "urn:cleanwindow:problem:busy"
    assert int(busy.headers["retry-after"]) >= 1
    assert set(statuses) <= {401, 429, 503}
    assert ready.status_code == 200


async def test_a_busy_answer_is_not_counted_against_the_account(
    app, client: httpx.AsyncClient, staff: StaffFactory, db_connection: AsyncConnection
) -> None:
    """When no hashing slot is free the login gets 503 before anything is counted, so a
    flood of made-up usernames cannot turn a staff member's retries into a lock."""
    user = await staff.create(Role.TRIAGE)
    app.state.context = dataclasses.replace(
        app.state.context, login_cpu=CpuBudget(1, max_wait_seconds=0.05)
    )
    async with app.state.context.login_cpu.slot():  # someone else's login holds the only slot
        for _ in range(8):
            busy = await login(client, user.username, STRONG_PASSWORD)
            assert busy.status_code == 503
    count = await db_connection.scalar(select(StaffUser.failed_login_count).where(StaffUser.id == user.id))
    assert count == 0
    assert (await login(client, user.username, STRONG_PASSWORD)).status_code == 200
