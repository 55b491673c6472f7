"""Client-side steps a report form performs, for tests: ask for a challenge, solve it, submit."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from app.domain import pow
from app.domain.kdf import TEST_KEY_DERIVATION
from app.main import create_app


def report_body(marker: str = "", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "channel": "citizen",
        "category": "bribery",
        "org_unit": "construction_transport",
        "language": "ko",
        "content": {
            "summary": f"건축 허가 대가로 금품 요구 {marker}".strip(),
            "details": f"The permit officer asked for an envelope before signing. {marker}".strip(),
            "where": "Building permits desk, 3rd floor",
        },
    }
    body.update(overrides)
    return body


async def solved_pow(client: httpx.AsyncClient) -> dict[str, str]:
    response = await client.post("/api/v1/intake/challenges")
    assert response.status_code == 201, response.text
    issued = response.json()
    return {"challenge": issued["challenge"], "nonce": pow.solve(issued["challenge"], issued["difficulty"])}


async def submit(
    client: httpx.AsyncClient,
    body: dict[str, Any] | None = None,
    *,
    headers: dict[str, str] | None = None,
    with_pow: bool = True,
) -> httpx.Response:
    body = dict(body or report_body())
    if with_pow and "pow" not in body:
        body["pow"] = await solved_pow(client)
    return await client.post("/api/v1/reports", json=body, headers=headers or {})


async def submit_ok(client: httpx.AsyncClient, body: dict[str, Any] | None = None, **kwargs: Any) -> str:
    response = await submit(client, body, **kwargs)
    assert response.status_code == 201, response.text
    return response.json()["receipt"]


async def reporter_headers(client: httpx.AsyncClient, receipt: str) -> dict[str, str]:
    response = await client.post("/api/v1/reporter/sessions", json={"receipt": receipt})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def idempotency_key() -> str:
    return secrets.token_urlsafe(24)


@asynccontextmanager
async def client_for(settings: Any, sessionmaker: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app built with settings a test changed, in the test's transaction
    (with the cheap key derivation of the `app` fixture, so receipts open in both)."""
    app = create_app(settings, sessionmaker=sessionmaker, key_derivation=TEST_KEY_DERIVATION)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        yield client
