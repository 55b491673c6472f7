"""Who may reach what: every staff role against every case, statistics and audit endpoint.

The table below is the whole matrix, written from the contract and the design notes:
triage and supervisors see every case; an investigator sees only the cases assigned to
them (any other is "not found", so they learn nothing about it); auditors read the audit
log and statistics and never a case; administrators read the audit log and statistics;
drill coordinators reach none of these. Every actor holds a content key to the case, so
a refusal below is the role's, never a missing key's.
"""

from __future__ import annotations

import os
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from app.cases.models import AttachmentChunk, CaseAttachment, CaseKey
from app.db.session import SessionMaker
from app.domain import crypto
from app.domain.staff import Role
from app.staff.models import StaffUser
from tests.cases.helpers import days_ago, insert_case

# --- the matrix ------------------------------------------------------------------------------

ENDPOINTS = [
    "list cases",
    "show case",
    "history",
    "transition",
    "message",
    "grant",
    "attachment",
    "missing attachment",
    "stats",
    "audit",
    "audit verify",
    "colleague public key",
]


def row(cases: int, *, listing: int | None = None, missing_attachment: int | None = None, stats: int, audit: int, key: int):
    """One role's answers: `cases` for each endpoint on the case itself (with the success
    code of each where the role may act)."""
    ok = {"show case": 200, "history": 200, "transition": 200, "message": 201, "grant": 201, "attachment": 200}
    answers = {name: (ok[name] if cases == 200 else cases) for name in ok}
    return {
        "list cases": listing if listing is not None else cases,
        **answers,
        "missing attachment": missing_attachment if missing_attachment is not None else (404 if cases == 200 else cases),
        "stats": stats,
        "audit": audit,
        "audit verify": audit,
        "colleague public key": key,
    }


MATRIX: dict[str, dict[str, int]] = {
    "admin": row(403, stats=200, audit=200, key=403),
    "triage": row(200, stats=200, audit=403, key=200),
    "investigator (assigned)": row(200, stats=403, audit=403, key=200),
    "investigator (not assigned)": row(404, listing=200, stats=403, audit=403, key=200),
    "supervisor": row(200, stats=200, audit=403, key=200),
    "auditor": row(403, stats=200, audit=200, key=403),
    "drill_coordinator": row(403, stats=403, audit=403, key=403),
    "anonymous": row(401, stats=401, audit=401, key=401),
}
ROLE_OF = {
    "admin": Role.ADMIN,
    "triage": Role.TRIAGE,
    "investigator (assigned)": Role.INVESTIGATOR,
    "investigator (not assigned)": Role.INVESTIGATOR,
    "supervisor": Role.SUPERVISOR,
    "auditor": Role.AUDITOR,
    "drill_coordinator": Role.DRILL_COORDINATOR,
}


def test_the_matrix_covers_every_role_and_endpoint() -> None:
    assert set(ROLE_OF) | {"anonymous"} == set(MATRIX)
    assert {role.value for role in ROLE_OF.values()} == {role.value for role in Role}
    for answers in MATRIX.values():
        assert list(answers) == ENDPOINTS


# --- the world one row is checked against ------------------------------------------------


def fake_fingerprint() -> str:
    digits = secrets.token_hex(16)
    return ":".join(digits[i : i + 4] for i in range(0, 32, 4))


async def add_user(sessionmaker: SessionMaker, role: Role, *, public_key: crypto.PublicKey | None = None) -> StaffUser:
    """A colleague who never logs in (no password hashing: it would only cost time)."""
    async with sessionmaker() as session:
        user = StaffUser(
            username=f"{role.value.replace('_', '-')}-{secrets.token_hex(4)}",
            role=role.value,
            password_hash="!never-logs-in",
            public_key=public_key.raw if public_key else None,
            public_key_fingerprint=public_key.fingerprint if public_key else None,
            public_key_registered_at=datetime.now(UTC) if public_key else None,
        )
        session.add(user)
        await session.commit()
    return user


async def give_key(sessionmaker: SessionMaker, case_id: uuid.UUID, user: StaffUser) -> None:
    """A content key sealed to `user` (bytes only: nothing here opens it)."""
    async with sessionmaker() as session:
        session.add(
            CaseKey(
                case_id=case_id,
                recipient_kind="staff",
                staff_user_id=user.id,
                recipient_fingerprint=fake_fingerprint(),
                sealed_key=os.urandom(crypto.SEALED_CONTENT_KEY_BYTES),
            )
        )
        await session.commit()


async def add_attachment(sessionmaker: SessionMaker, case_id: uuid.UUID) -> tuple[uuid.UUID, bytes]:
    chunk = os.urandom(300)
    attachment_id = uuid.uuid4()
    async with sessionmaker() as session:
        session.add(
            CaseAttachment(
                id=attachment_id,
                case_id=case_id,
                author="reporter",
                uploaded_on=days_ago(1),
                stored_bytes=len(chunk),
                chunk_bytes=len(chunk),
                chunk_count=1,
                sealed_meta=os.urandom(120),
            )
        )
        await session.flush()
        session.add(AttachmentChunk(attachment_id=attachment_id, index=0, sealed=chunk))
        await session.commit()
    return attachment_id, chunk


@dataclass
class Scene:
    case_id: uuid.UUID
    actor: StaffUser | None
    assignee: StaffUser
    colleague: StaffUser  # a supervisor with a registered key: grantee, key lookup
    attachment_id: uuid.UUID
    chunk: bytes


async def set_scene(name: str, staff, sessionmaker: SessionMaker) -> tuple[Scene, dict[str, str]]:
    actor, headers = None, {}
    if name != "anonymous":
        actor = await staff.create(ROLE_OF[name])
        headers = {"Authorization": f"Bearer {await staff.token_for(actor)}"}
    assignee = actor if name == "investigator (assigned)" else await add_user(sessionmaker, Role.INVESTIGATOR)
    colleague = await add_user(sessionmaker, Role.SUPERVISOR, public_key=crypto.PrivateKey.generate().public_key)
    case = await insert_case(
        sessionmaker,
        received_on=days_ago(2),
        state="assessing",
        version=3,
        acknowledged_on=days_ago(1),
        assignee_id=assignee.id,
    )
    if actor is not None:
        await give_key(sessionmaker, case.id, actor)
    attachment_id, chunk = await add_attachment(sessionmaker, case.id)
    return Scene(case.id, actor, assignee, colleague, attachment_id, chunk), headers


async def ask(client: httpx.AsyncClient, scene: Scene, endpoint: str, headers: dict[str, str]) -> httpx.Response:
    case = f"/api/v1/cases/{scene.case_id}"
    if endpoint == "list cases":
        return await client.get("/api/v1/cases", params={"limit": 200}, headers=headers)
    if endpoint == "show case":
        return await client.get(case, headers=headers)
    if endpoint == "history":
        return await client.get(f"{case}/history", headers=headers)
    if endpoint == "transition":
        # `refer` from `assessing`: open to triage, supervisors and the assigned investigator.
        body = {"action": "refer", "expected_version": 3, "reason": "For the prosecutor."}
        return await client.post(f"{case}/transitions", json=body, headers=headers)
    if endpoint == "message":
        body = {"id": str(uuid.uuid4()), "sealed_body": crypto.b64url_encode(os.urandom(200)), "seal_format": 2}
        return await client.post(f"{case}/messages", json=body, headers=headers)
    if endpoint == "grant":
        body = {
            "grantee": scene.colleague.username,
            "fingerprint": scene.colleague.public_key_fingerprint,
            "sealed_key": crypto.b64url_encode(os.urandom(crypto.SEALED_CONTENT_KEY_BYTES)),
        }
        return await client.post(f"{case}/grants", json=body, headers=headers)
    if endpoint == "attachment":
        return await client.get(f"{case}/attachments/{scene.attachment_id}", headers=headers)
    if endpoint == "missing attachment":
        return await client.get(f"{case}/attachments/{uuid.uuid4()}", headers=headers)
    if endpoint == "stats":
        return await client.get("/api/v1/stats", headers=headers)
    if endpoint == "audit":
        return await client.get("/api/v1/audit", headers=headers)
    if endpoint == "audit verify":
        return await client.get("/api/v1/audit/verify", headers=headers)
    if endpoint == "colleague public key":
        return await client.get(f"/api/v1/users/{scene.colleague.username}/public-key", headers=headers)
    raise AssertionError(endpoint)


@pytest.mark.parametrize("name", list(MATRIX))
async def test_access_matrix(name: str, client: httpx.AsyncClient, staff, sessionmaker: SessionMaker) -> None:
    scene, headers = await set_scene(name, staff, sessionmaker)
    # The transition changes the case, so it goes last.
    order = [endpoint for endpoint in ENDPOINTS if endpoint != "transition"] + ["transition"]
    responses = {endpoint: await ask(client, scene, endpoint, headers) for endpoint in order}

    got = {endpoint: responses[endpoint].status_code for endpoint in ENDPOINTS}
    assert got == MATRIX[name], {e: (got[e], responses[e].text[:200]) for e in ENDPOINTS if got[e] != MATRIX[name][e]}

    for endpoint, response in responses.items():
        if response.status_code >= 400:
            assert response.headers["content-type"].startswith("application/problem+json"), (endpoint, response.text)
        if name not in ("triage", "supervisor", "investigator (assigned)"):
            # Nothing sealed (nor its metadata) reaches a role that may not read the case.
            assert "sealed_report" not in response.text, (endpoint, response.text)
            assert "sealed_body" not in response.text and "sealed_key" not in response.text, (endpoint, response.text)

    listing = responses["list cases"]
    if listing.status_code == 200:
        items = listing.json()["items"]
        ids = {item["id"] for item in items}
        if name in ("triage", "supervisor", "investigator (assigned)"):
            assert str(scene.case_id) in ids
        else:
            assert str(scene.case_id) not in ids
        if ROLE_OF[name] is Role.INVESTIGATOR:
            assert all(item["assignee"] == scene.actor.username for item in items), items
    if got["attachment"] == 200:
        body = responses["attachment"].content
        assert body == len(scene.chunk).to_bytes(4, "big") + scene.chunk
    if got["transition"] == 200:
        assert (responses["transition"].json()["state"], responses["transition"].json()["version"]) == ("referred", 4)
    elif got["transition"] != 401:
        # A refused transition left no trace in the case.
        supervisor_headers = await staff.headers_for(Role.SUPERVISOR)
        shown = await client.get(f"/api/v1/cases/{scene.case_id}", headers=supervisor_headers)
        assert (shown.json()["state"], shown.json()["version"]) == ("assessing", 3)
    if got["colleague public key"] == 200:
        assert responses["colleague public key"].json()["fingerprint"] == scene.colleague.public_key_fingerprint


async def test_the_audit_log_shows_who_read_what_but_no_content(client: httpx.AsyncClient, staff, sessionmaker) -> None:
    """An auditor sees that a case was read, by whom, and never the case's content."""
    triage = await staff.headers_for(Role.TRIAGE)
    auditor = await staff.headers_for(Role.AUDITOR)
    case = await insert_case(sessionmaker)
    assert (await client.get(f"/api/v1/cases/{case.id}", headers=triage)).status_code == 200
    page = await client.get("/api/v1/audit", params={"case_id": str(case.id)}, headers=auditor)
    assert page.status_code == 200, page.text
    assert [item["action"] for item in page.json()["items"]] == ["case.read"]
    assert "sealed_report" not in page.text and crypto.b64url_encode(case.sealed_report) not in page.text


# --- statistics: real cases only -----------------------------------------------------------------


async def stats(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get("/api/v1/stats", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {key: after.get(key, 0) - before.get(key, 0) for key in set(after) | set(before) if after.get(key, 0) != before.get(key, 0)}


async def test_stats_count_real_cases_only(client: httpx.AsyncClient, staff, sessionmaker) -> None:
    headers = await staff.headers_for(Role.AUDITOR)
    before = await stats(client, headers)

    investigator = await add_user(sessionmaker, Role.INVESTIGATOR)
    real = [
        dict(state="received", category="bribery"),
        dict(state="received", category="hiring", received_on=days_ago(30)),  # acknowledgement missed
        dict(state="investigating", category="hiring", acknowledged_on=days_ago(0), assignee_id=investigator.id),
        dict(state="closed", category="subsidies", acknowledged_on=days_ago(0), resolution="duplicate"),
    ]
    drills = [
        dict(state="received", category="other"),
        dict(state="referred", category="bribery", acknowledged_on=days_ago(0)),
        dict(state="assessing", category="embezzlement", received_on=days_ago(30)),
        dict(state="closed", category="other", acknowledged_on=days_ago(0), resolution="substantiated"),
    ]
    for fields in real:
        await insert_case(sessionmaker, **fields)
    for fields in drills:
        await insert_case(sessionmaker, is_drill=True, **fields)
    after = await stats(client, headers)

    assert after["total"] - before["total"] == len(real)
    assert delta(after["by_state"], before["by_state"]) == {"received": 2, "investigating": 1, "closed": 1}
    assert delta(after["by_category"], before["by_category"]) == {"bribery": 1, "hiring": 2, "subsidies": 1}
    assert set(after["by_state"]) == {"received", "acknowledged", "assessing", "investigating", "referred", "closed"}
    for deadline in ("acknowledgement", "feedback"):
        grew = sum(after[deadline].values()) - sum(before[deadline].values())
        assert grew == len(real), (deadline, before[deadline], after[deadline])
    assert after["acknowledgement"]["missed"] - before["acknowledgement"]["missed"] == 1
    assert after["acknowledgement"]["met"] - before["acknowledgement"]["met"] == 2


async def test_stats_of_only_drills_are_empty(client: httpx.AsyncClient, staff, sessionmaker) -> None:
    headers = await staff.headers_for(Role.SUPERVISOR)
    before = await stats(client, headers)
    for state in ("received", "assessing", "referred"):
        await insert_case(sessionmaker, is_drill=True, state=state, category="conflict_of_interest")
    after = await stats(client, headers)
    assert after["total"] == before["total"]
    assert after["by_state"] == before["by_state"]
    assert after["by_category"] == before["by_category"]
    assert after["acknowledgement"] == before["acknowledgement"] and after["feedback"] == before["feedback"]


# --- the queue's filters and what an investigator may ask it ------------------------------------


async def queue_ids(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[str]:
    """Every page of the queue."""
    ids, cursor = [], None
    while True:
        query = {"limit": 2, **params, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/api/v1/cases", params=query, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        ids += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids


async def test_the_drill_filter(client: httpx.AsyncClient, staff, sessionmaker) -> None:
    headers = await staff.headers_for(Role.TRIAGE)
    real = {str((await insert_case(sessionmaker, received_on=days_ago(n))).id) for n in (1, 2, 3)}
    drills = {str((await insert_case(sessionmaker, is_drill=True, received_on=days_ago(n))).id) for n in (1, 4)}

    everything = await queue_ids(client, headers)
    only_drills = await queue_ids(client, headers, drill="true")
    only_real = await queue_ids(client, headers, drill="false")

    assert real | drills <= set(everything)
    assert drills <= set(only_drills) and not real & set(only_drills)
    assert real <= set(only_real) and not drills & set(only_real)
    assert set(only_drills) | set(only_real) == set(everything)
    assert len(everything) == len(set(everything))
    flags = {
        item["id"]: item["is_drill"]
        for item in (await client.get("/api/v1/cases", params={"limit": 200}, headers=headers)).json()["items"]
    }
    assert all(flags[case_id] for case_id in drills) and not any(flags[case_id] for case_id in real)


async def test_an_investigator_cannot_list_a_colleagues_cases(client: httpx.AsyncClient, staff, sessionmaker) -> None:
    me = await staff.create(Role.INVESTIGATOR)
    headers = {"Authorization": f"Bearer {await staff.token_for(me)}"}
    colleague = await add_user(sessionmaker, Role.INVESTIGATOR)
    mine = str((await insert_case(sessionmaker, state="investigating", acknowledged_on=days_ago(0), assignee_id=me.id)).id)
    theirs = str((await insert_case(sessionmaker, state="investigating", acknowledged_on=days_ago(0), assignee_id=colleague.id)).id)
    await insert_case(sessionmaker)  # nobody's yet

    assert await queue_ids(client, headers, assignee=colleague.username) == []
    assert await queue_ids(client, headers, assignee=colleague.username, state="investigating") == []
    assert await queue_ids(client, headers, assignee="nobody-by-this-name") == []
    assert await queue_ids(client, headers, assignee="me") == [mine]
    assert await queue_ids(client, headers, assignee=me.username) == [mine]
    assert await queue_ids(client, headers) == [mine]
    # The colleague's case is not hidden from the queue only: it does not exist for me.
    assert (await client.get(f"/api/v1/cases/{theirs}", headers=headers)).status_code == 404

    # Triage, by contrast, may ask for anyone's cases.
    triage = await staff.headers_for(Role.TRIAGE)
    assert await queue_ids(client, triage, assignee=colleague.username) == [theirs]
