"""The investigator CLI against a really running server on a fresh database of the test's own."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.domain.kdf import KeyDerivation
from app.domain.staff import PasswordHashing, Role
from app.main import create_app
from app.settings import Settings
from tests.client.helpers import PASSWORD, Desk, LiveServer, create_admin, serving


@pytest.fixture
async def server(
    fresh_database_url: str,
    settings: Settings,
    password_hashing: PasswordHashing,
    key_derivation: KeyDerivation,
    tmp_path: Path,
) -> AsyncIterator[LiveServer]:
    admin = await create_admin(fresh_database_url, password_hashing)
    # No sessionmaker: the app builds its own engine in its lifespan, as `serve` does.
    app = create_app(settings.with_database_url(fresh_database_url), key_derivation=key_derivation)
    with serving(app) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            response = await client.post(
                "/api/v1/auth/token", data={"username": admin, "password": PASSWORD}
            )
        assert response.status_code == 200, response.text
        yield LiveServer(url, fresh_database_url, response.json()["access_token"], tmp_path)


@pytest.fixture
async def desk(server: LiveServer) -> Desk:
    triage = await server.staff(Role.TRIAGE)  # registered before the report: it is sealed to them
    marker = f"MARKER-{secrets.token_hex(4)}"
    receipt = await server.report(marker)
    listed = httpx.get(
        f"{server.url}/api/v1/cases", headers={"Authorization": f"Bearer {triage.token}"}
    ).json()["items"]
    assert len(listed) == 1
    return Desk(server, triage, receipt, marker, listed[0]["id"])
