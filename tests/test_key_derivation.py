"""Which Argon2 parameters the service runs: production's unless the test suite's code
passes its cheap ones, and a receipt opens only under the scheme it was made with."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select

from app.cases.models import Case
from app.db.session import SessionMaker
from app.domain.kdf import PRODUCTION_RECEIPT_SCHEME, TEST_RECEIPT_SCHEME
from app.domain.staff import Role
from app.main import create_app
from app.settings import Settings
from app.staff.models import StaffUser
from tests.conftest import StaffFactory
from tests.intake.helpers import report_body, submit_ok

PRODUCTION_HASH_PREFIX = "$argon2id$v=19$m=65536,t=3,p=4$"
RECEIPT_LOGIN = "/api/v1/reporter/sessions"


@pytest.fixture
async def production_client(settings: Settings, sessionmaker: SessionMaker) -> AsyncIterator[httpx.AsyncClient]:
    """An app built as `cleanwindow serve` builds it: no key derivation passed."""
    app = create_app(settings, sessionmaker=sessionmaker)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://production") as client:
        yield client


async def test_an_app_given_no_key_derivation_runs_production_parameters(
    production_client: httpx.AsyncClient, sessionmaker: SessionMaker, password_hashing, strong_password_hash
) -> None:
    staff = StaffFactory(sessionmaker, production_client, password_hashing, strong_password_hash)
    user = await staff.create(Role.TRIAGE)  # stored with the suite's cheap hash
    await staff.token_for(user)
    async with sessionmaker() as session:
        stored = await session.scalar(select(StaffUser.password_hash).where(StaffUser.id == user.id))
    assert stored.startswith(PRODUCTION_HASH_PREFIX)

    receipt = await submit_ok(production_client, report_body("PRODUCTION-KDF"))
    async with sessionmaker() as session:
        schemes = (await session.scalars(select(Case.receipt_scheme))).all()
    assert schemes == [PRODUCTION_RECEIPT_SCHEME.number]
    assert (await production_client.post(RECEIPT_LOGIN, json={"receipt": receipt})).status_code == 201


async def test_a_receipt_opens_only_under_the_scheme_it_was_made_with(
    client: httpx.AsyncClient, production_client: httpx.AsyncClient, sessionmaker: SessionMaker
) -> None:
    cheap = await submit_ok(client, report_body("TEST-SCHEME"))
    strong = await submit_ok(production_client, report_body("PRODUCTION-SCHEME"))
    async with sessionmaker() as session:
        schemes = sorted((await session.scalars(select(Case.receipt_scheme))).all())
    assert schemes == sorted([TEST_RECEIPT_SCHEME.number, PRODUCTION_RECEIPT_SCHEME.number])

    for receipt, opens, refuses in [(cheap, client, production_client), (strong, production_client, client)]:
        assert (await opens.post(RECEIPT_LOGIN, json={"receipt": receipt})).status_code == 201
        refused = await refuses.post(RECEIPT_LOGIN, json={"receipt": receipt})
        assert refused.status_code == 401
        assert refused.json()["type"] == "urn:cleanwindow:problem:invalid-receipt"
