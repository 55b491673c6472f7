"""Anonymous submission over the real HTTP API: receipts, proof of work, idempotent
retries, and a precise 4xx that writes nothing for every kind of bad input."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.cases.models import Case, CaseKey
from app.domain import pow
from app.domain.crypto import PrivateKey
from app.domain.receipts import parse_receipt
from app.domain.staff import Role
from app.domain.triage import add_months
from app.intake.models import IntakeBudget
from app.jobs.cleanup import cleanup_expired
from app.settings import Settings
from tests.conftest import TEST_POW_DIFFICULTY, TEST_SECRET_KEY, organisation_today
from tests.intake.helpers import client_for, idempotency_key, report_body, solved_pow, submit, submit_ok

PROBLEM = "application/problem+json"


async def only(db_connection: AsyncConnection, model):
    async with AsyncSession(bind=db_connection, join_transaction_mode="create_savepoint") as session:
        return (await session.scalars(select(model))).one()


async def case_count(db_connection: AsyncConnection) -> int:
    return await db_connection.scalar(select(func.count()).select_from(Case))


async def test_the_form_lists_what_a_client_needs(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/intake/form")
    assert response.status_code == 200
    form = response.json()
    assert [channel["code"] for channel in form["channels"]] == ["citizen", "employee"]
    codes = [category["code"] for category in form["categories"]]
    assert codes[:3] == ["bribery", "embezzlement", "contracts_permits"] and "other" in codes
    assert all(set(c["labels"]) == {"ko", "en"} and all(c["labels"].values()) for c in form["categories"])
    assert form["categories"][0]["labels"]["ko"] == "금품수수 및 부정청탁"
    assert form["org_units"] and form["languages"] == ["ko", "en"]
    assert form["proof_of_work"]["enabled"] is True
    assert form["proof_of_work"]["difficulty"] == TEST_POW_DIFFICULTY
    assert "application/pdf" in form["attachments"]["allowed_types"]
    assert form["attachments"]["max_bytes"] > 0


async def test_a_challenge_is_fresh_signed_and_expiring(client: httpx.AsyncClient) -> None:
    first, second = [(await client.post("/api/v1/intake/challenges")) for _ in range(2)]
    assert first.status_code == second.status_code == 201
    assert first.json()["challenge"] != second.json()["challenge"]
    assert first.json()["difficulty"] == TEST_POW_DIFFICULTY
    expires = datetime.fromisoformat(first.json()["expires_at"])
    assert timedelta(minutes=5) < expires - datetime.now(UTC) <= timedelta(minutes=10)
    assert len(base64.b64decode(first.json()["challenge"])) == pow.CHALLENGE_BYTES


async def test_a_submission_gets_a_receipt_and_a_received_case(
    client: httpx.AsyncClient, db_connection: AsyncConnection
) -> None:
    response = await submit(client)
    assert response.status_code == 201, response.text
    body = response.json()
    assert len(parse_receipt(body["receipt"])) == 21
    assert body["status"] == "received"
    assert response.headers["cache-control"] == "no-store"
    case = await only(db_connection, Case)
    assert (case.state, case.channel, case.category, case.org_unit) == (
        "received", "citizen", "bribery", "construction_transport"
    )
    assert case.received_on == date.fromisoformat(body["received_on"]) == organisation_today()
    assert case.acknowledge_due_on == case.received_on + timedelta(days=7)
    # No acknowledgement yet: feedback is due three months after the acknowledgement period.
    assert case.feedback_due_on == add_months(case.acknowledge_due_on, 3)
    assert case.version == 1 and case.is_drill is False and case.acknowledged_on is None
    kinds = sorted((await db_connection.scalars(select(CaseKey.recipient_kind))).all())
    assert kinds == ["recovery", "reporter"]


async def test_a_report_filed_at_half_past_eight_in_seoul_is_received_that_day(
    client: httpx.AsyncClient, clock, db_connection: AsyncConnection
) -> None:
    clock.now = datetime(2026, 11, 27, 23, 30, tzinfo=UTC)  # 08:30 KST on the 28th
    response = await submit(client)
    assert response.status_code == 201, response.text
    assert response.json()["received_on"] == "2026-11-28"
    case = await only(db_connection, Case)
    assert (case.received_on, case.acknowledge_due_on, case.next_due_on) == (
        date(2026, 11, 28), date(2026, 12, 5), date(2026, 12, 5)
    )


async def test_reports_are_sealed_to_every_triage_officer_with_a_key(
    client: httpx.AsyncClient, db_connection: AsyncConnection, staff
) -> None:
    keys = {}
    for _ in range(2):
        user = await staff.create(Role.TRIAGE)
        keys[user.id] = PrivateKey.generate()
        headers = {"Authorization": f"Bearer {await staff.token_for(user)}"}
        registered = await client.put(
            "/api/v1/users/me/public-key", json={"public_key": keys[user.id].public_key.to_text()}, headers=headers
        )
        assert registered.status_code == 200, registered.text
        assert registered.json()["fingerprint"] == keys[user.id].public_key.fingerprint
    await staff.create(Role.TRIAGE)  # no key: cannot be a recipient
    investigator = await staff.create(Role.INVESTIGATOR)
    await client.put(
        "/api/v1/users/me/public-key",
        json={"public_key": PrivateKey.generate().public_key.to_text()},
        headers={"Authorization": f"Bearer {await staff.token_for(investigator)}"},
    )
    await submit_ok(client)
    async with AsyncSession(bind=db_connection, join_transaction_mode="create_savepoint") as session:
        staff_keys = (await session.scalars(select(CaseKey).where(CaseKey.recipient_kind == "staff"))).all()
    assert {key.staff_user_id for key in staff_keys} == set(keys)
    assert {key.recipient_fingerprint for key in staff_keys} == {k.public_key.fingerprint for k in keys.values()}


async def test_a_channel_can_be_routed_to_named_officers_only(
    settings: Settings, sessionmaker, db_connection: AsyncConnection, staff
) -> None:
    chosen, other = await staff.create(Role.TRIAGE), await staff.create(Role.TRIAGE)
    settings.intake.channel_recipients = {"employee": [chosen.username]}
    async with client_for(settings, sessionmaker) as client:
        for user in (chosen, other):
            token = (await client.post("/api/v1/auth/token", data={"username": user.username, "password": "correct horse battery staple"})).json()["access_token"]
            await client.put(
                "/api/v1/users/me/public-key",
                json={"public_key": PrivateKey.generate().public_key.to_text()},
                headers={"Authorization": f"Bearer {token}"},
            )
        await submit_ok(client, report_body(channel="employee"))
        await submit_ok(client, report_body(channel="citizen"))
    rows = (await db_connection.execute(
        select(Case.channel, CaseKey.staff_user_id).join(CaseKey, CaseKey.case_id == Case.id).where(CaseKey.recipient_kind == "staff")
    )).all()
    assert sorted((channel, user_id == chosen.id) for channel, user_id in rows) == [
        ("citizen", False), ("citizen", True), ("employee", True)
    ]


async def test_an_identified_contact_is_accepted_and_sealed(
    client: httpx.AsyncClient, db_connection: AsyncConnection
) -> None:
    body = report_body(channel="employee", contact={"name": "김민수", "phone": "010-1234-5678"})
    await submit_ok(client, body)
    sealed = (await db_connection.execute(select(Case.sealed_report))).scalar_one()
    assert "김민수".encode() not in sealed and b"010-1234-5678" not in sealed


# --- idempotent retries --------------------------------------------------------------


async def test_a_retry_with_the_same_key_returns_the_same_receipt_and_no_second_case(
    client: httpx.AsyncClient, db_connection: AsyncConnection
) -> None:
    key, body = idempotency_key(), report_body()
    first = await submit(client, body, headers={"Idempotency-Key": key})
    # The retry may reuse the challenge (the client resends the same request) or not.
    again = await client.post("/api/v1/reports", json={**body, "pow": await solved_pow(client)}, headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 201
    assert again.json()["receipt"] == first.json()["receipt"]
    assert again.headers["idempotent-replayed"] == "true"
    assert await case_count(db_connection) == 1
    replay = (await db_connection.execute(select(Case.sealed_replay))).scalar_one()
    assert parse_receipt(first.json()["receipt"]).encode() not in replay
    assert first.json()["receipt"].encode() not in replay


async def test_the_same_key_for_a_different_report_is_refused(
    client: httpx.AsyncClient, db_connection: AsyncConnection
) -> None:
    key = idempotency_key()
    await submit_ok(client, report_body("first"), headers={"Idempotency-Key": key})
    response = await submit(client, report_body("second"), headers={"Idempotency-Key": key})
    assert response.status_code == 422
    assert response.json()["type"].endswith("idempotency-key-reused")
    assert await case_count(db_connection) == 1


async def test_different_keys_make_different_cases(client: httpx.AsyncClient, db_connection: AsyncConnection) -> None:
    receipts = {await submit_ok(client, headers={"Idempotency-Key": idempotency_key()}) for _ in range(2)}
    assert len(receipts) == 2 and await case_count(db_connection) == 2


@pytest.mark.slow
async def test_parallel_retries_with_one_key_make_one_case(live) -> None:
    key, body = idempotency_key(), report_body()
    bodies = [{**body, "pow": await solved_pow(live.client)} for _ in range(6)]
    responses = await asyncio.gather(
        *(live.client.post("/api/v1/reports", json=b, headers={"Idempotency-Key": key}) for b in bodies)
    )
    assert [r.status_code for r in responses] == [201] * 6, [r.text for r in responses]
    assert len({r.json()["receipt"] for r in responses}) == 1
    assert await live.case_count() == 1


@pytest.mark.slow
async def test_parallel_submissions_with_one_challenge_make_one_case(live) -> None:
    body = {**report_body(), "pow": await solved_pow(live.client)}
    responses = await asyncio.gather(*(live.client.post("/api/v1/reports", json=body) for _ in range(5)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 409, 409, 409, 409], [r.text for r in responses]
    assert await live.case_count() == 1


# --- bad input: a precise 4xx, and nothing written -----------------------------------


def _expired_challenge() -> dict[str, str]:
    issued = pow.issue_challenge(
        TEST_SECRET_KEY.encode(), difficulty=TEST_POW_DIFFICULTY, expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    return {"challenge": issued.challenge, "nonce": pow.solve(issued.challenge, TEST_POW_DIFFICULTY)}


def _forged_challenge() -> dict[str, str]:
    issued = pow.issue_challenge(b"not-the-server-secret" * 2, difficulty=0, expires_at=datetime.now(UTC) + timedelta(minutes=5))
    return {"challenge": issued.challenge, "nonce": "0"}


BAD_BODIES = {
    "unknown channel": (report_body(channel="fax"), 422, "validation-error"),
    "unknown category": (report_body(category="parking"), 422, "invalid-input"),
    "unknown org unit": (report_body(org_unit="moon_base"), 422, "invalid-input"),
    "unknown language": (report_body(language="fr"), 422, "validation-error"),
    "empty summary": (report_body(content={"summary": "  ", "details": "d"}), 422, "validation-error"),
    "missing details": (report_body(content={"summary": "s"}), 422, "validation-error"),
    "oversized summary": (report_body(content={"summary": "s" * 301, "details": "d"}), 422, "validation-error"),
    "unknown content field": (report_body(content={"summary": "s", "details": "d", "ssn": "x"}), 422, "validation-error"),
    "unknown top-level field": ({**report_body(), "ip": "1.2.3.4"}, 422, "validation-error"),
    "empty contact": (report_body(contact={"notes": "call me"}), 422, "validation-error"),
    "no proof of work": ("omit-pow", 422, "proof-of-work-required"),
    "wrong nonce": ("wrong-nonce", 422, "proof-of-work-insufficient"),
    "expired challenge": ("expired", 422, "challenge-expired"),
    "forged challenge": ("forged", 422, "challenge-invalid"),
    "garbage challenge": ({**report_body(), "pow": {"challenge": "%%%", "nonce": "1"}}, 422, "challenge-invalid"),
}


@pytest.mark.parametrize("case", list(BAD_BODIES), ids=list(BAD_BODIES))
async def test_bad_input_is_refused_precisely_and_writes_nothing(
    client: httpx.AsyncClient, db_connection: AsyncConnection, case: str
) -> None:
    body, status, kind = BAD_BODIES[case]
    if body == "omit-pow":
        response = await submit(client, report_body(), with_pow=False)
    elif body == "wrong-nonce":
        solved = await solved_pow(client)
        wrong = next(
            str(n) for n in range(1000)
            if pow.leading_zero_bits(__import__("hashlib").sha256(base64.b64decode(solved["challenge"]) + str(n).encode()).digest()) < TEST_POW_DIFFICULTY
        )
        response = await client.post("/api/v1/reports", json={**report_body(), "pow": {**solved, "nonce": wrong}})
    elif body == "expired":
        response = await client.post("/api/v1/reports", json={**report_body(), "pow": _expired_challenge()})
    elif body == "forged":
        response = await client.post("/api/v1/reports", json={**report_body(), "pow": _forged_challenge()})
    else:
        response = await submit(client, body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"].endswith(kind) and problem["detail"]
    assert await case_count(db_connection) == 0
    assert await db_connection.scalar(select(func.count()).select_from(IntakeBudget)) == 0


@pytest.mark.parametrize("field", ["category", "org_unit"])
async def test_an_unknown_code_is_refused_with_the_allowed_codes_and_not_echoed(
    client: httpx.AsyncClient, db_connection: AsyncConnection, field: str
) -> None:
    typed = "ECHO-MARKER-4f1e 뇌물 신고"
    response = await submit(client, report_body(**{field: typed}))
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"].endswith("invalid-input") and problem["field"] == field
    assert "bribery" in problem["allowed"] or "construction_transport" in problem["allowed"]
    assert "ECHO-MARKER" not in response.text and "뇌물 신고" not in response.text
    assert await case_count(db_connection) == 0


async def test_a_reused_challenge_is_a_conflict(client: httpx.AsyncClient, db_connection: AsyncConnection) -> None:
    solved = await solved_pow(client)
    assert (await client.post("/api/v1/reports", json={**report_body(), "pow": solved})).status_code == 201
    again = await client.post("/api/v1/reports", json={**report_body("other"), "pow": solved})
    assert again.status_code == 409 and again.json()["type"].endswith("challenge-reused")
    assert await case_count(db_connection) == 1


async def test_malformed_json_is_a_400(client: httpx.AsyncClient, db_connection: AsyncConnection) -> None:
    response = await client.post("/api/v1/reports", content=b'{"channel": "citizen",', headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.headers["content-type"] == PROBLEM
    assert await case_count(db_connection) == 0


async def test_an_oversized_report_is_a_413(client: httpx.AsyncClient, db_connection: AsyncConnection) -> None:
    body = report_body(content={"summary": "s", "details": "d" * 300_000})
    response = await submit(client, body)
    assert response.status_code == 413 and response.headers["content-type"] == PROBLEM
    assert await case_count(db_connection) == 0


@pytest.mark.parametrize("token", ["drill-abc", "", "x" * 40])
async def test_any_drill_token_is_refused_until_drills_exist(
    client: httpx.AsyncClient, db_connection: AsyncConnection, token: str
) -> None:
    response = await submit(client, headers={"X-Drill-Token": token})
    assert response.status_code == 403 and response.json()["type"].endswith("drill-token-invalid")
    assert await case_count(db_connection) == 0


@pytest.mark.parametrize("key", ["short", "x" * 256, "ключ-идемпотентности-123"])
async def test_a_bad_idempotency_key_is_refused(client: httpx.AsyncClient, db_connection: AsyncConnection, key: str) -> None:
    response = await submit(client, headers={"Idempotency-Key": key.encode()})
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert await case_count(db_connection) == 0


async def test_with_no_one_to_seal_to_nothing_is_accepted(
    settings: Settings, sessionmaker, db_connection: AsyncConnection
) -> None:
    settings = settings.model_copy(update={"environment": "development", "recovery_public_key": None})
    async with client_for(settings, sessionmaker) as client:
        response = await submit(client)
    assert response.status_code == 503 and response.json()["type"].endswith("intake-not-configured")
    assert await case_count(db_connection) == 0


async def test_difficulty_zero_needs_no_proof_of_work(settings: Settings, sessionmaker) -> None:
    settings = settings.model_copy(update={"environment": "development", "pow_difficulty": 0})
    async with client_for(settings, sessionmaker) as client:
        assert (await client.get("/api/v1/intake/form")).json()["proof_of_work"]["enabled"] is False
        assert (await submit(client, with_pow=False)).status_code == 201


async def test_difficulty_rises_when_the_shared_budget_is_spent(
    settings: Settings, sessionmaker, db_connection: AsyncConnection
) -> None:
    settings.intake.submissions_per_window = 2
    async with client_for(settings, sessionmaker) as client:
        difficulties = []
        for _ in range(4):
            difficulties.append((await client.post("/api/v1/intake/challenges")).json()["difficulty"])
            await submit_ok(client)
    assert difficulties == [TEST_POW_DIFFICULTY, TEST_POW_DIFFICULTY, TEST_POW_DIFFICULTY + 1, TEST_POW_DIFFICULTY + 1]
    budget = await only(db_connection, IntakeBudget)
    assert (budget.kind, budget.used) == ("submissions", 4)


async def test_a_staff_public_key_must_be_a_real_key(client: httpx.AsyncClient, staff) -> None:
    headers = await staff.headers_for(Role.TRIAGE)
    for text in ["", "cwpk1_AAAA", "-----BEGIN PUBLIC KEY-----"]:
        response = await client.put("/api/v1/users/me/public-key", json={"public_key": text}, headers=headers)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == PROBLEM
    me = (await client.get("/api/v1/users/me", headers=headers)).json()
    assert me["public_key_fingerprint"] is None
    response = await client.put("/api/v1/users/me/public-key", json={"public_key": "x"})
    assert response.status_code == 401
    assert json.loads(response.text)["status"] == 401


async def test_retry_data_and_challenge_digests_are_forgotten_after_a_day(
    app, client: httpx.AsyncClient, db_connection: AsyncConnection
) -> None:
    """The `cleanup.expired` job forgets them, whether or not anyone reports again."""
    await submit_ok(client, headers={"Idempotency-Key": idempotency_key()})
    await db_connection.execute(update(Case).values(received_on=Case.received_on - timedelta(days=2)))
    await submit_ok(client, headers={"Idempotency-Key": idempotency_key()})
    assert (await cleanup_expired(app.state.context))["retry_data_forgotten"] == 1
    rows = (await db_connection.execute(
        select(Case.received_on, Case.idempotency_digest, Case.sealed_replay, Case.pow_digest).order_by(Case.received_on)
    )).all()
    old, new = rows
    assert old[1:] == (None, None, None)
    assert all(value is not None for value in new[1:])


async def test_a_colleagues_public_key_cannot_be_registered(client: httpx.AsyncClient, staff) -> None:
    key = PrivateKey.generate().public_key.to_text()
    first, second = await staff.headers_for(Role.TRIAGE), await staff.headers_for(Role.TRIAGE)
    assert (await client.put("/api/v1/users/me/public-key", json={"public_key": key}, headers=first)).status_code == 200
    assert (await client.put("/api/v1/users/me/public-key", json={"public_key": key}, headers=first)).status_code == 200
    taken = await client.put("/api/v1/users/me/public-key", json={"public_key": key}, headers=second)
    assert taken.status_code == 409 and taken.headers["content-type"] == PROBLEM
    assert (await client.get("/api/v1/users/me", headers=second)).json()["public_key_fingerprint"] is None
