"""Cases for staff-side tests: real submissions where content matters, and rows written
straight to the database where only the state machine does (an Argon2id receipt per case
would make a thousand-step test take minutes)."""

from __future__ import annotations

import os
import uuid
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

import httpx

from app.cases.models import Case
from app.cases.service import deadlines
from app.db.session import SessionMaker
from app.domain import crypto
from app.domain.clock import utc_now
from app.domain.triage import acknowledgement_due, feedback_due
from app.drills.models import DrillCampaign
from app.staff.models import StaffUser
from tests.conftest import organisation_today


@lru_cache(maxsize=1)
def _reporter_public_key() -> bytes:
    return crypto.PrivateKey.generate().public_key.raw


def case_row(received_on: date | None = None, **overrides: Any) -> Case:
    received_on = received_on or organisation_today()
    acknowledge_due_on = acknowledgement_due(received_on, 7)
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "channel": "citizen",
        "category": "bribery",
        "org_unit": None,
        "language": "ko",
        "state": "received",
        "version": 1,
        "is_drill": False,
        "received_on": received_on,
        "acknowledge_due_on": acknowledge_due_on,
        "feedback_due_on": feedback_due(acknowledge_due_on, None, 3),
        "receipt_scheme": 1,
        "receipt_tag": os.urandom(32),
        "reporter_public_key": _reporter_public_key(),
        "sealed_report": os.urandom(600),
    }
    values.update(overrides)
    if values["state"] == "closed":
        values.setdefault("closed_on", values.get("acknowledged_on") or received_on)
    case = Case(**values)
    if "next_due_on" not in overrides:
        case.next_due_on = deadlines(case).next_due()  # as the service keeps it
    return case


async def insert_campaign(sessionmaker: SessionMaker, *, blind: bool = False) -> DrillCampaign:
    """A running drill campaign written straight to the database, for cases that need one."""
    now = utc_now()
    async with sessionmaker() as session:
        coordinator = StaffUser(
            username=f"coordinator-{uuid.uuid4().hex[:8]}", role="drill_coordinator", password_hash="unused"
        )
        session.add(coordinator)
        await session.flush()
        campaign = DrillCampaign(
            id=uuid.uuid4(),
            name="test drill",
            starts_at=now - timedelta(hours=1),
            ends_at=now + timedelta(days=1),
            blind=blind,
            state="running",
            token_digest=os.urandom(32),
            scenarios=[],
            created_by_id=coordinator.id,
            created_at=now,
        )
        session.add(campaign)
        await session.commit()
    return campaign


async def insert_case(sessionmaker: SessionMaker, *, blind: bool = False, **overrides: Any) -> Case:
    """A case row; a drill case (`is_drill=True`) gets a campaign of its own, announced
    unless `blind`."""
    if overrides.get("is_drill") and "drill_campaign_id" not in overrides:
        overrides["drill_campaign_id"] = (await insert_campaign(sessionmaker, blind=blind)).id
        overrides.setdefault("shown_as_drill", not blind)
    case = case_row(**overrides)
    async with sessionmaker() as session:
        session.add(case)
        await session.commit()
    return case


def days_ago(days: int) -> date:
    return organisation_today() - timedelta(days=days)


async def transition(
    client: httpx.AsyncClient, headers: dict[str, str], case_id: uuid.UUID | str, action: str, version: int, **fields: Any
) -> httpx.Response:
    return await client.post(
        f"/api/v1/cases/{case_id}/transitions",
        json={"action": action, "expected_version": version, **fields},
        headers=headers,
    )


async def register_key(client: httpx.AsyncClient, headers: dict[str, str]) -> crypto.PrivateKey:
    key = crypto.PrivateKey.generate()
    response = await client.put("/api/v1/users/me/public-key", json={"public_key": key.public_key.to_text()}, headers=headers)
    assert response.status_code == 200, response.text
    return key


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def login(client: httpx.AsyncClient, user: StaffUser, password: str) -> dict[str, str]:
    response = await client.post("/api/v1/auth/token", data={"username": user.username, "password": password})
    assert response.status_code == 200, response.text
    return bearer(response.json()["access_token"])
