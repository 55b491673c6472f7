"""Identity requests refused: bad input, the wrong person, the wrong moment, a stale key.

Each refusal is a problem document with a specific type, and leaves nothing written: no
request row, no status change, no sealed key, no audit entry. Two custodians releasing at
once, or a release racing the reporter's change of mind, leave exactly one winner."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from sqlalchemy import select

from app.cases.models import Case
from app.domain import crypto
from app.domain.staff import Role
from app.identity.models import IdentityKey, IdentityRequest
from tests.cases.helpers import register_key
from app.main import create_app
from app.staff.models import StaffUser
from tests.conftest import StaffFactory
from tests.identity.helpers import REASON, Office, answer_as_reporter

# --- helpers ---------------------------------------------------------------------------------


def problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert body["type"].endswith(slug) and body["status"] == status, body
    return body


async def requests_of(office: Office, case_id: uuid.UUID) -> list[IdentityRequest]:
    async with office.sessionmaker() as session:
        return list(
            await session.scalars(select(IdentityRequest).where(IdentityRequest.case_id == case_id))
        )


async def request_row(office: Office, request_id: str) -> IdentityRequest:
    async with office.sessionmaker() as session:
        row = await session.get(IdentityRequest, uuid.UUID(request_id))
        assert row is not None
        return row


async def requester_keys(office: Office, case_id: uuid.UUID) -> list[IdentityKey]:
    async with office.sessionmaker() as session:
        query = select(IdentityKey).where(
            IdentityKey.case_id == case_id, IdentityKey.holder_kind == "requester"
        )
        return list(await session.scalars(query))


async def audit_actions(office: Office, case_id: uuid.UUID | None = None) -> list[str]:
    query = f"&case_id={case_id}" if case_id else ""
    audit = await office.client.get(
        f"/api/v1/audit?limit=500{query}", headers=office["custodian"].headers
    )
    assert audit.status_code == 200, audit.text
    return [
        entry["action"]
        for entry in audit.json()["items"]
        if entry["action"].startswith("identity.")
    ]


async def ask_ok(office: Office, case_id: uuid.UUID, who: str) -> str:
    asked = await office.ask(case_id, who)
    assert asked.status_code == 201, asked.text
    return asked.json()["id"]


async def answer_ok(office: Office, receipt: str, request_id: str, answer: str) -> dict[str, Any]:
    answered = await answer_as_reporter(office.client, receipt, request_id, answer)
    assert answered.status_code == 200, answered.text
    return answered.json()


async def release_work(office: Office, request_id: str, who: str) -> dict[str, Any]:
    """What a custodian's client fetches before releasing `request_id`."""
    pending = await office.client.get(
        "/api/v1/identity-requests/pending", headers=office[who].headers
    )
    assert pending.status_code == 200, pending.text
    assert request_id in {item["request"]["id"] for item in pending.json()["to_release"]}
    material = await office.client.get(
        f"/api/v1/identity-requests/{request_id}/release-material", headers=office[who].headers
    )
    assert material.status_code == 200, material.text
    return material.json()


def resealed(office: Office, work: dict[str, Any], who: str) -> tuple[str, bytes]:
    """The requester's fingerprint and the identity key re-sealed to it, as the client makes them."""
    case_id = uuid.UUID(work["request"]["case_id"])
    identity_key = crypto.open_identity_key(
        crypto.b64url_decode(work["custodian_key"]["sealed_key"]), office[who].key, case_id
    )
    requester = crypto.PublicKey.from_text(work["requester_public_key"])
    return requester.fingerprint, crypto.seal_identity_key(identity_key, requester, case_id)


async def post_release(
    client: httpx.AsyncClient,
    office: Office,
    request_id: str,
    who: str,
    fingerprint: str,
    sealed: bytes | str,
) -> httpx.Response:
    return await client.post(
        f"/api/v1/identity-requests/{request_id}/release",
        json={
            "fingerprint": fingerprint,
            "sealed_key": sealed if isinstance(sealed, str) else crypto.b64url_encode(sealed),
        },
        headers=office[who].headers,
    )


async def identified_case(office: Office) -> tuple[str, uuid.UUID]:
    receipt, case_id = await office.file_identified_report()
    await office.assign_and_grant(case_id)
    return receipt, case_id


# --- asking -------------------------------------------------------------------------------------


async def test_a_reason_too_short_is_refused_and_nothing_written(office: Office) -> None:
    _, case_id = await identified_case(office)
    for reason in ("too short", "x" * 19, "   padded but short    ", ""):
        refused = await office.ask(case_id, "investigator", reason=reason)
        body = problem(refused, 422, "validation-error")
        assert [error["location"] for error in body["errors"]] == ["body.reason"]
    problem(await office.ask(case_id, "investigator", reason="x" * 4001), 422, "validation-error")
    missing = await office.client.post(
        f"/api/v1/cases/{case_id}/identity-requests",
        json={},
        headers=office["investigator"].headers,
    )
    problem(missing, 422, "validation-error")
    extra = await office.client.post(
        f"/api/v1/cases/{case_id}/identity-requests",
        json={"reason": REASON, "requester": office["triage"].username},
        headers=office["investigator"].headers,
    )
    problem(extra, 422, "validation-error")
    assert await requests_of(office, case_id) == []
    assert await audit_actions(office, case_id) == []
    # Exactly twenty characters is enough.
    assert (await office.ask(case_id, "investigator", reason="x" * 20)).status_code == 201


async def test_asking_about_an_unknown_or_unseen_case_is_not_found(office: Office) -> None:
    _, case_id = await identified_case(office)
    await office.hire("investigator2", Role.INVESTIGATOR)
    await office.hire("auditor", Role.AUDITOR)
    problem(await office.ask(uuid.uuid4(), "triage"), 404, "not-found")
    # Not assigned: the case is not theirs to see, nor to an auditor or an admin custodian.
    for who in ("investigator2", "auditor", "custodian2"):
        problem(await office.ask(case_id, who), 404, "not-found")
        listed = await office.client.get(
            f"/api/v1/cases/{case_id}/identity-requests", headers=office[who].headers
        )
        problem(listed, 404, "not-found")
    assert await requests_of(office, case_id) == []


async def test_asking_without_the_content_key_is_a_conflict(office: Office) -> None:
    _, case_id = await identified_case(office)
    # The supervisor sees every case but was granted no key to this one.
    refused = await office.ask(case_id, "supervisor")
    assert "grant" in problem(refused, 409, "conflict")["detail"]
    assert await requests_of(office, case_id) == []
    assert await audit_actions(office, case_id) == []


async def test_asking_without_a_registered_key_is_refused(
    office: Office, staff: StaffFactory
) -> None:
    _, case_id = await identified_case(office)
    await office.hire("keyless", Role.SUPERVISOR)
    await office.grant(case_id, "keyless")
    async with office.sessionmaker() as session:
        user = await session.get(StaffUser, office["keyless"].user.id)
        user.public_key = user.public_key_fingerprint = None
        await session.commit()
    problem(await office.ask(case_id, "keyless"), 422, "invalid-input")
    assert await requests_of(office, case_id) == []


async def test_one_open_request_per_person_and_case(office: Office) -> None:
    receipt, case_id = await identified_case(office)
    first = await ask_ok(office, case_id, "investigator")
    problem(await office.ask(case_id, "investigator"), 409, "conflict")
    # Still open once the reporter answered either way.
    for answer in ("decline", "consent"):
        await answer_ok(office, receipt, first, answer)
        problem(await office.ask(case_id, "investigator"), 409, "conflict")
    assert [row.id for row in await requests_of(office, case_id)] == [uuid.UUID(first)]
    assert (await audit_actions(office, case_id)).count("identity.requested") == 1

    # Others may ask at the same time; the same person again once theirs is withdrawn.
    await ask_ok(office, case_id, "triage")
    withdrawn = await office.client.post(
        f"/api/v1/identity-requests/{first}/withdraw", headers=office["investigator"].headers
    )
    assert withdrawn.status_code == 200, withdrawn.text
    second = await ask_ok(office, case_id, "investigator")
    assert second != first and len(await requests_of(office, case_id)) == 3


async def test_asking_again_once_released_is_a_conflict(office: Office) -> None:
    receipt, case_id = await identified_case(office)
    request_id = await ask_ok(office, case_id, "investigator")
    await answer_ok(office, receipt, request_id, "consent")
    assert (await office.release(request_id, "custodian")).status_code == 200
    refused = await office.ask(case_id, "investigator")
    assert "already hold" in problem(refused, 409, "conflict")["detail"]


# --- unknown requests ----------------------------------------------------------------------------


async def test_an_unknown_request_is_not_found_everywhere(office: Office) -> None:
    unknown = uuid.uuid4()
    problem(
        await office.client.get(
            f"/api/v1/identity-requests/{unknown}", headers=office["triage"].headers
        ),
        404,
        "not-found",
    )
    problem(await office.approve(str(unknown), "supervisor"), 404, "not-found")
    problem(await office.release(str(unknown), "custodian"), 404, "not-found")
    for step in ("withdraw", "lift-withholding"):
        answer = await office.client.post(
            f"/api/v1/identity-requests/{unknown}/{step}", headers=office["supervisor"].headers
        )
        problem(answer, 404, "not-found")
    receipt, _ = await office.file_identified_report()
    problem(
        await answer_as_reporter(office.client, receipt, str(unknown), "consent"), 404, "not-found"
    )
    bad = await office.client.get(
        "/api/v1/identity-requests/not-a-uuid", headers=office["triage"].headers
    )
    problem(bad, 422, "validation-error")


async def test_a_request_is_not_shown_to_an_investigator_not_assigned(office: Office) -> None:
    _, case_id = await identified_case(office)
    await office.hire("investigator2", Role.INVESTIGATOR)
    request_id = await ask_ok(office, case_id, "triage")
    got = await office.client.get(
        f"/api/v1/identity-requests/{request_id}", headers=office["investigator2"].headers
    )
    problem(got, 404, "not-found")
    # A custodian who holds the case's identity key sees it without reading cases.
    seen = await office.client.get(
        f"/api/v1/identity-requests/{request_id}", headers=office["custodian"].headers
    )
    assert seen.status_code == 200 and seen.json()["status"] == "pending"


# --- withdrawing --------------------------------------------------------------------------------


async def test_the_requester_withdraws(office: Office) -> None:
    _, case_id = await identified_case(office)
    request_id = await ask_ok(office, case_id, "investigator")
    withdrawn = await office.client.post(
        f"/api/v1/identity-requests/{request_id}/withdraw", headers=office["investigator"].headers
    )
    assert withdrawn.status_code == 200, withdrawn.text
    assert (withdrawn.json()["status"], withdrawn.json()["withdrawn_by"]) == (
        "withdrawn",
        office["investigator"].username,
    )
    assert "identity.withdrawn" in await audit_actions(office, case_id)


async def test_a_supervisor_withdraws_anyones_request_even_an_approved_one(office: Office) -> None:
    _, case_id = await identified_case(office)
    request_id = await ask_ok(office, case_id, "investigator")
    assert (await office.approve(request_id, "supervisor")).status_code == 200
    withdrawn = await office.client.post(
        f"/api/v1/identity-requests/{request_id}/withdraw", headers=office["supervisor2"].headers
    )
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["withdrawn_by"] == office["supervisor2"].username
    row = await request_row(office, request_id)
    assert (row.status, row.withdrawn_by_id) == ("withdrawn", office["supervisor2"].user.id)


async def test_nobody_else_withdraws(office: Office) -> None:
    receipt, case_id = await identified_case(office)
    await office.hire("investigator2", Role.INVESTIGATOR)
    request_id = await ask_ok(office, case_id, "investigator")
    await answer_ok(office, receipt, request_id, "consent")
    url = f"/api/v1/identity-requests/{request_id}/withdraw"

    problem(
        await office.client.post(url, headers=office["investigator2"].headers), 404, "not-found"
    )
    # Triage sees the request, and is neither its requester nor a supervisor; nor is a custodian.
    problem(await office.client.post(url, headers=office["triage"].headers), 403, "forbidden")
    problem(await office.client.post(url, headers=office["custodian"].headers), 403, "forbidden")
    row = await request_row(office, request_id)
    assert (row.status, row.withdrawn_by_id, row.withdrawn_at) == ("consented", None, None)
    assert "identity.withdrawn" not in await audit_actions(office, case_id)


async def test_a_withdrawn_request_is_final(office: Office) -> None:
    receipt, case_id = await identified_case(office)
    request_id = await ask_ok(office, case_id, "investigator")
    await answer_ok(office, receipt, request_id, "consent")
    work = await release_work(office, request_id, "custodian")  # fetched while still consented
    withdraw_url = f"/api/v1/identity-requests/{request_id}/withdraw"
    assert (
        await office.client.post(withdraw_url, headers=office["investigator"].headers)
    ).status_code == 200

    fingerprint, sealed = resealed(office, work, "custodian")
    released = await post_release(
        office.client, office, request_id, "custodian", fingerprint, sealed
    )
    problem(released, 409, "identity-request-conflict")
    problem(await office.approve(request_id, "supervisor"), 409, "identity-request-conflict")
    problem(
        await office.client.post(withdraw_url, headers=office["supervisor"].headers),
        409,
        "identity-request-conflict",
    )
    for answer in ("consent", "decline"):
        problem(
            await answer_as_reporter(office.client, receipt, request_id, answer),
            409,
            "identity-request-conflict",
        )

    row = await request_row(office, request_id)
    assert (row.status, row.reporter_answer, row.approver_id, row.custodian_id) == (
        "withdrawn",
        "consent",
        None,
        None,
    )
    assert await requester_keys(office, case_id) == []
    assert request_id not in {
        item["request"]["id"]
        for item in (
            await office.client.get(
                "/api/v1/identity-requests/pending", headers=office["custodian"].headers
            )
        ).json()["to_release"]
    }


# --- the reporter's answer ----------------------------------------------------------------------


async def test_a_reporter_answers_only_their_own_cases_requests(office: Office) -> None:
    _, case_id = await identified_case(office)
    other_receipt, _ = await office.file_identified_report("another report")
    request_id = await ask_ok(office, case_id, "investigator")
    problem(
        await answer_as_reporter(office.client, other_receipt, request_id, "consent"),
        404,
        "not-found",
    )
    row = await request_row(office, request_id)
    assert (row.status, row.reporter_answer, row.reporter_answered_on) == ("pending", None, None)


async def test_an_answer_that_is_neither_consent_nor_decline_is_refused(office: Office) -> None:
    receipt, case_id = await identified_case(office)
    request_id = await ask_ok(office, case_id, "investigator")
    for answer in ("yes", "CONSENT", ""):
        problem(
            await answer_as_reporter(office.client, receipt, request_id, answer),
            422,
            "validation-error",
        )
    assert (await request_row(office, request_id)).reporter_answer is None


async def test_the_reporter_changes_their_mind_until_release(office: Office) -> None:
    receipt, case_id = await identified_case(office)
    request_id = await ask_ok(office, case_id, "investigator")
    assert (await answer_ok(office, receipt, request_id, "decline"))["status"] == "declined"
    problem(await office.release(request_id, "custodian"), 409, "identity-request-conflict")
    assert (await answer_ok(office, receipt, request_id, "consent"))["status"] == "consented"
    assert (await answer_ok(office, receipt, request_id, "decline"))["status"] == "declined"
    problem(await office.release(request_id, "custodian"), 409, "identity-request-conflict")
    assert await requester_keys(office, case_id) == []
    assert (await answer_ok(office, receipt, request_id, "consent"))["status"] == "consented"

    released = await office.release(request_id, "custodian")
    assert released.status_code == 200 and released.json()["basis"] == "consent", released.text
    # Once released, it is too late.
    problem(
        await answer_as_reporter(office.client, receipt, request_id, "decline"),
        409,
        "identity-request-conflict",
    )
    assert (await request_row(office, request_id)).reporter_answer == "consent"


async def test_a_reporter_told_of_a_legal_decision_cannot_answer_it(office: Office) -> None:
    receipt, case_id = await identified_case(office)
    request_id = await ask_ok(office, case_id, "investigator")
    assert (await office.approve(request_id, "supervisor")).status_code == 200
    for answer in ("consent", "decline"):
        problem(
            await answer_as_reporter(office.client, receipt, request_id, answer),
            409,
            "identity-request-conflict",
        )
    row = await request_row(office, request_id)
    assert (row.status, row.reporter_answer) == ("approved", None)


# --- approving ----------------------------------------------------------------------------------


async def test_a_consented_request_needs_no_legal_ground(office: Office) -> None:
    receipt, case_id = await identified_case(office)
    request_id = await ask_ok(office, case_id, "investigator")
    await answer_ok(office, receipt, request_id, "consent")
    problem(await office.approve(request_id, "supervisor"), 409, "identity-request-conflict")
    row = await request_row(office, request_id)
    assert (row.status, row.approver_id, row.legal_ground) == ("consented", None, None)


async def test_an_approved_request_is_not_approved_twice(office: Office) -> None:
    _, case_id = await identified_case(office)
    request_id = await ask_ok(office, case_id, "investigator")
    assert (await office.approve(request_id, "supervisor")).status_code == 200
    problem(await office.approve(request_id, "supervisor2"), 409, "identity-request-conflict")
    assert (await request_row(office, request_id)).approver_id == office["supervisor"].user.id


async def test_only_a_supervisor_approves(office: Office) -> None:
    _, case_id = await identified_case(office)
    request_id = await ask_ok(office, case_id, "investigator")
    for who in ("triage", "investigator", "custodian"):
        problem(await office.approve(request_id, who), 403, "forbidden")
    short = await office.client.post(
        f"/api/v1/identity-requests/{request_id}/approve",
        json={"legal_ground": "a law"},
        headers=office["supervisor"].headers,
    )
    problem(short, 422, "validation-error")
    row = await request_row(office, request_id)
    assert (row.status, row.approver_id) == ("pending", None)
    assert "identity.approved" not in await audit_actions(office, case_id)


# --- releasing ----------------------------------------------------------------------------------


async def consented_request(office: Office) -> tuple[uuid.UUID, str, dict[str, Any]]:
    receipt, case_id = await identified_case(office)
    request_id = await ask_ok(office, case_id, "investigator")
    await answer_ok(office, receipt, request_id, "consent")
    return case_id, request_id, await release_work(office, request_id, "custodian")


async def nothing_released(office: Office, case_id: uuid.UUID, request_id: str) -> None:
    row = await request_row(office, request_id)
    assert (row.status, row.custodian_id, row.basis) == ("consented", None, None)
    assert await requester_keys(office, case_id) == []
    assert "identity.released" not in await audit_actions(office, case_id)


async def test_a_release_to_a_fingerprint_not_the_requesters_is_refused(office: Office) -> None:
    case_id, request_id, work = await consented_request(office)
    _, sealed = resealed(office, work, "custodian")
    wrong = office["triage"].key.public_key.fingerprint
    body = problem(
        await post_release(office.client, office, request_id, "custodian", wrong, sealed),
        409,
        "conflict",
    )
    assert body["current_fingerprint"] == office["investigator"].key.public_key.fingerprint
    await nothing_released(office, case_id, request_id)


async def test_a_sealed_key_of_the_wrong_length_is_refused(office: Office) -> None:
    case_id, request_id, work = await consented_request(office)
    fingerprint, sealed = resealed(office, work, "custodian")
    for bad in (sealed[:-1], sealed + b"\0", b""):
        answer = await post_release(
            office.client, office, request_id, "custodian", fingerprint, bad
        )
        problem(answer, 422, "validation-error")
    problem(
        await post_release(
            office.client, office, request_id, "custodian", fingerprint, "!!not base64!!"
        ),
        422,
        "validation-error",
    )
    await nothing_released(office, case_id, request_id)


async def test_a_release_sealed_to_the_requesters_old_key_is_refused(office: Office) -> None:
    case_id, request_id, work = await consented_request(office)
    old_fingerprint, sealed = resealed(office, work, "custodian")
    investigator = office["investigator"]
    new_key = await register_key(office.client, investigator.headers)  # between fetch and release

    body = problem(
        await post_release(office.client, office, request_id, "custodian", old_fingerprint, sealed),
        409,
        "conflict",
    )
    assert body["current_fingerprint"] == new_key.public_key.fingerprint
    await nothing_released(office, case_id, request_id)

    # Fetched again, the work names the new key, and the release goes to it.
    investigator.key = new_key
    released = await office.release(request_id, "custodian")
    assert released.status_code == 200, released.text
    (key,) = await requester_keys(office, case_id)
    assert key.recipient_fingerprint == new_key.public_key.fingerprint


async def test_a_release_to_a_requester_who_may_no_longer_read_the_case_is_refused(
    office: Office,
) -> None:
    case_id, request_id, work = await consented_request(office)
    fingerprint, sealed = resealed(office, work, "custodian")
    async with office.sessionmaker() as session:
        (await session.get(Case, case_id)).assignee_id = None
        await session.commit()
    problem(
        await post_release(office.client, office, request_id, "custodian", fingerprint, sealed),
        409,
        "conflict",
    )
    await nothing_released(office, case_id, request_id)


async def test_a_released_request_is_not_released_again(office: Office) -> None:
    case_id, request_id, work = await consented_request(office)
    assert (await office.release(request_id, "custodian")).status_code == 200
    fingerprint, sealed = resealed(office, work, "custodian")
    for who in ("custodian", "custodian2"):
        again = await post_release(office.client, office, request_id, who, fingerprint, sealed)
        problem(again, 409, "identity-request-conflict")
    assert len(await requester_keys(office, case_id)) == 1
    assert (await request_row(office, request_id)).custodian_id == office["custodian"].user.id
    assert (await audit_actions(office, case_id)).count("identity.released") == 1


# --- races, on a database with real commits ------------------------------------------------------


async def live_office(live, password_hashing, strong_password_hash) -> Office:
    office = Office(
        live.client,
        live.sessionmaker,
        StaffFactory(live.sessionmaker, live.client, password_hashing, strong_password_hash),
    )
    await office.hire("triage", Role.TRIAGE)
    await office.hire("investigator", Role.INVESTIGATOR)
    await office.hire("custodian", Role.AUDITOR, custodian=True)
    await office.hire("custodian2", Role.AUDITOR, custodian=True)
    return office


async def test_two_custodians_releasing_at_once_leave_one_winner(
    live, password_hashing, strong_password_hash, key_derivation
) -> None:
    """Each custodian's client talks to its own app (as to two server workers) on one database."""
    office = await live_office(live, password_hashing, strong_password_hash)
    other_app = create_app(
        live.settings, sessionmaker=live.sessionmaker, key_derivation=key_derivation
    )
    transport = httpx.ASGITransport(app=other_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other_client:
        for _ in range(3):
            await race_two_custodians(office, (live.client, other_client))
    verified = await live.client.get("/api/v1/audit/verify", headers=office["custodian"].headers)
    assert verified.json()["ok"] is True


async def race_two_custodians(
    office: Office, clients: tuple[httpx.AsyncClient, httpx.AsyncClient]
) -> None:
    case_id, request_id, _ = await consented_request(office)
    bodies = []
    for who in ("custodian", "custodian2"):
        fingerprint, sealed = resealed(office, await release_work(office, request_id, who), who)
        bodies.append((who, fingerprint, sealed))
    answers = await asyncio.gather(
        *(
            post_release(client, office, request_id, *body)
            for client, body in zip(clients, bodies, strict=True)
        )
    )

    assert sorted(answer.status_code for answer in answers) == [200, 409], [a.text for a in answers]
    winner = next(
        who
        for (who, _, _), answer in zip(bodies, answers, strict=True)
        if answer.status_code == 200
    )
    loser = next(answer for answer in answers if answer.status_code == 409)
    assert loser.json()["type"].endswith("identity-request-conflict")
    row = await request_row(office, request_id)
    assert (row.status, row.custodian_id) == ("released", office[winner].user.id)
    assert len(await requester_keys(office, case_id)) == 1
    assert (await audit_actions(office, case_id)).count("identity.released") == 1


async def test_a_release_racing_the_reporters_change_of_mind_leaves_one_winner(
    live, password_hashing, strong_password_hash
) -> None:
    office = await live_office(live, password_hashing, strong_password_hash)
    outcomes = set()
    for _ in range(3):
        receipt, case_id = await identified_case(office)
        request_id = await ask_ok(office, case_id, "investigator")
        await answer_ok(office, receipt, request_id, "consent")
        fingerprint, sealed = resealed(
            office, await release_work(office, request_id, "custodian"), "custodian"
        )
        released, declined = await asyncio.gather(
            post_release(live.client, office, request_id, "custodian", fingerprint, sealed),
            answer_as_reporter(live.client, receipt, request_id, "decline"),
        )
        row = await request_row(office, request_id)
        if released.status_code == 200:
            problem(declined, 409, "identity-request-conflict")
            assert (row.status, row.reporter_answer, row.basis) == (
                "released",
                "consent",
                "consent",
            )
            assert len(await requester_keys(office, case_id)) == 1
        else:
            problem(released, 409, "identity-request-conflict")
            assert declined.status_code == 200, declined.text
            assert (row.status, row.reporter_answer, row.custodian_id) == (
                "declined",
                "decline",
                None,
            )
            assert await requester_keys(office, case_id) == []
        outcomes.add(released.status_code)
    assert outcomes <= {200, 409}
