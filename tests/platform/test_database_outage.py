"""A database that cannot be reached, or a pool with no connection to spare, is a 503 to
retry (`Retry-After`, a problem document, no stack trace), never a 500."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api.deps import SessionDep
from app.db.session import build_engine, build_sessionmaker
from app.domain.receipts import damm_check_digit
from app.main import create_app
from app.platform.logging import JsonFormatter
from app.settings import Settings
from tests.conftest import _admin
from tests.platform.test_problems import assert_problem

RECEIPT_DIGITS = "12345678901234567890"


@asynccontextmanager
async def service_on(settings: Settings, app_hook=None) -> AsyncIterator[tuple[httpx.AsyncClient, AsyncEngine]]:
    """The app with an engine of its own, as `serve` builds it."""
    engine = build_engine(settings)
    app = create_app(settings, sessionmaker=build_sessionmaker(engine))
    if app_hook is not None:
        app_hook(app, engine)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client, engine
    finally:
        await engine.dispose()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def assert_database_unavailable(response: httpx.Response) -> None:
    body = assert_problem(response, 503)
    assert body["type"] == "urn:cleanwindow:problem:database-unavailable"
    assert response.headers["retry-after"].isdigit() and int(response.headers["retry-after"]) > 0
    assert body["retry_after"] == int(response.headers["retry-after"])
    assert body["request_id"] == response.headers["x-request-id"]
    for internal in ("asyncpg", "sqlalchemy", "Connection", "127.0.0.1", "postgres"):
        assert internal not in response.text


async def requests_that_need_the_database(client: httpx.AsyncClient) -> list[httpx.Response]:
    """Staff, anonymous and reporter paths, each of which must reach the database."""
    return [
        await client.get("/api/v1/users/me", headers={"Authorization": "Bearer some-token"}),
        await client.post("/api/v1/auth/token", data={"username": "alice", "password": "p" * 12}),
        await client.get("/api/v1/intake/form"),
        await client.post(
            "/api/v1/reporter/sessions", json={"receipt": RECEIPT_DIGITS + str(damm_check_digit(RECEIPT_DIGITS))}
        ),
    ]


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    yield stream
    root.removeHandler(handler)


async def test_a_database_server_that_is_down_gives_503_with_retry_after(
    settings: Settings, captured_logs: io.StringIO
) -> None:
    down = settings.with_database_url(f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port()}/cleanwindow")
    async with service_on(down) as (client, _):
        for response in await requests_that_need_the_database(client):
            assert_database_unavailable(response)
        # Readiness says so too, and liveness does not depend on the database.
        assert (await client.get("/readyz")).status_code == 503
        assert (await client.get("/healthz")).status_code == 200
    logged = [json.loads(line) for line in captured_logs.getvalue().splitlines()]
    assert any(entry["msg"] == "database unavailable" and entry["level"] == "WARNING" for entry in logged)
    assert not any(entry["level"] == "ERROR" for entry in logged)


async def test_a_database_dropped_under_a_running_service_gives_503(
    settings: Settings, fresh_database_url: str, postgres_server_url: str
) -> None:
    async with service_on(settings.with_database_url(fresh_database_url)) as (client, _):
        assert (await client.get("/api/v1/intake/form")).status_code == 200  # a pooled connection exists
        name = make_url(fresh_database_url).database
        await _admin(postgres_server_url, f'DROP DATABASE "{name}" WITH (FORCE)')
        for response in await requests_that_need_the_database(client):
            assert_database_unavailable(response)


async def test_an_exhausted_pool_gives_503_after_the_pool_timeout_and_recovers(
    settings: Settings, fresh_database_url: str
) -> None:
    small = settings.model_copy(update={"database_pool_size": 1, "database_pool_timeout_seconds": 0.5})
    async with service_on(small.with_database_url(fresh_database_url)) as (client, engine):
        async with AsyncExitStack() as held:
            # pool_size 1 plus as many overflow: two connections, both taken.
            for _ in range(2):
                connection = await held.enter_async_context(engine.connect())
                await connection.execute(text("SELECT 1"))
            started = time.monotonic()
            response = await client.get("/api/v1/intake/form")
            waited = time.monotonic() - started
            assert_database_unavailable(response)
            assert 0.4 < waited < 5
        assert (await client.get("/api/v1/intake/form")).status_code == 200


async def test_a_connection_lost_in_the_middle_of_a_request_gives_503(
    settings: Settings, fresh_database_url: str
) -> None:
    def add_route(app, engine: AsyncEngine) -> None:
        @app.get("/_test/lose-connection")
        async def lose_connection(session: SessionDep) -> None:
            pid = await session.scalar(text("SELECT pg_backend_pid()"))
            async with engine.connect() as other:
                await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            await session.execute(text("SELECT 1"))

    async with service_on(settings.with_database_url(fresh_database_url), add_route) as (client, _):
        assert_database_unavailable(await client.get("/_test/lose-connection"))
        assert (await client.get("/api/v1/intake/form")).status_code == 200


async def test_connections_the_server_closed_while_idle_are_replaced_not_failed(
    settings: Settings, fresh_database_url: str, postgres_server_url: str
) -> None:
    """A database restart or failover between requests ends every pooled connection; the
    next requests get fresh ones instead of a 503."""
    async with service_on(settings.with_database_url(fresh_database_url)) as (client, engine):
        async with AsyncExitStack() as held:  # three connections in the pool
            for _ in range(3):
                await (await held.enter_async_context(engine.connect())).execute(text("SELECT 1"))
        assert engine.pool.checkedin() == 3
        name = make_url(fresh_database_url).database
        await _admin(
            postgres_server_url,
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()",
        )
        await asyncio.sleep(0.3)  # the restart happened between requests, not during one
        for _ in range(5):
            assert (await client.get("/api/v1/intake/form")).status_code == 200
