from __future__ import annotations

import hmac

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, async_sessionmaker, create_async_engine

from app.db.migrations import head_revision
from app.main import create_app
from app.platform.metrics import HTTP_REQUESTS
from app.settings import Settings

METRICS_TOKEN = "metrics-token-for-the-scraper-0123456789abcdef"
SCRAPER = {"Authorization": f"Bearer {METRICS_TOKEN}"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"metrics_token": SecretStr(METRICS_TOKEN)})


async def test_healthz_answers_while_the_process_runs(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_200_when_the_schema_is_at_head(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "schema_revision": head_revision(), "schema_fit": "current"}


async def test_readyz_is_503_when_the_schema_is_behind(
    client: httpx.AsyncClient, db_connection: AsyncConnection
) -> None:
    await db_connection.execute(text("UPDATE alembic_version SET version_num = '4ca52d7fd92a'"))
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert "4ca52d7fd92a" in response.json()["detail"]
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
    response = await client.get("/metrics", headers=SCRAPER)
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
    body = (await client.get("/metrics", headers=SCRAPER)).text
    # CPU, memory and GC figures would show each report submission's spike.
    for family in ("process_cpu_seconds_total", "process_resident_memory_bytes", "python_gc_"):
        assert family not in body
    assert "BREW" not in body
    assert 'method="OTHER",route="/healthz"' in body


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {METRICS_TOKEN[:-1]}"},
        {"Authorization": f"Bearer {METRICS_TOKEN}x"},
        {"Authorization": f"Basic {METRICS_TOKEN}"},
    ],
    ids=["none", "empty", "wrong", "prefix", "longer", "basic"],
)
async def test_metrics_need_the_token(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    await client.get("/healthz")
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    assert "cleanwindow_http_requests_total" not in response.text


async def test_metrics_are_not_served_without_a_configured_token(
    settings: Settings, sessionmaker
) -> None:
    app = create_app(settings.model_copy(update={"metrics_token": None}), sessionmaker=sessionmaker)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        await client.get("/healthz")
        for headers in ({}, SCRAPER, {"Authorization": "Bearer "}):
            response = await client.get("/metrics", headers=headers)
            assert response.status_code == 404
            assert response.headers["content-type"] == "application/problem+json"
            assert "cleanwindow_http" not in response.text


async def test_the_metrics_token_is_compared_in_constant_time(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def spying_compare_digest(a, b) -> bool:
        compared.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spying_compare_digest)
    assert (await client.get("/metrics", headers={"Authorization": "Bearer x"})).status_code == 401
    assert (await client.get("/metrics", headers=SCRAPER)).status_code == 200
    # Fixed-length digests: neither the time nor the comparison depends on the length sent.
    assert compared == [(32, 32), (32, 32)]
