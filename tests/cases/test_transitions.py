"""Transitions, the queue, deadlines, staff messages and grants through the HTTP API."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy import text as sql

from app.audit.models import AuditEntry
from app.cases.models import Case, CaseKey, CaseMessage, CaseTransition
from app.cases.service import deadlines
from app.domain import crypto
from app.domain.staff import Role
from tests.cases.helpers import days_ago, insert_case, register_key, transition
from tests.conftest import StaffFactory, organisation_today
from tests.intake.helpers import report_body, reporter_headers, submit_ok

PROBLEM = "application/problem+json"


async def give_a_key(sessionmaker, case_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """A (placeholder) sealed content key for the user, so the server lets them message."""
    async with sessionmaker() as session:
        session.add(
            CaseKey(
                case_id=case_id,
                recipient_kind="staff",
                staff_user_id=user_id,
                recipient_fingerprint="f" * 39,
                sealed_key=b"\0" * crypto.SEALED_CONTENT_KEY_BYTES,
            )
        )
        await session.commit()


async def case_state(sessionmaker, case_id) -> tuple[str, int, int, int]:
    """(state, version, history rows, transition audit entries) straight from the database."""
    async with sessionmaker() as session:
        case = await session.get(Case, case_id, populate_existing=True)
        steps = await session.scalar(select(func.count()).where(CaseTransition.case_id == case_id))
        audited = await session.scalar(
            select(func.count()).where(AuditEntry.case_id == case_id, AuditEntry.action == "case.transition")
        )
        return case.state, case.version, steps, audited


# --- concurrency ---------------------------------------------------------------------------


async def test_parallel_transitions_on_one_case_leave_exactly_one_winner(
    live, password_hashing, strong_password_hash
) -> None:
    staff = StaffFactory(live.sessionmaker, live.client, password_hashing, strong_password_hash)
    officers = [await staff.headers_for(Role.TRIAGE) for _ in range(3)] + [await staff.headers_for(Role.SUPERVISOR)]
    case = await insert_case(live.sessionmaker)

    responses = await asyncio.gather(
        *(transition(live.client, officers[i % len(officers)], case.id, "acknowledge", 1) for i in range(12))
    )
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] + [409] * 11, [r.text for r in responses if r.status_code not in (200, 409)]
    losers = [r.json() for r in responses if r.status_code == 409]
    assert {problem["type"] for problem in losers} == {"urn:cleanwindow:problem:stale-version"}
    assert await case_state(live.sessionmaker, case.id) == ("acknowledged", 2, 1, 1)

    # Different actions racing from the same version: still one winner.
    racing = await asyncio.gather(
        transition(live.client, officers[0], case.id, "start_assessment", 2),
        transition(live.client, officers[1], case.id, "start_assessment", 2),
        transition(live.client, officers[3], case.id, "start_assessment", 2),
    )
    assert sorted(r.status_code for r in racing) == [200, 409, 409]
    assert await case_state(live.sessionmaker, case.id) == ("assessing", 3, 2, 2)
    auditor = await staff.headers_for(Role.AUDITOR)
    assert (await live.client.get("/api/v1/audit/verify", headers=auditor)).json()["ok"] is True


# --- refusals leave nothing behind ---------------------------------------------------------


async def test_refused_transitions_write_nothing(client, staff, sessionmaker) -> None:
    triage = await staff.headers_for(Role.TRIAGE)
    auditor_user = await staff.create(Role.AUDITOR)
    case = await insert_case(sessionmaker, state="assessing", version=3, acknowledged_on=days_ago(1))
    attempts = [
        ({"action": "accept", "expected_version": 3, "assignee": auditor_user.username}, 422),  # not an investigator
        ({"action": "accept", "expected_version": 3, "assignee": "nobody-by-this-name"}, 422),
        ({"action": "accept", "expected_version": 3}, 422),
        ({"action": "conclude", "expected_version": 3, "resolution": "substantiated"}, 409),
        ({"action": "dismiss", "expected_version": 2, "resolution": "duplicate"}, 409),
        ({"action": "reopen", "expected_version": 3, "reason": "x"}, 409),
        ({"action": "dismiss", "expected_version": 3, "resolution": "substantiated"}, 422),
        ({"action": "fly", "expected_version": 3}, 422),
        ({"action": "dismiss", "expected_version": 0, "resolution": "duplicate"}, 422),
        ({"action": "dismiss", "resolution": "duplicate"}, 422),
        ({"action": "dismiss", "expected_version": True, "resolution": "duplicate"}, 422),
        ({"action": "dismiss", "expected_version": "3", "resolution": "duplicate"}, 422),
        ({"action": "dismiss", "expected_version": 3.0, "resolution": "duplicate"}, 422),
        ({"action": "dismiss", "expected_version": 3, "resolution": "duplicate", "note": "x"}, 422),
        ({"action": "refer", "expected_version": 3, "reason": "x" * 1001}, 422),
        ({"action": "refer", "expected_version": 3, "reason": "NUL \u0000 inside"}, 422),  # refused by PostgreSQL
        ({"action": "accept", "expected_version": 3, "assignee": "ivan\u0000"}, 422),
    ]
    for body, status in attempts:
        response = await client.post(f"/api/v1/cases/{case.id}/transitions", json=body, headers=triage)
        assert response.status_code == status, (body, response.text)
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["detail"]
    assert await case_state(sessionmaker, case.id) == ("assessing", 3, 0, 0)
    missing = await transition(client, triage, uuid.uuid4(), "acknowledge", 1)
    assert missing.status_code == 404


async def test_the_409_names_the_allowed_actions(client, staff, sessionmaker) -> None:
    supervisor = await staff.headers_for(Role.SUPERVISOR)
    case = await insert_case(sessionmaker, state="investigating", version=5, acknowledged_on=days_ago(3))
    refused = await transition(client, supervisor, case.id, "acknowledge", 5)
    assert refused.status_code == 409
    problem = refused.json()
    assert problem["type"] == "urn:cleanwindow:problem:transition-not-allowed"
    assert problem["allowed_actions"] == ["refer", "conclude"]
    assert "refer" in problem["detail"] and "conclude" in problem["detail"]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/cases", {"category": "bribery\x00"}),
        ("/api/v1/cases", {"assignee": "kim\x00"}),
        ("/api/v1/cases", {"cursor": crypto.b64url_encode(b'["2026-01-01", 5]')}),
        ("/api/v1/cases", {"cursor": crypto.b64url_encode(b'["2026-01-01", ["x"]]')}),
        ("/api/v1/cases", {"cursor": crypto.b64url_encode(b"\xff\xfe")}),
        ("/api/v1/users/kim%00lee/public-key", {}),
        ("/api/v1/audit", {"cursor": "\u00b2"}),
        ("/api/v1/audit", {"cursor": "99999999999999999999"}),
        ("/api/v1/audit", {"action": "case.read\x00"}),
        ("/api/v1/audit", {"case_id": "not-a-uuid"}),
    ],
)
async def test_bad_query_input_is_a_422_problem(client, staff, path, params) -> None:
    supervisor = await staff.headers_for(Role.SUPERVISOR)
    auditor = await staff.headers_for(Role.AUDITOR)
    response = await client.get(path, params=params, headers=auditor if "audit" in path else supervisor)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM


# --- the whole path, with deadlines and the assigned investigator -------------------------


async def test_a_case_runs_the_whole_machine(client, staff, sessionmaker) -> None:
    triage = await staff.headers_for(Role.TRIAGE)
    supervisor = await staff.headers_for(Role.SUPERVISOR)
    investigator_user = await staff.create(Role.INVESTIGATOR)
    investigator = {"Authorization": f"Bearer {await staff.token_for(investigator_user)}"}
    other_investigator = await staff.headers_for(Role.INVESTIGATOR)
    case = await insert_case(sessionmaker, received_on=days_ago(2))

    steps = [
        (triage, "acknowledge", {}, "acknowledged"),
        (triage, "start_assessment", {}, "assessing"),
        (triage, "accept", {"assignee": investigator_user.username}, "investigating"),
        (investigator, "conclude", {"resolution": "substantiated"}, "closed"),
        (supervisor, "reopen", {"reason": "The reporter sent new evidence."}, "assessing"),
        (supervisor, "refer", {"reason": "Police: procurement fraud unit"}, "referred"),
        (triage, "close_referral", {}, "closed"),
    ]
    for version, (headers, action, fields, expected) in enumerate(steps, start=1):
        if action == "conclude":
            # Only the assigned investigator: another one does not even see the case.
            assert (await transition(client, other_investigator, case.id, action, version, **fields)).status_code == 404
            assert (await transition(client, triage, case.id, action, version, **fields)).status_code == 403
        response = await transition(client, headers, case.id, action, version, **fields)
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["state"], body["version"]) == (expected, version + 1)
        if action == "acknowledge":
            assert body["acknowledged_on"] == organisation_today().isoformat()
            assert body["feedback_due_on"] > body["acknowledge_due_on"]
        if action == "conclude":
            assert body["resolution"] == "substantiated"
        if action == "reopen":
            assert body["resolution"] is None

    history = (await client.get(f"/api/v1/cases/{case.id}/history", headers=supervisor)).json()["items"]
    assert [(h["action"], h["from_state"], h["to_state"], h["version"]) for h in history] == [
        ("acknowledge", "received", "acknowledged", 2),
        ("start_assessment", "acknowledged", "assessing", 3),
        ("accept", "assessing", "investigating", 4),
        ("conclude", "investigating", "closed", 5),
        ("reopen", "closed", "assessing", 6),
        ("refer", "assessing", "referred", 7),
        ("close_referral", "referred", "closed", 8),
    ]
    assert history[2]["assignee"] == investigator_user.username
    assert history[3]["actor"] == investigator_user.username and history[3]["actor_role"] == "investigator"
    assert history[4]["reason"] == "The reporter sent new evidence."


# --- the queue -----------------------------------------------------------------------------


async def test_the_queue_pages_with_a_cursor_without_repeats_or_gaps(client, staff, sessionmaker) -> None:
    triage = await staff.headers_for(Role.TRIAGE)
    # Several cases per day: the cursor must break ties on the id, not skip them.
    created = [await insert_case(sessionmaker, received_on=days_ago(day % 4), category="embezzlement") for day in range(11)]
    expected = sorted(created, key=lambda c: (c.received_on, str(c.id)))
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3, "category": "embezzlement", **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/cases", params=params, headers=triage)).json()
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        # A case arriving meanwhile (today: the newest day) lands in a page not yet read.
        if pages == 2:
            late = await insert_case(sessionmaker, category="embezzlement")
            expected = sorted([*expected, late], key=lambda c: (c.received_on, str(c.id)))
    assert seen == [str(c.id) for c in expected]
    assert pages == 4
    for cursor in ("not-a-cursor", crypto.b64url_encode(b'["2026-13-01", "x"]'), crypto.b64url_encode(b"{}")):
        bad = await client.get("/api/v1/cases", params={"cursor": cursor}, headers=triage)
        assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM
    for params in ({"limit": 0}, {"limit": 201}, {"state": "lost"}, {"channel": "fax"}, {"overdue": "perhaps"}):
        assert (await client.get("/api/v1/cases", params=params, headers=triage)).status_code == 422


async def test_queue_filters(client, staff, sessionmaker) -> None:
    triage = await staff.headers_for(Role.TRIAGE)
    investigator = await staff.create(Role.INVESTIGATOR)
    category = f"cat-{uuid.uuid4().hex[:6]}"  # isolates this test's cases in the shared database
    cases = {
        "received": await insert_case(sessionmaker, category=category),
        "employee": await insert_case(sessionmaker, category=category, channel="employee"),
        "assigned": await insert_case(
            sessionmaker, category=category, state="investigating", assignee_id=investigator.id, acknowledged_on=days_ago(1)
        ),
        "drill": await insert_case(sessionmaker, category=category, is_drill=True),
        "overdue": await insert_case(sessionmaker, category=category, received_on=days_ago(30), acknowledge_due_on=days_ago(23)),
    }

    async def ids(**params) -> set[str]:
        response = await client.get("/api/v1/cases", params={"category": category, **params}, headers=triage)
        assert response.status_code == 200, response.text
        return {item["id"] for item in response.json()["items"]}

    def of(*names) -> set[str]:
        return {str(cases[name].id) for name in names}

    assert await ids() == of(*cases)
    assert await ids(state="investigating") == of("assigned")
    assert await ids(channel="employee") == of("employee")
    assert await ids(assignee=investigator.username) == of("assigned")
    assert await ids(assignee="nobody-at-all") == set()
    assert await ids(drill="true") == of("drill")
    assert await ids(drill="false") == of("received", "employee", "assigned", "overdue")
    assert await ids(overdue="true") == of("overdue")
    assert await ids(overdue="false") == of("received", "employee", "assigned", "drill")
    listed = (await client.get("/api/v1/cases", params={"category": category, "overdue": "true"}, headers=triage)).json()
    assert listed["items"][0]["overdue"] is True


async def stored_deadline_fields(sessionmaker, case_id):
    async with sessionmaker() as session:
        return await session.get(Case, case_id, populate_existing=True)


async def test_next_due_follows_every_step_and_drives_the_overdue_filter(client, staff, sessionmaker) -> None:
    """`next_due_on` is what the domain says after intake, each transition and the first
    reply; the overdue filter is exactly the domain's `overdue`."""
    triage_user = await staff.create(Role.TRIAGE)
    triage = {"Authorization": f"Bearer {await staff.token_for(triage_user)}"}
    supervisor = await staff.headers_for(Role.SUPERVISOR)
    investigator = await staff.create(Role.INVESTIGATOR)
    category = f"cat-{uuid.uuid4().hex[:6]}"
    case = await insert_case(sessionmaker, category=category, received_on=days_ago(200), acknowledge_due_on=days_ago(193))
    await give_a_key(sessionmaker, case.id, triage_user.id)

    async def check(expect_overdue: bool) -> None:
        stored = await stored_deadline_fields(sessionmaker, case.id)
        assert stored.next_due_on == deadlines(stored).next_due()
        assert deadlines(stored).overdue(organisation_today()) is expect_overdue
        listed = await client.get("/api/v1/cases", params={"category": category, "overdue": "true"}, headers=triage)
        assert [item["id"] for item in listed.json()["items"]] == ([str(case.id)] if expect_overdue else [])
        not_listed = await client.get("/api/v1/cases", params={"category": category, "overdue": "false"}, headers=triage)
        assert [item["id"] for item in not_listed.json()["items"]] == ([] if expect_overdue else [str(case.id)])

    await check(True)  # acknowledgement 193 days late
    steps = [
        (triage, "acknowledge", {}, False),  # feedback now due in three months
        (triage, "start_assessment", {}, False),
        (triage, "accept", {"assignee": investigator.username}, False),
        (supervisor, "conclude", {"resolution": "unsubstantiated"}, False),  # closed: waits for nothing
        (supervisor, "reopen", {"reason": "new facts"}, False),
    ]
    for version, (headers, action, fields, overdue) in enumerate(steps, start=1):
        assert (await transition(client, headers, case.id, action, version, **fields)).status_code == 200
        await check(overdue)
    assert (await stored_deadline_fields(sessionmaker, case.id)).assignee_id is None  # reopened: unassigned
    # Back-date the feedback deadline, as if three months had passed; then a reply meets it.
    async with sessionmaker() as session:
        stored = await session.get(Case, case.id)
        stored.feedback_due_on = days_ago(1)
        stored.next_due_on = days_ago(1)
        await session.commit()
    await check(True)
    message = {"id": str(uuid.uuid4()), "sealed_body": crypto.b64url_encode(b"z" * 60), "seal_format": 2}
    assert (await client.post(f"/api/v1/cases/{case.id}/messages", json=message, headers=triage)).status_code == 201
    await check(False)
    stored = await stored_deadline_fields(sessionmaker, case.id)
    assert (stored.feedback_given_on, stored.next_due_on) == (organisation_today(), None)


async def test_overdue_and_the_day_of_an_act_turn_at_the_organisation_s_midnight(
    client, staff, sessionmaker, clock
) -> None:
    """Seoul's midnight is 15:00 UTC: a UTC date would call the case overdue only at 09:00
    KST the next morning, and date an act done after midnight KST the day before."""
    clock.now = datetime(2026, 11, 27, 14, 59, 59, tzinfo=UTC)  # 23:59:59 KST on the 27th
    triage_user = await staff.create(Role.TRIAGE)
    triage = {"Authorization": f"Bearer {await staff.token_for(triage_user)}"}
    category = f"cat-{uuid.uuid4().hex[:6]}"
    case = await insert_case(sessionmaker, category=category, received_on=date(2026, 11, 20))
    assert case.acknowledge_due_on == date(2026, 11, 27)
    await give_a_key(sessionmaker, case.id, triage_user.id)

    async def seen() -> tuple[bool, list[str], bool, dict]:
        listed = (await client.get("/api/v1/cases", params={"category": category}, headers=triage)).json()
        only_overdue = await client.get("/api/v1/cases", params={"category": category, "overdue": "true"}, headers=triage)
        shown = (await client.get(f"/api/v1/cases/{case.id}", headers=triage)).json()
        stats = (await client.get("/api/v1/stats", headers=triage)).json()
        return listed["items"][0]["overdue"], [item["id"] for item in only_overdue.json()["items"]], shown["overdue"], stats

    listed, only_overdue, shown, before = await seen()
    assert (listed, only_overdue, shown, before["as_of"]) == (False, [], False, "2026-11-27")

    clock.now = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)  # midnight KST: the 28th
    listed, only_overdue, shown, after = await seen()
    assert (listed, only_overdue, shown, after["as_of"]) == (True, [str(case.id)], True, "2026-11-28")
    assert after["acknowledgement"]["missed"] == before["acknowledgement"]["missed"] + 1

    acknowledged = await transition(client, triage, case.id, "acknowledge", 1)
    assert acknowledged.status_code == 200, acknowledged.text
    assert (acknowledged.json()["acknowledged_on"], acknowledged.json()["feedback_due_on"]) == ("2026-11-28", "2027-02-28")
    message = {"id": str(uuid.uuid4()), "sealed_body": crypto.b64url_encode(b"x" * 60), "seal_format": 2}
    sent = await client.post(f"/api/v1/cases/{case.id}/messages", json=message, headers=triage)
    assert sent.status_code == 201, sent.text
    assert sent.json()["sent_on"] == "2026-11-28"
    assert sent.json()["sent_at"].startswith("2026-11-27T15:00:00")  # instants stay UTC
    stored = await stored_deadline_fields(sessionmaker, case.id)
    assert (stored.acknowledged_on, stored.feedback_given_on) == (date(2026, 11, 28), date(2026, 11, 28))


# --- reading a case, messages and grants ---------------------------------------------------


async def grant_recovery_key_to(sessionmaker, case_id, recovery_key, officer_key, officer_id) -> bytes:
    """What an operator with the offline recovery key would do for a first officer."""
    async with sessionmaker() as session:
        recovery = await session.scalar(
            select(CaseKey).where(CaseKey.case_id == case_id, CaseKey.recipient_kind == "recovery")
        )
        content_key = crypto.open_content_key(recovery.sealed_key, recovery_key, case_id)
        session.add(
            CaseKey(
                case_id=case_id,
                recipient_kind="staff",
                staff_user_id=officer_id,
                recipient_fingerprint=officer_key.public_key.fingerprint,
                sealed_key=crypto.seal_content_key(content_key, officer_key.public_key, case_id),
            )
        )
        await session.commit()
    return content_key


async def test_staff_read_sealed_cases_reply_and_grant(client, staff, sessionmaker) -> None:
    triage_user = await staff.create(Role.TRIAGE)
    triage = {"Authorization": f"Bearer {await staff.token_for(triage_user)}"}
    triage_key = await register_key(client, triage)
    # Submitted after the key was registered: intake seals the content key to this officer.
    receipt = await submit_ok(client, report_body("MARKER-TRIAGE"))
    case_id = (await client.get("/api/v1/cases", params={"limit": 200}, headers=triage)).json()["items"][-1]["id"]
    case_uuid = uuid.UUID(case_id)

    detail = (await client.get(f"/api/v1/cases/{case_id}", headers=triage)).json()
    assert "MARKER-TRIAGE" not in json.dumps(detail)  # never plaintext to staff
    assert detail["content_key"]["fingerprint"] == triage_key.public_key.fingerprint
    content_key = crypto.open_content_key(
        crypto.b64url_decode(detail["content_key"]["sealed_key"]), triage_key, case_uuid
    )
    report = json.loads(
        crypto.open_sealed(content_key, crypto.b64url_decode(detail["sealed_report"]), purpose=crypto.PURPOSE_REPORT, case_id=case_uuid)
    )
    assert "MARKER-TRIAGE" in report["content"]["summary"]
    assert detail["allowed_actions"] == ["acknowledge"]

    # A reply sealed on the officer's machine reaches the reporter, opened with the receipt.
    message_id = uuid.uuid4()
    sealed = crypto.seal_message(content_key, "언제 연락드리면 될까요?", case_id=case_uuid, message_id=message_id, author="staff")
    sent = await client.post(
        f"/api/v1/cases/{case_id}/messages",
        json={"id": str(message_id), "sealed_body": crypto.b64url_encode(sealed), "seal_format": 2},
        headers=triage,
    )
    assert sent.status_code == 201, sent.text
    again = await client.post(
        f"/api/v1/cases/{case_id}/messages",
        json={"id": str(message_id), "sealed_body": crypto.b64url_encode(sealed), "seal_format": 2},
        headers=triage,
    )
    assert again.status_code == 409
    mailbox = (await client.get("/api/v1/reporter/report", headers=await reporter_headers(client, receipt))).json()
    assert [(m["author"], m["body"]) for m in mailbox["messages"]] == [("staff", "언제 연락드리면 될까요?")]

    # A grant: the officer re-seals the content key for the assigned investigator.
    investigator_user = await staff.create(Role.INVESTIGATOR)
    investigator = {"Authorization": f"Bearer {await staff.token_for(investigator_user)}"}
    investigator_key = await register_key(client, investigator)
    for action, version, fields in (("acknowledge", 1, {}), ("start_assessment", 2, {}), ("accept", 3, {"assignee": investigator_user.username})):
        assert (await transition(client, triage, case_id, action, version, **fields)).status_code == 200
    colleague = (await client.get(f"/api/v1/users/{investigator_user.username}/public-key", headers=triage)).json()
    assert colleague["fingerprint"] == investigator_key.public_key.fingerprint
    resealed = crypto.seal_content_key(content_key, crypto.PublicKey.from_text(colleague["public_key"]), case_uuid)
    grant = {"grantee": investigator_user.username, "fingerprint": colleague["fingerprint"], "sealed_key": crypto.b64url_encode(resealed)}
    assert (await client.get(f"/api/v1/cases/{case_id}", headers=investigator)).json()["content_key"] is None
    assert (await client.post(f"/api/v1/cases/{case_id}/grants", json=grant, headers=triage)).status_code == 201
    assert (await client.post(f"/api/v1/cases/{case_id}/grants", json=grant, headers=triage)).status_code == 409
    mine = (await client.get(f"/api/v1/cases/{case_id}", headers=investigator)).json()
    assert crypto.open_content_key(crypto.b64url_decode(mine["content_key"]["sealed_key"]), investigator_key, case_uuid) == content_key
    assert mine["allowed_actions"] == ["refer", "conclude"]
    assert [m["staff_username"] for m in mine["messages"]] == [triage_user.username]
    # Feedback was given after the acknowledgement? The first message came before it.
    assert mine["feedback_given_on"] is None


async def test_grants_and_messages_refuse_what_cannot_be_right(client, staff, sessionmaker, recovery_key) -> None:
    triage_user = await staff.create(Role.TRIAGE)
    triage = {"Authorization": f"Bearer {await staff.token_for(triage_user)}"}
    triage_key = await register_key(client, triage)
    holder_less = await staff.headers_for(Role.SUPERVISOR)
    auditor_user = await staff.create(Role.AUDITOR)
    await register_key(client, {"Authorization": f"Bearer {await staff.token_for(auditor_user)}"})
    unassigned_user = await staff.create(Role.INVESTIGATOR)
    unassigned_key = await register_key(client, {"Authorization": f"Bearer {await staff.token_for(unassigned_user)}"})
    keyless_user = await staff.create(Role.SUPERVISOR)
    case = await insert_case(sessionmaker, state="acknowledged", version=2, acknowledged_on=days_ago(1))
    content_key = crypto.new_content_key()
    async with sessionmaker() as session:
        session.add(
            CaseKey(
                case_id=case.id,
                recipient_kind="staff",
                staff_user_id=triage_user.id,
                recipient_fingerprint=triage_key.public_key.fingerprint,
                sealed_key=crypto.seal_content_key(content_key, triage_key.public_key, case.id),
            )
        )
        await session.commit()
    sealed_for_unassigned = crypto.b64url_encode(crypto.seal_content_key(content_key, unassigned_key.public_key, case.id))

    async def grant(headers, **body):
        payload = {"grantee": unassigned_user.username, "fingerprint": unassigned_key.public_key.fingerprint, "sealed_key": sealed_for_unassigned, **body}
        return await client.post(f"/api/v1/cases/{case.id}/grants", json=payload, headers=headers)

    cases = [
        (holder_less, {}, 409, "no-content-key"),
        (triage, {}, 422, "may not read this case"),  # not assigned yet
        (triage, {"grantee": auditor_user.username}, 422, "may not read this case"),
        (triage, {"grantee": keyless_user.username}, 422, "not registered a public key"),
        (triage, {"grantee": "no-such-person"}, 422, "No active staff account"),
        (triage, {"sealed_key": crypto.b64url_encode(b"short")}, 422, None),
        (triage, {"sealed_key": "***"}, 422, None),
    ]
    for headers, body, status, text in cases:
        response = await grant(headers, **body)
        assert response.status_code == status, (body, response.text)
        assert response.headers["content-type"] == PROBLEM
        if text:
            assert text in response.text
    await transition(client, triage, case.id, "start_assessment", 2)
    await transition(client, triage, case.id, "accept", 3, assignee=unassigned_user.username)
    stale_fingerprint = await grant(triage, fingerprint=triage_key.public_key.fingerprint)
    assert stale_fingerprint.status_code == 409 and "re-seal" in stale_fingerprint.json()["detail"]
    assert (await grant(triage)).status_code == 201

    message = {"id": str(uuid.uuid4()), "sealed_body": crypto.b64url_encode(b"x" * 40), "seal_format": 2}
    no_key = await client.post(f"/api/v1/cases/{case.id}/messages", json=message, headers=holder_less)
    assert no_key.status_code == 409 and no_key.json()["type"] == "urn:cleanwindow:problem:no-content-key"
    too_short = await client.post(f"/api/v1/cases/{case.id}/messages", json={**message, "sealed_body": "AAAA"}, headers=triage)
    assert too_short.status_code == 422
    async with sessionmaker() as session:
        grants = await session.scalar(select(func.count()).where(CaseKey.case_id == case.id))
    assert grants == 2  # the triage officer's and the one good grant


async def test_feedback_counts_from_the_first_staff_message_after_acknowledgement(client, staff, sessionmaker) -> None:
    triage_user = await staff.create(Role.TRIAGE)
    triage = {"Authorization": f"Bearer {await staff.token_for(triage_user)}"}
    triage_key = await register_key(client, triage)
    case = await insert_case(sessionmaker, received_on=days_ago(100), acknowledge_due_on=days_ago(93), feedback_due_on=days_ago(2))
    async with sessionmaker() as session:
        session.add(
            CaseKey(
                case_id=case.id,
                recipient_kind="staff",
                staff_user_id=triage_user.id,
                recipient_fingerprint=triage_key.public_key.fingerprint,
                sealed_key=b"\0" * crypto.SEALED_CONTENT_KEY_BYTES,
            )
        )
        await session.commit()
    shown = (await client.get(f"/api/v1/cases/{case.id}", headers=triage)).json()
    assert shown["overdue"] is True
    acknowledged = (await transition(client, triage, case.id, "acknowledge", 1)).json()
    # Acknowledged late: feedback is now due three months from today, but the case stays
    # overdue in the statistics' eyes (acknowledgement late) and no longer in the queue.
    assert acknowledged["feedback_due_on"] > organisation_today().isoformat()
    assert acknowledged["overdue"] is False
    message = {"id": str(uuid.uuid4()), "sealed_body": crypto.b64url_encode(b"y" * 60), "seal_format": 2}
    assert (await client.post(f"/api/v1/cases/{case.id}/messages", json=message, headers=triage)).status_code == 201
    assert (await client.get(f"/api/v1/cases/{case.id}", headers=triage)).json()["feedback_given_on"] == organisation_today().isoformat()
    async with sessionmaker() as session:
        stored = await session.get(Case, case.id, populate_existing=True)
        assert stored.next_due_on is None  # nothing left to wait for: out of the deadline queue
        assert stored.next_due_on == deadlines(stored).next_due()
    second = {**message, "id": str(uuid.uuid4())}
    assert (await client.post(f"/api/v1/cases/{case.id}/messages", json=second, headers=triage)).status_code == 201
    async with sessionmaker() as session:  # the first message gave the feedback; a later one does not move it
        assert (await session.get(Case, case.id, populate_existing=True)).feedback_given_on == organisation_today()


async def until_a_request_waits_on_a_lock(sessionmaker) -> None:
    async with sessionmaker() as session:
        for _ in range(1000):
            waiting = await session.scalar(sql(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ))
            await session.rollback()  # pg_stat_activity is read once per transaction
            if waiting:
                return
            await asyncio.sleep(0.02)
    raise AssertionError("the request never waited for the other transaction")


async def test_a_message_id_taken_by_a_transaction_in_flight_is_refused_and_nothing_is_written(
    live, password_hashing, strong_password_hash
) -> None:
    """The same message id sent for two cases at the same moment: the one that commits
    second is told 409 and leaves no message and no audit entry behind."""
    sessionmaker, client = live.sessionmaker, live.client
    staff = StaffFactory(sessionmaker, client, password_hashing, strong_password_hash)
    triage_user = await staff.create(Role.TRIAGE)
    triage = {"Authorization": f"Bearer {await staff.token_for(triage_user)}"}
    mine = await insert_case(sessionmaker, state="acknowledged", version=2, acknowledged_on=days_ago(1))
    other = await insert_case(sessionmaker, state="acknowledged", version=2, acknowledged_on=days_ago(1))
    await give_a_key(sessionmaker, mine.id, triage_user.id)
    message_id = uuid.uuid4()
    async with sessionmaker() as first:  # the other request, not yet committed
        first.add(CaseMessage(
            id=message_id, case_id=other.id, seq=1, author="staff", staff_user_id=triage_user.id,
            sent_on=organisation_today(), sent_at=datetime.now(UTC), sealed_body=b"m" * 60, seal_format=2,
        ))
        await first.flush()
        second = asyncio.create_task(client.post(
            f"/api/v1/cases/{mine.id}/messages", headers=triage,
            json={"id": str(message_id), "sealed_body": crypto.b64url_encode(b"y" * 60), "seal_format": 2},
        ))
        await until_a_request_waits_on_a_lock(sessionmaker)  # its insert waits for ours
        await first.commit()
    refused = await second
    assert refused.status_code == 409 and refused.headers["content-type"] == PROBLEM, refused.text
    assert "seal the message again under a new id" in refused.json()["detail"]
    async with sessionmaker() as session:
        stored = (await session.execute(select(CaseMessage.case_id).where(CaseMessage.id == message_id))).scalars().all()
        audited = await session.scalar(
            select(func.count()).where(AuditEntry.action == "case.message", AuditEntry.case_id == mine.id)
        )
        fresh = await session.get(Case, mine.id)
    assert stored == [other.id] and audited == 0
    assert fresh.feedback_given_on is None  # nothing of the refused message stuck


async def test_two_grants_of_the_same_key_at_once_leave_one_key_and_one_audit_entry(
    live, password_hashing, strong_password_hash
) -> None:
    sessionmaker, client = live.sessionmaker, live.client
    staff = StaffFactory(sessionmaker, client, password_hashing, strong_password_hash)
    triage_user = await staff.create(Role.TRIAGE)
    triage = {"Authorization": f"Bearer {await staff.token_for(triage_user)}"}
    await give_a_key(sessionmaker, (case := await insert_case(sessionmaker, state="acknowledged", version=2)).id, triage_user.id)
    colleague = await staff.create(Role.SUPERVISOR)
    colleague_key = await register_key(client, {"Authorization": f"Bearer {await staff.token_for(colleague)}"})
    fingerprint = colleague_key.public_key.fingerprint
    body = {"grantee": colleague.username, "fingerprint": fingerprint,
            "sealed_key": crypto.b64url_encode(b"\1" * crypto.SEALED_CONTENT_KEY_BYTES)}
    async with sessionmaker() as first:  # another grant of this key, not yet committed
        first.add(CaseKey(
            case_id=case.id, recipient_kind="staff", staff_user_id=colleague.id, recipient_fingerprint=fingerprint,
            sealed_key=b"\2" * crypto.SEALED_CONTENT_KEY_BYTES, granted_by_id=triage_user.id,
        ))
        await first.flush()
        second = asyncio.create_task(client.post(f"/api/v1/cases/{case.id}/grants", headers=triage, json=body))
        await until_a_request_waits_on_a_lock(sessionmaker)
        await first.commit()
    refused = await second
    assert refused.status_code == 409 and "already holds" in refused.json()["detail"], refused.text
    async with sessionmaker() as session:
        keys = (await session.execute(
            select(CaseKey.sealed_key).where(CaseKey.case_id == case.id, CaseKey.recipient_fingerprint == fingerprint)
        )).scalars().all()
        audited = await session.scalar(select(func.count()).where(AuditEntry.action == "case.grant", AuditEntry.case_id == case.id))
    assert keys == [b"\2" * crypto.SEALED_CONTENT_KEY_BYTES] and audited == 0
    # and once that settled, a grant that is new still goes through
    stranger = await staff.create(Role.TRIAGE)
    stranger_key = await register_key(client, {"Authorization": f"Bearer {await staff.token_for(stranger)}"})
    again = await client.post(f"/api/v1/cases/{case.id}/grants", headers=triage, json={
        **body, "grantee": stranger.username, "fingerprint": stranger_key.public_key.fingerprint})
    assert again.status_code == 201, again.text
