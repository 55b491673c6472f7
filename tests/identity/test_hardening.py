"""What a red-team pass asked for: key material one request at a time and audited, a
release that does not open sent back, a withheld release's record kept as it was, CHECKs
that hold under NULLs, a withheld reason kept from custodians outside the case, and a
downgrade that refuses to destroy identities."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from app.db import migrations
from app.domain import crypto
from app.cases.models import Case
from app.identity.models import CaseIdentity, IdentityKey, IdentityRequest
from tests.cases.helpers import case_row
from tests.identity.helpers import CONTACT, Office, answer_as_reporter
from tests.identity.test_separation import problem, refused_by


async def consented_request(office: Office) -> tuple[str, uuid.UUID, str]:
    receipt, case_id = await office.file_identified_report()
    await office.assign_and_grant(case_id)
    request_id = (await office.ask(case_id, "investigator")).json()["id"]
    assert (await answer_as_reporter(office.client, receipt, request_id, "consent")).status_code == 200
    return receipt, case_id, request_id


async def audit_of(office: Office, action: str) -> list[dict]:
    entries = (await office.client.get(f"/api/v1/audit?action={action}", headers=office["custodian"].headers)).json()
    return entries["items"]


async def test_pending_holds_no_key_material_and_fetching_it_is_audited(office: Office) -> None:
    _, case_id, request_id = await consented_request(office)
    pending = (await office.client.get("/api/v1/identity-requests/pending", headers=office["custodian2"].headers)).json()
    (item,) = [entry for entry in pending["to_release"] if entry["request"]["id"] == request_id]
    assert "custodian_key" not in item and "sealed_identity" not in item
    assert await audit_of(office, "identity.key_fetched") == []

    # Fetching is refused on the same grounds as releasing: not a custodian, not releasable.
    problem(await office.client.get(f"/api/v1/identity-requests/{request_id}/release-material", headers=office["supervisor"].headers), 403, "forbidden")
    _, other_case = await office.file_identified_report("pending one")
    await office.grant(other_case, "supervisor")
    still_pending = (await office.ask(other_case, "supervisor")).json()["id"]
    problem(
        await office.client.get(f"/api/v1/identity-requests/{still_pending}/release-material", headers=office["custodian"].headers),
        409,
        "identity-request-conflict",
    )

    fetched = await office.client.get(f"/api/v1/identity-requests/{request_id}/release-material", headers=office["custodian2"].headers)
    assert fetched.status_code == 200, fetched.text
    key = crypto.open_identity_key(crypto.b64url_decode(fetched.json()["custodian_key"]["sealed_key"]), office["custodian2"].key, case_id)
    assert crypto.open_identity(key, crypto.b64url_decode(fetched.json()["sealed_identity"]), case_id) == CONTACT
    (entry,) = await audit_of(office, "identity.key_fetched")
    assert (entry["actor"], entry["case_id"], entry["details"]["request_id"]) == (office["custodian2"].username, str(case_id), request_id)


async def test_a_release_that_does_not_open_is_sent_back_and_released_again(office: Office) -> None:
    _, case_id, request_id = await consented_request(office)
    requester = office["investigator"]
    garbage = await office.client.post(
        f"/api/v1/identity-requests/{request_id}/release",
        json={"fingerprint": requester.key.public_key.fingerprint, "sealed_key": crypto.b64url_encode(bytes(crypto.SEALED_IDENTITY_KEY_BYTES))},
        headers=office["custodian"].headers,
    )
    assert garbage.status_code == 200  # the server cannot tell: only the requester's key can
    released = (await office.client.get(f"/api/v1/cases/{case_id}/identity", headers=requester.headers)).json()
    with pytest.raises(crypto.DecryptionFailed):
        crypto.open_identity_key(crypto.b64url_decode(released["identity_key"]["sealed_key"]), requester.key, case_id)

    # Only the requester may send it back, and only a released request.
    problem(await office.client.post(f"/api/v1/identity-requests/{request_id}/unopenable", headers=office["supervisor"].headers), 403, "forbidden")
    sent_back = await office.client.post(f"/api/v1/identity-requests/{request_id}/unopenable", headers=requester.headers)
    assert sent_back.status_code == 200, sent_back.text
    assert (sent_back.json()["status"], sent_back.json()["released_by"], sent_back.json()["basis"]) == ("consented", None, None)
    problem(await office.client.post(f"/api/v1/identity-requests/{request_id}/unopenable", headers=requester.headers), 409, "identity-request-conflict")
    async with office.sessionmaker() as session:
        assert (await session.scalars(select(IdentityKey).where(IdentityKey.request_id == uuid.UUID(request_id)))).all() == []
    (entry,) = await audit_of(office, "identity.release_unopenable")
    assert entry["details"]["custodian"] == office["custodian"].username

    assert (await office.release(request_id, "custodian2")).status_code == 200
    assert await office.read_identity(case_id, "investigator") == CONTACT


async def test_an_answer_after_a_withheld_release_is_acknowledged_but_changes_no_record(office: Office) -> None:
    receipt, case_id = await office.file_identified_report()
    await office.assign_and_grant(case_id)
    request_id = (await office.ask(case_id, "investigator")).json()["id"]
    await answer_as_reporter(office.client, receipt, request_id, "decline")
    assert (await office.approve(request_id, "supervisor", withhold="The search is next week.")).status_code == 200
    assert (await office.release(request_id, "custodian")).status_code == 200

    answered = await answer_as_reporter(office.client, receipt, request_id, "consent")
    assert answered.status_code == 200
    assert (answered.json()["status"], answered.json()["your_answer"]) == ("consented", "consent")
    async with office.sessionmaker() as session:
        row = await session.get(IdentityRequest, uuid.UUID(request_id))
    assert (row.status, row.reporter_answer) == ("released", "decline")  # as the release recorded it
    (release,) = [e for e in await audit_of(office, "identity.released") if e["details"]["request_id"] == request_id]
    assert release["details"]["reporter_answer"] == "decline"


async def test_a_custodian_outside_the_case_is_not_shown_why_the_reporter_is_not_told(office: Office) -> None:
    _, case_id = await office.file_identified_report()
    await office.assign_and_grant(case_id)
    request_id = (await office.ask(case_id, "investigator")).json()["id"]
    why = "The suspect would destroy the ledgers if warned."
    assert (await office.approve(request_id, "supervisor", withhold=why)).status_code == 200
    for who, shown in (("supervisor2", why), ("investigator", why), ("custodian", None)):
        seen = (await office.client.get(f"/api/v1/identity-requests/{request_id}", headers=office[who].headers)).json()
        assert (seen["withheld_reason"], seen["notice_withheld"]) == (shown, True), who
    assert why.encode() not in (await office.client.get("/api/v1/identity-requests/pending", headers=office["custodian"].headers)).content


async def test_the_checks_hold_when_the_answer_is_null(office: Office) -> None:
    _, case_id = await office.file_identified_report()
    await office.grant(case_id, "supervisor")
    request_id = uuid.UUID((await office.ask(case_id, "supervisor")).json()["id"])
    custodian = office["custodian"].user.id
    for constraint, statement in (
        ("consent_basis_consented", "UPDATE identity_requests SET status = 'released', custodian_id = :c, released_at = now(), basis = 'consent' WHERE id = :id"),
        ("status_is_the_answer", "UPDATE identity_requests SET status = 'consented' WHERE id = :id"),
        ("status_is_the_answer", "UPDATE identity_requests SET status = 'declined', reporter_answer = 'consent', reporter_answered_on = current_date WHERE id = :id"),
        ("approved_has_approver", "UPDATE identity_requests SET status = 'approved' WHERE id = :id"),
        ("withdrawal_complete", "UPDATE identity_requests SET status = 'withdrawn' WHERE id = :id"),
    ):
        await refused_by(office, constraint, statement, id=request_id, c=custodian)


async def test_a_downgrade_refuses_to_destroy_sealed_identities(fresh_database_url: str) -> None:
    engine = create_async_engine(fresh_database_url)
    try:
        async with engine.connect() as connection:
            async with AsyncSession(connection) as session:
                session.add(case_row())
                await session.flush()
                case_id = await session.scalar(select(Case.id).limit(1))
                session.add(CaseIdentity(case_id=case_id, sealed_identity=b"sealed"))
                await session.commit()
            with pytest.raises(RuntimeError, match="would destroy them"):
                await migrations.downgrade(connection, "3f1d2c4b5a60")
            await connection.rollback()
            assert await connection.scalar(text("SELECT count(*) FROM case_identities")) == 1
    finally:
        await engine.dispose()
