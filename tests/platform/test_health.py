from __future__ import annotations

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, async_sessionmaker, create_async_engine

from app.db.migrations import head_revision
from app.main import create_app
from app.platform.metrics import HTTP_REQUESTS


async def test_healthz_answers_while_the_process_runs(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_200_when_the_schema_is_at_head(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "schema_revision": head_revision()}


async def test_readyz_is_503_when_the_schema_is_behind(
    client: httpx.AsyncClient, db_connection: AsyncConnection
) -> None:
    await db_connection.execute(text("UPDATE alembic_version SET version_num = 'older'"))
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert "older" in response.json()["detail"]
    assert "cleanwindow db upgrade" in response.json()["detail"]


async def test_readyz_is_503_when_the_schema_was_never_created(
    client: httpx.AsyncClient, db_connection: AsyncConnection
) -> None:
    await db_connection.execute(text("DROP TABLE alembic_version"))
    response = await client.get("/readyz")
    assert response.status_code == 503


async def test_readyz_is_503_when_the_database_does_not_answer(settings) -> None:
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    engine = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none", pool_pre_ping=False)
    app = create_app(settings, sessionmaker=async_sessionmaker(engine))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/readyz")
    await engine.dispose()
    assert response.status_code == 503
    assert response.json()["detail"] == "The database does not answer."


async def test_metrics_are_prometheus_text_labelled_by_route_template(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")
    await client.get("/api/v1/users/00000000-0000-0000-0000-000000000000/deactivate")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    body = response.text
    assert 'cleanwindow_http_requests_total{method="GET",route="/healthz",status="200"}' in body
    assert "cleanwindow_http_request_duration_seconds_bucket" in body
    # Raw paths never become labels: ids (or a receipt typed in a path) stay out.
    assert "00000000-0000-0000-0000-000000000000" not in body


def total_requests_counted() -> float:
    return sum(
        sample.value
        for metric in HTTP_REQUESTS.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


async def test_reporter_facing_requests_are_not_counted_in_metrics(client: httpx.AsyncClient) -> None:
    # A public counter polled every second would time each submission to the second.
    before = total_requests_counted()
    for path in ("/", "/report", "/api/v1/reporter/report", "/api/v1/reports", "/status", "/typo"):
        await client.get(path)
    assert total_requests_counted() == before
    await client.get("/healthz")
    assert total_requests_counted() == before + 1


async def test_metrics_expose_no_process_figures_and_no_invented_methods(client: httpx.AsyncClient) -> None:
    for n in range(3):
        await client.request(f"BREW{n}", "/healthz")
    body = (await client.get("/metrics")).text
    # CPU, memory and GC figures would show each report submission's spike.
    for family in ("process_cpu_seconds_total", "process_resident_memory_bytes", "python_gc_"):
        assert family not in body
    assert "BREW" not in body
    assert 'method="OTHER",route="/healthz"' in body
