"""Asking for an identity, and its two ways out: the reporter's consent, a legal ground."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from app.cases.models import CaseKey
from app.domain import crypto
from app.identity.models import CaseIdentity
from tests.identity.helpers import CONTACT, REASON, Office, answer_as_reporter, mailbox


async def test_the_investigator_reads_the_report_but_not_the_identity(office: Office) -> None:
    receipt, case_id = await office.file_identified_report()
    await office.assign_and_grant(case_id)
    investigator = office["investigator"]

    case = (await office.client.get(f"/api/v1/cases/{case_id}", headers=investigator.headers)).json()
    assert case["identified"] is True and case["identity_released_to_you"] is False
    content_key = crypto.open_content_key(crypto.b64url_decode(case["content_key"]["sealed_key"]), investigator.key, case_id)
    report = crypto.open_sealed(content_key, crypto.b64url_decode(case["sealed_report"]), purpose="report", case_id=case_id)
    assert b"contact\": null" in report and CONTACT["name"].encode() not in report

    async with office.sessionmaker() as session:
        sealed_identity = (await session.get(CaseIdentity, case_id)).sealed_identity
        their_keys = (await session.scalars(select(CaseKey.sealed_key).where(CaseKey.case_id == case_id))).all()
    with pytest.raises(crypto.DecryptionFailed):
        crypto.open_identity(content_key, sealed_identity, case_id)
    for sealed in their_keys:  # no sealed key in the case's keys opens as an identity key for them
        with pytest.raises(crypto.DecryptionFailed):
            crypto.open_identity_key(sealed, investigator.key, case_id)
    refused = await office.client.get(f"/api/v1/cases/{case_id}/identity", headers=investigator.headers)
    assert refused.status_code == 403 and refused.json()["type"].endswith("identity-not-released")

    # The reporter still sees their own contact.
    assert (await mailbox(office.client, receipt))["contact"] == CONTACT


async def test_consent_then_a_custodian_releases(office: Office) -> None:
    receipt, case_id = await office.file_identified_report()
    await office.assign_and_grant(case_id)

    asked = await office.ask(case_id, "investigator")
    assert asked.status_code == 201, asked.text
    request_id = asked.json()["id"]
    assert asked.json()["status"] == "pending"

    seen = (await mailbox(office.client, receipt))["identity_requests"]
    assert [(item["id"], item["status"], item["reason"], item["requested_by_role"]) for item in seen] == [
        (request_id, "pending", REASON, "investigator")
    ]
    # Before consent, no custodian may release it.
    early = await office.release(request_id, "custodian")
    assert early.status_code in (403, 409), early.text

    consented = await answer_as_reporter(office.client, receipt, request_id, "consent")
    assert consented.status_code == 200, consented.text
    assert consented.json()["status"] == "consented"

    released = await office.release(request_id, "custodian")
    assert released.status_code == 200, released.text
    assert released.json()["status"] == "released" and released.json()["basis"] == "consent"
    assert await office.read_identity(case_id, "investigator") == CONTACT
    case = (await office.client.get(f"/api/v1/cases/{case_id}", headers=office["investigator"].headers)).json()
    assert case["identity_released_to_you"] is True

    seen = (await mailbox(office.client, receipt))["identity_requests"]
    assert seen[0]["status"] == "released" and seen[0]["may_answer"] is False

    audit = (await office.client.get("/api/v1/audit?limit=500", headers=office["custodian"].headers)).json()
    actions = [(entry["action"], entry["details"].get("request_id")) for entry in audit["items"] if entry["case_id"] == str(case_id)]
    assert ("identity.requested", request_id) in actions
    assert ("identity.released", request_id) in actions
    assert ("identity.read", request_id) in actions
    release_entry = next(e for e in audit["items"] if e["action"] == "identity.released")
    assert release_entry["details"]["basis"] == "consent" and release_entry["details"]["reporter_answer"] == "consent"


async def test_legal_obligation_and_the_reporter_is_told(office: Office) -> None:
    receipt, case_id = await office.file_identified_report()
    await office.assign_and_grant(case_id)
    request_id = (await office.ask(case_id, "investigator")).json()["id"]
    declined = await answer_as_reporter(office.client, receipt, request_id, "decline")
    assert declined.json()["status"] == "declined"

    # The custodian cannot release a declined request...
    assert (await office.release(request_id, "custodian")).status_code in (403, 409)
    # ...until a supervisor records a legal ground.
    approved = await office.approve(request_id, "supervisor")
    assert approved.status_code == 200, approved.text
    released = await office.release(request_id, "custodian")
    assert released.status_code == 200, released.text
    assert released.json()["basis"] == "legal_obligation"
    assert await office.read_identity(case_id, "investigator") == CONTACT

    told = (await mailbox(office.client, receipt))["identity_requests"][0]
    assert told["status"] == "released" and told["legal_ground"] and told["your_answer"] == "decline"


async def test_withheld_notice_is_told_when_lifted(office: Office) -> None:
    receipt, case_id = await office.file_identified_report()
    await office.assign_and_grant(case_id)
    request_id = (await office.ask(case_id, "investigator")).json()["id"]
    approved = await office.approve(request_id, "supervisor", withhold="Telling now would alert the suspect before the search.")
    assert approved.status_code == 200 and approved.json()["notice_withheld"] is True
    assert (await office.release(request_id, "custodian")).status_code == 200

    kept = (await mailbox(office.client, receipt))["identity_requests"][0]
    assert kept["status"] == "pending" and kept["legal_ground"] is None and kept["may_answer"] is True
    # An answer is taken as before and changes nothing; a refusal would give the decision away.
    answered = await answer_as_reporter(office.client, receipt, request_id, "decline")
    assert answered.status_code == 200 and answered.json()["status"] == "declined"

    lifted = await office.client.post(f"/api/v1/identity-requests/{request_id}/lift-withholding", headers=office["supervisor2"].headers)
    assert lifted.status_code == 200, lifted.text
    told = (await mailbox(office.client, receipt))["identity_requests"][0]
    assert told["status"] == "released" and told["legal_ground"] and told["may_answer"] is False


async def test_an_anonymous_report_has_no_identity_to_ask_for(office: Office) -> None:
    from tests.intake.helpers import report_body, submit_ok

    before = await office._case_ids()
    await submit_ok(office.client, report_body("anon"))
    (case_id,) = await office._case_ids() - before
    await office.grant(case_id, "supervisor")
    refused = await office.ask(case_id, "supervisor")
    assert refused.status_code == 409 and refused.json()["type"].endswith("no-identity")
    assert isinstance(case_id, uuid.UUID)
