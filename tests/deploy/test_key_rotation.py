"""Key rotation as docs/operations.md describes it: what a new staff key or a new recovery
key does to the cases already sealed, and the steps that keep them readable."""

from __future__ import annotations

import base64
import json
import uuid

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.cases.models import Case, CaseKey
from app.domain import crypto
from app.domain.staff import Role
from tests.cases.helpers import register_key
from tests.intake.helpers import client_for, report_body, submit_ok


def b64(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


async def test_a_staff_member_with_a_new_key_re_seals_their_cases_to_it_with_a_grant_to_themselves(
    client: httpx.AsyncClient, staff
) -> None:
    officer = await staff.create(Role.TRIAGE)
    headers = {"Authorization": f"Bearer {await staff.token_for(officer)}"}
    old_key = await register_key(client, headers)
    await submit_ok(client, report_body("ROTATE-STAFF"))
    case_id = (await client.get("/api/v1/cases", headers=headers)).json()["items"][0]["id"]

    new_key = await register_key(client, headers)
    detail = (await client.get(f"/api/v1/cases/{case_id}", headers=headers)).json()
    # After the change the case still comes with the key sealed to the old one...
    assert detail["content_key"]["fingerprint"] == old_key.public_key.fingerprint
    content_key = crypto.open_content_key(b64(detail["content_key"]["sealed_key"]), old_key, uuid.UUID(case_id))
    # ...which the owner of the old private key re-seals to the new one (what
    # `cleanwindow cases grant CASE --to <own username> --key OLD_KEY_FILE` sends).
    granted = await client.post(
        f"/api/v1/cases/{case_id}/grants",
        json={
            "grantee": officer.username,
            "fingerprint": new_key.public_key.fingerprint,
            "sealed_key": crypto.b64url_encode(crypto.seal_content_key(content_key, new_key.public_key, uuid.UUID(case_id))),
        },
        headers=headers,
    )
    assert granted.status_code == 201, granted.text

    detail = (await client.get(f"/api/v1/cases/{case_id}", headers=headers)).json()
    assert detail["content_key"]["fingerprint"] == new_key.public_key.fingerprint
    reopened = crypto.open_content_key(b64(detail["content_key"]["sealed_key"]), new_key, uuid.UUID(case_id))
    report = crypto.open_sealed(reopened, b64(detail["sealed_report"]), purpose=crypto.PURPOSE_REPORT, case_id=uuid.UUID(case_id))
    assert "ROTATE-STAFF" in json.loads(report)["content"]["summary"]
    again = await client.post(
        f"/api/v1/cases/{case_id}/grants",
        json={"grantee": officer.username, "fingerprint": new_key.public_key.fingerprint,
              "sealed_key": crypto.b64url_encode(crypto.seal_content_key(content_key, new_key.public_key, uuid.UUID(case_id)))},
        headers=headers,
    )
    assert again.status_code == 409  # done once per case; a second run of the re-seal is harmless


async def test_a_new_recovery_key_seals_new_reports_only_and_the_old_key_stays_needed(
    client: httpx.AsyncClient, settings, sessionmaker, db_connection: AsyncConnection, recovery_key: crypto.PrivateKey
) -> None:
    await submit_ok(client, report_body("BEFORE-ROTATION"))
    new_recovery = crypto.PrivateKey.generate()
    rotated = settings.model_copy(update={"recovery_public_key": new_recovery.public_key.to_text()})
    async with client_for(rotated, sessionmaker) as rotated_client:
        await submit_ok(rotated_client, report_body("AFTER-ROTATION"))

    async with AsyncSession(bind=db_connection) as session:
        # The runbook's question before destroying an old recovery key: how many cases
        # are sealed to it and to nothing the organisation holds offline instead?
        still_old = await session.scalar(
            select(func.count()).select_from(CaseKey).where(
                CaseKey.recipient_kind == "recovery",
                CaseKey.recipient_fingerprint == recovery_key.public_key.fingerprint,
            )
        )
        assert still_old == 1
        cases = {case.id: case for case in await session.scalars(select(Case))}
        keys = (await session.scalars(select(CaseKey).where(CaseKey.recipient_kind == "recovery"))).all()
    opened = {}
    for key in keys:
        for private_key in (recovery_key, new_recovery):
            try:
                content_key = crypto.open_content_key(key.sealed_key, private_key, key.case_id)
            except crypto.DecryptionFailed:
                continue
            report = crypto.open_sealed(
                content_key, cases[key.case_id].sealed_report, purpose=crypto.PURPOSE_REPORT, case_id=key.case_id
            )
            opened[json.loads(report)["content"]["summary"].split()[-1]] = private_key
    assert opened == {"BEFORE-ROTATION": recovery_key, "AFTER-ROTATION": new_recovery}
