"""Identities meet older reports and drills: a report from before identities were sealed
apart stays readable and is not pretended separated; a drill case's identity is purged
with the campaign."""

from __future__ import annotations

import json

from sqlalchemy import delete, func, select

from app.cases.models import Case, CaseKey
from app.domain import crypto
from app.domain.staff import Role
from app.identity.models import CaseIdentity, IdentityKey, IdentityRequest
from tests.drills.helpers import act, create_campaign, issue_codes
from tests.identity.helpers import CONTACT, Office, answer_as_reporter, mailbox
from tests.intake.helpers import report_body, submit_ok


async def make_legacy(office: Office, case_id, recovery_key: crypto.PrivateKey) -> None:
    """What a case stored before migration 498834cb3284 looks like: the contact inside the
    sealed report, and no identity rows."""
    async with office.sessionmaker() as session:
        case = await session.get(Case, case_id)
        sealed_key = await session.scalar(
            select(CaseKey.sealed_key).where(CaseKey.case_id == case_id, CaseKey.recipient_kind == "recovery")
        )
        content_key = crypto.open_content_key(sealed_key, recovery_key, case_id)
        report = json.loads(crypto.open_sealed(content_key, case.sealed_report, purpose="report", case_id=case_id))
        report["contact"] = CONTACT
        case.sealed_report = crypto.seal(
            content_key, json.dumps(report, ensure_ascii=False).encode(), purpose="report", case_id=case_id
        )
        await session.execute(delete(IdentityKey).where(IdentityKey.case_id == case_id))
        await session.execute(delete(CaseIdentity).where(CaseIdentity.case_id == case_id))
        await session.commit()


async def test_a_report_from_before_keeps_its_contact_readable_and_says_so(office: Office, recovery_key) -> None:
    receipt, case_id = await office.file_identified_report("legacy")
    await make_legacy(office, case_id, recovery_key)

    assert (await mailbox(office.client, receipt))["contact"] == CONTACT  # the reporter still sees it
    case = (await office.client.get(f"/api/v1/cases/{case_id}", headers=office["triage"].headers)).json()
    assert case["identified"] is False  # not pretended separated
    content_key = crypto.open_content_key(crypto.b64url_decode(case["content_key"]["sealed_key"]), office["triage"].key, case_id)
    report = json.loads(crypto.open_sealed(content_key, crypto.b64url_decode(case["sealed_report"]), purpose="report", case_id=case_id))
    assert report["contact"] == CONTACT  # every reader of the case reads it, as before

    refused = await office.ask(case_id, "triage")
    assert refused.status_code == 409 and refused.json()["type"].endswith("no-identity")


async def test_a_drill_cases_identity_and_its_requests_go_with_the_purge(office: Office, staff) -> None:
    _, real_case = await office.file_identified_report("real")
    coordinator = await staff.headers_for(Role.DRILL_COORDINATOR)
    campaign = await create_campaign(office.client, coordinator, blind=True)
    (code,) = await issue_codes(office.client, coordinator, campaign["id"], 1)
    before = await office._case_ids()
    receipt = await submit_ok(
        office.client, report_body("drill", channel="employee", contact=CONTACT), headers={"X-Drill-Token": code}
    )
    (case_id,) = await office._case_ids() - before
    request_id = (await office.ask(case_id, "triage")).json()["id"]
    assert (await answer_as_reporter(office.client, receipt, request_id, "consent")).status_code == 200

    closed = await act(office.client, coordinator, campaign["id"], "close")
    assert closed.status_code == 200, closed.text
    async with office.sessionmaker() as session:
        for model in (CaseIdentity, IdentityKey, IdentityRequest):
            assert await session.scalar(select(func.count()).select_from(model).where(model.case_id == case_id)) == 0
        assert await session.get(Case, case_id) is None
        assert await session.get(CaseIdentity, real_case) is not None  # a real identity is untouched
