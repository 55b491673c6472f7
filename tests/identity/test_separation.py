"""One person never releases an identity alone, whatever parts they hold.

A release has up to three staff parts: the requester (anyone who reads the case and holds
its content key), the approver (a supervisor, legal route only) and the custodian (a flag
on top of any role but drill coordinator). Every combination of one account holding two
or three of them is tried here through the HTTP API, then once more straight in SQL
against the CHECK constraints that restate the rule.

An account that was a custodian when the report arrived holds the identity key already
and is refused a request (it needs none), so a requester who is also a custodian is one
flagged after the report arrived: the only way one person can be both on one request."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from app.domain import crypto
from app.domain.staff import Role
from app.identity.models import IdentityKey, IdentityRequest
from app.staff.models import StaffUser
from tests.cases.helpers import register_key
from tests.identity.helpers import CONTACT, Member, Office, answer_as_reporter, set_custodian

# --- helpers ---------------------------------------------------------------------------------


def problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"].endswith(slug), body
    return body


async def request_row(office: Office, request_id: str) -> IdentityRequest:
    async with office.sessionmaker() as session:
        row = await session.get(IdentityRequest, uuid.UUID(request_id))
        assert row is not None
        return row


async def requester_keys(office: Office, case_id: uuid.UUID) -> int:
    async with office.sessionmaker() as session:
        return await session.scalar(
            select(func.count())
            .select_from(IdentityKey)
            .where(IdentityKey.case_id == case_id, IdentityKey.holder_kind == "requester")
        )


async def status_seen(office: Office, request_id: str, who: str = "triage") -> str:
    answer = await office.client.get(
        f"/api/v1/identity-requests/{request_id}", headers=office[who].headers
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["status"]


async def audit_actions(office: Office, case_id: uuid.UUID) -> list[str]:
    audit = await office.client.get(
        f"/api/v1/audit?limit=500&case_id={case_id}", headers=office["custodian"].headers
    )
    assert audit.status_code == 200, audit.text
    return [entry["action"] for entry in audit.json()["items"]]


async def offered(office: Office, who: str) -> tuple[set[str], set[str]]:
    """The request ids `who` is offered to release and to approve."""
    pending = await office.client.get(
        "/api/v1/identity-requests/pending", headers=office[who].headers
    )
    assert pending.status_code == 200, pending.text
    work = pending.json()
    return {item["request"]["id"] for item in work["to_release"]}, {
        item["id"] for item in work["to_approve"]
    }


async def flag_later(office: Office, who: str) -> None:
    """Make `who` a custodian after the report arrived: they hold no key to its identity."""
    await set_custodian(office.sessionmaker, office[who].user.id)


async def ask_ok(office: Office, case_id: uuid.UUID, who: str) -> str:
    asked = await office.ask(case_id, who)
    assert asked.status_code == 201, asked.text
    return asked.json()["id"]


async def consent(office: Office, receipt: str, request_id: str, answer: str = "consent") -> None:
    answered = await answer_as_reporter(office.client, receipt, request_id, answer)
    assert answered.status_code == 200, answered.text


async def nothing_released(
    office: Office, case_id: uuid.UUID, request_id: str, requester: str
) -> None:
    assert await requester_keys(office, case_id) == 0
    row = await request_row(office, request_id)
    assert row.custodian_id is None and row.released_at is None and row.basis is None
    refused = await office.client.get(
        f"/api/v1/cases/{case_id}/identity", headers=office[requester].headers
    )
    problem(refused, 403, "identity-not-released")
    assert "identity.released" not in await audit_actions(office, case_id)


# --- requester and supervisor (and custodian) ---------------------------------------------------


async def test_a_custodian_at_intake_holds_the_key_already_and_is_refused_a_request(
    office: Office,
) -> None:
    await office.hire("supervisor-custodian", Role.SUPERVISOR, custodian=True)
    _, case_id = await office.file_identified_report()
    await office.grant(case_id, "supervisor-custodian")

    refused = await office.ask(case_id, "supervisor-custodian")
    assert problem(refused, 409, "conflict")["detail"].startswith("You already hold")
    async with office.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(IdentityRequest)) == 0


async def test_a_supervisor_custodian_requester_takes_no_second_part_on_either_route(
    office: Office,
) -> None:
    await office.hire("supervisor-custodian", Role.SUPERVISOR)
    receipt, case_id = await office.file_identified_report()
    await office.grant(case_id, "supervisor-custodian")
    await flag_later(office, "supervisor-custodian")
    request_id = await ask_ok(office, case_id, "supervisor-custodian")

    # Not their own approver...
    assert request_id not in (await offered(office, "supervisor-custodian"))[1]
    problem(await office.approve(request_id, "supervisor-custodian"), 403, "identity-same-person")
    assert await status_seen(office, request_id) == "pending"
    assert (await request_row(office, request_id)).approver_id is None

    # ...nor their own custodian once the reporter consents...
    await consent(office, receipt, request_id)
    assert request_id not in (await offered(office, "supervisor-custodian"))[0]
    problem(await office.release(request_id, "supervisor-custodian"), 403, "identity-same-person")
    assert await status_seen(office, request_id) == "consented"

    # ...nor once another supervisor approved on a legal ground.
    await consent(office, receipt, request_id, "decline")
    approved = await office.approve(request_id, "supervisor2")
    assert approved.status_code == 200, approved.text
    problem(await office.release(request_id, "supervisor-custodian"), 403, "identity-same-person")
    assert await status_seen(office, request_id) == "approved"
    await nothing_released(office, case_id, request_id, "supervisor-custodian")

    # A different custodian may: the refusals were about the person, not the request.
    released = await office.release(request_id, "custodian")
    assert released.status_code == 200, released.text
    assert released.json()["basis"] == "legal_obligation"
    assert await office.read_identity(case_id, "supervisor-custodian") == CONTACT


async def test_the_same_person_in_all_three_parts_is_refused_at_each_step(office: Office) -> None:
    await office.hire("everything", Role.SUPERVISOR)
    receipt, case_id = await office.file_identified_report()
    await office.grant(case_id, "everything")
    await flag_later(office, "everything")
    request_id = await ask_ok(office, case_id, "everything")

    problem(await office.release(request_id, "everything"), 403, "identity-same-person")  # pending
    await consent(office, receipt, request_id, "decline")
    problem(await office.approve(request_id, "everything"), 403, "identity-same-person")
    problem(await office.release(request_id, "everything"), 403, "identity-same-person")  # declined
    assert await status_seen(office, request_id) == "declined"
    await consent(office, receipt, request_id)
    problem(await office.approve(request_id, "everything"), 403, "identity-same-person")
    problem(
        await office.release(request_id, "everything"), 403, "identity-same-person"
    )  # consented

    assert await status_seen(office, request_id) == "consented"
    row = await request_row(office, request_id)
    assert row.approver_id is None and row.approved_at is None and row.legal_ground is None
    await nothing_released(office, case_id, request_id, "everything")
    actions = await audit_actions(office, case_id)
    assert "identity.requested" in actions and "identity.approved" not in actions


async def test_a_triage_custodian_cannot_release_their_own_consented_request(
    office: Office,
) -> None:
    await office.hire("triage-custodian", Role.TRIAGE)  # gets the content key at intake
    receipt, case_id = await office.file_identified_report()
    await flag_later(office, "triage-custodian")
    request_id = await ask_ok(office, case_id, "triage-custodian")
    await consent(office, receipt, request_id)

    problem(await office.release(request_id, "triage-custodian"), 403, "identity-same-person")
    # Not a supervisor either: no legal route of their own.
    problem(await office.approve(request_id, "triage-custodian"), 403, "forbidden")
    assert await status_seen(office, request_id) == "consented"
    await nothing_released(office, case_id, request_id, "triage-custodian")

    released = await office.release(request_id, "custodian")
    assert released.status_code == 200 and released.json()["basis"] == "consent", released.text


async def test_an_investigator_custodian_cannot_release_their_own_request(office: Office) -> None:
    receipt, case_id = await office.file_identified_report()
    await office.assign_and_grant(case_id)
    await flag_later(office, "investigator")
    request_id = await ask_ok(office, case_id, "investigator")
    await consent(office, receipt, request_id)

    problem(await office.release(request_id, "investigator"), 403, "identity-same-person")
    await nothing_released(office, case_id, request_id, "investigator")


# --- approver and custodian --------------------------------------------------------------------


async def test_a_supervisor_custodian_who_approved_cannot_release(office: Office) -> None:
    # A custodian since before the report: the identity key is sealed to them, so only the
    # rule, not a missing key, stops them.
    await office.hire("supervisor-custodian", Role.SUPERVISOR, custodian=True)
    receipt, case_id = await office.file_identified_report()
    await office.assign_and_grant(case_id)
    request_id = await ask_ok(office, case_id, "investigator")
    await consent(office, receipt, request_id, "decline")

    assert request_id in (await offered(office, "supervisor-custodian"))[1]
    approved = await office.approve(request_id, "supervisor-custodian")
    assert approved.status_code == 200, approved.text
    assert request_id not in (await offered(office, "supervisor-custodian"))[0]

    problem(await office.release(request_id, "supervisor-custodian"), 403, "identity-same-person")
    # Even with a well-formed key sealed to the requester, made with the key they hold.
    mine = office["supervisor-custodian"]
    async with office.sessionmaker() as session:
        sealed = await session.scalar(
            select(IdentityKey.sealed_key).where(
                IdentityKey.case_id == case_id, IdentityKey.staff_user_id == mine.user.id
            )
        )
    identity_key = crypto.open_identity_key(sealed, mine.key, case_id)
    requester = office["investigator"].key.public_key
    forged = await office.client.post(
        f"/api/v1/identity-requests/{request_id}/release",
        json={
            "fingerprint": requester.fingerprint,
            "sealed_key": crypto.b64url_encode(
                crypto.seal_identity_key(identity_key, requester, case_id)
            ),
        },
        headers=mine.headers,
    )
    problem(forged, 403, "identity-same-person")
    assert await status_seen(office, request_id) == "approved"
    await nothing_released(office, case_id, request_id, "investigator")

    released = await office.release(request_id, "custodian")
    assert released.status_code == 200, released.text
    body = released.json()
    assert (body["status"], body["basis"], body["approved_by"], body["released_by"]) == (
        "released",
        "legal_obligation",
        mine.username,
        office["custodian"].username,
    )


async def test_the_refusal_is_per_request_an_approver_releases_another_request_of_the_case(
    office: Office,
) -> None:
    await office.hire("supervisor-custodian", Role.SUPERVISOR, custodian=True)
    receipt, case_id = await office.file_identified_report()
    await office.assign_and_grant(case_id)
    approved_by_them = await ask_ok(office, case_id, "investigator")
    assert (await office.approve(approved_by_them, "supervisor-custodian")).status_code == 200
    not_theirs = await ask_ok(office, case_id, "triage")
    await consent(office, receipt, not_theirs)

    assert (await offered(office, "supervisor-custodian"))[0] == {not_theirs}
    problem(
        await office.release(approved_by_them, "supervisor-custodian"), 403, "identity-same-person"
    )
    released = await office.release(not_theirs, "supervisor-custodian")
    assert released.status_code == 200 and released.json()["basis"] == "consent", released.text
    assert await office.read_identity(case_id, "triage") == CONTACT
    assert await status_seen(office, approved_by_them) == "approved"


# --- who is a custodian at all ------------------------------------------------------------------


async def test_who_is_not_a_custodian_cannot_release(office: Office) -> None:
    await office.hire("auditor", Role.AUDITOR)
    receipt, case_id = await office.file_identified_report()
    await office.assign_and_grant(case_id)
    request_id = await ask_ok(office, case_id, "investigator")
    await consent(office, receipt, request_id)

    for reader in ("supervisor", "triage"):  # they see the request, and may not release it
        problem(await office.release(request_id, reader), 403, "forbidden")
    # An auditor who is no custodian does not even see it.
    problem(await office.release(request_id, "auditor"), 404, "not-found")
    assert await status_seen(office, request_id) == "consented"
    assert await requester_keys(office, case_id) == 0


async def test_a_custodian_no_longer_flagged_cannot_release(office: Office) -> None:
    await office.hire("supervisor-custodian", Role.SUPERVISOR, custodian=True)
    receipt, case_id = await office.file_identified_report()
    await office.assign_and_grant(case_id)
    request_id = await ask_ok(office, case_id, "investigator")
    await consent(office, receipt, request_id)
    for name in ("custodian", "supervisor-custodian"):
        await set_custodian(office.sessionmaker, office[name].user.id, on=False)

    # Both still hold the key sealed to them at intake; the flag is what lets them use it here.
    problem(await office.release(request_id, "supervisor-custodian"), 403, "forbidden")
    problem(
        await office.release(request_id, "custodian"), 404, "not-found"
    )  # an auditor: sees no case
    assert await status_seen(office, request_id) == "consented"
    assert await requester_keys(office, case_id) == 0


async def test_a_custodian_flagged_after_the_report_arrived_holds_no_key_to_release(
    office: Office,
) -> None:
    receipt, case_id = await office.file_identified_report()
    await office.assign_and_grant(case_id)
    request_id = await ask_ok(office, case_id, "investigator")
    await consent(office, receipt, request_id)
    await flag_later(office, "supervisor")

    assert request_id not in (await offered(office, "supervisor"))[0]
    refused = problem(await office.release(request_id, "supervisor"), 409, "conflict")
    assert "not sealed to you" in refused["detail"]
    # An auditor flagged late reads no case, yet as a custodian sees the request and is told why not.
    await office.hire("late-auditor", Role.AUDITOR)
    await flag_later(office, "late-auditor")
    refused = problem(await office.release(request_id, "late-auditor"), 409, "conflict")
    assert "not sealed to you" in refused["detail"]
    assert await status_seen(office, request_id) == "consented"
    assert await requester_keys(office, case_id) == 0


async def test_a_custodian_whose_key_was_registered_after_the_report_holds_no_key_to_release(
    office: Office, staff
) -> None:
    user = await staff.create(Role.TRIAGE)
    await set_custodian(office.sessionmaker, user.id)
    headers = {"Authorization": f"Bearer {await staff.token_for(user)}"}
    receipt, case_id = await office.file_identified_report()  # sealed to no key of theirs
    office.members["late-key"] = Member(user, headers, await register_key(office.client, headers))
    await office.assign_and_grant(case_id)
    request_id = await ask_ok(office, case_id, "investigator")
    await consent(office, receipt, request_id)

    problem(await office.release(request_id, "late-key"), 409, "conflict")
    assert await requester_keys(office, case_id) == 0
    released = await office.release(request_id, "custodian")  # one who held it at intake can
    assert released.status_code == 200, released.text


# --- the flag itself ----------------------------------------------------------------------------


async def set_flag(
    office: Office, admin: str, user_id: uuid.UUID, on: bool = True
) -> httpx.Response:
    return await office.client.put(
        f"/api/v1/users/{user_id}/identity-custodian",
        json={"custodian": on},
        headers=office[admin].headers,
    )


async def flag_of(office: Office, user_id: uuid.UUID) -> bool:
    async with office.sessionmaker() as session:
        return await session.scalar(
            select(StaffUser.is_identity_custodian).where(StaffUser.id == user_id)
        )


async def custodian_audit(office: Office) -> list[tuple[str, str]]:
    audit = await office.client.get("/api/v1/audit?limit=500", headers=office["custodian"].headers)
    return [
        (entry["action"], entry["details"].get("username"))
        for entry in audit.json()["items"]
        if entry["action"].startswith("user.custodian")
    ]


async def test_the_custodian_flag_is_set_by_another_admin_and_audited(office: Office) -> None:
    await office.hire("admin", Role.ADMIN)
    target = office["supervisor"]
    made = await set_flag(office, "admin", target.user.id)
    assert made.status_code == 200, made.text
    assert made.json()["is_identity_custodian"] is True and await flag_of(office, target.user.id)
    unmade = await set_flag(office, "admin", target.user.id, on=False)
    assert unmade.status_code == 200 and unmade.json()["is_identity_custodian"] is False
    assert await custodian_audit(office) == [
        ("user.custodian_unset", target.username),
        ("user.custodian_set", target.username),
    ]


async def test_the_custodian_flag_refusals_write_nothing(office: Office, staff) -> None:
    await office.hire("admin", Role.ADMIN)
    coordinator = await staff.create(Role.DRILL_COORDINATOR)

    problem(await set_flag(office, "admin", coordinator.id), 422, "invalid-input")
    assert await flag_of(office, coordinator.id) is False
    # No admin flags themselves, on or off.
    problem(await set_flag(office, "admin", office["admin"].user.id), 403, "forbidden")
    assert await flag_of(office, office["admin"].user.id) is False
    # Nor is any administrator a custodian: they create the accounts that fill the other parts.
    await office.hire("admin2", Role.ADMIN)
    problem(await set_flag(office, "admin", office["admin2"].user.id), 422, "invalid-input")
    assert await flag_of(office, office["admin2"].user.id) is False
    # Only an admin sets it: not a supervisor, not a custodian who is an auditor.
    for who in ("supervisor", "custodian"):
        problem(await set_flag(office, who, office["triage"].user.id), 403, "forbidden")
    assert await flag_of(office, office["triage"].user.id) is False
    assert await custodian_audit(office) == []


# --- the database says it again -----------------------------------------------------------------


async def refused_by(office: Office, constraint: str, statement: str, **params: Any) -> None:
    async with office.sessionmaker() as session:
        with pytest.raises(IntegrityError) as refused:
            await session.execute(text(statement), params)
        await session.rollback()
    assert constraint in str(refused.value)


async def accepted(office: Office, statement: str, **params: Any) -> None:
    """The same kind of statement with another person: the constraint refuses the person,
    not the change (so the refusals above are not some other CHECK's)."""
    async with office.sessionmaker() as session:
        await session.execute(text(statement), params)
        await session.rollback()


APPROVE = (
    "UPDATE identity_requests SET status = 'approved', approver_id = :who, approved_at = now(), "
    "legal_ground = 'a court order of some length' WHERE id = :id"
)
RELEASE = (
    "UPDATE identity_requests SET status = 'released', custodian_id = :who, released_at = now(), "
    "basis = :basis WHERE id = :id"
)


async def test_sql_cannot_record_one_person_in_two_parts(office: Office) -> None:
    receipt, case_id = await office.file_identified_report()
    await office.assign_and_grant(case_id)
    consented = await ask_ok(office, case_id, "investigator")
    await consent(office, receipt, consented)
    legal = await ask_ok(office, case_id, "triage")
    assert (await office.approve(legal, "supervisor")).status_code == 200
    investigator, triage, supervisor = (
        office[name].user.id for name in ("investigator", "triage", "supervisor")
    )
    rid_consented, rid_legal = uuid.UUID(consented), uuid.UUID(legal)

    # The approver is not the requester.
    await refused_by(office, "approver_not_requester", APPROVE, who=investigator, id=rid_consented)
    await accepted(office, APPROVE, who=supervisor, id=rid_consented)
    # The custodian is not the requester, on either route...
    await refused_by(
        office, "custodian_apart", RELEASE, who=investigator, basis="consent", id=rid_consented
    )
    await refused_by(
        office, "custodian_apart", RELEASE, who=triage, basis="legal_obligation", id=rid_legal
    )
    # ...nor the approver.
    await refused_by(
        office, "custodian_apart", RELEASE, who=supervisor, basis="legal_obligation", id=rid_legal
    )
    await accepted(
        office, RELEASE, who=office["custodian"].user.id, basis="legal_obligation", id=rid_legal
    )
    # Nor all three at once, in a row inserted whole.
    await refused_by(
        office,
        "approver_not_requester",
        "INSERT INTO identity_requests (id, case_id, status, requester_id, requested_at, reason, approver_id, "
        "approved_at, legal_ground, custodian_id, released_at, basis, notice_withheld) VALUES (:id, :case, 'released', "
        ":who, now(), 'a reason long enough to pass', :who, now(), 'a legal ground', :who, now(), "
        "'legal_obligation', false)",
        id=uuid.uuid4(),
        case=case_id,
        who=supervisor,
    )
    assert await status_seen(office, consented) == "consented"
    assert await status_seen(office, legal) == "approved"


async def test_sql_cannot_make_a_drill_coordinator_or_an_admin_a_custodian(office: Office, staff) -> None:
    coordinator = await staff.create(Role.DRILL_COORDINATOR)
    admin = await staff.create(Role.ADMIN)
    for account in (coordinator, admin):
        await refused_by(
            office,
            "custodian_role",
            "UPDATE staff_users SET is_identity_custodian = true WHERE id = :id",
            id=account.id,
        )
    await refused_by(
        office,
        "custodian_role",
        "UPDATE staff_users SET role = 'admin' WHERE id = :id",
        id=office["custodian"].user.id,
    )
    # Nor a custodian made a drill coordinator.
    await refused_by(
        office,
        "custodian_role",
        "UPDATE staff_users SET role = 'drill_coordinator' WHERE id = :id",
        id=office["custodian"].user.id,
    )
    assert await flag_of(office, coordinator.id) is False
