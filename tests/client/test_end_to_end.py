"""Issue 4's whole path through a running server: a report is submitted, triaged,
assigned, investigated and concluded with the CLI and the API; the reporter reads the
staff reply with the receipt; history and audit show every step; the chain verifies.

This is the suite's run on production's Argon2 parameters (every other app in the suite
gets the cheap ones): the stored hashes and the receipt scheme must say so."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from app.cases.models import Case
from app.domain.kdf import PRODUCTION_KEY_DERIVATION, KeyDerivation
from app.domain.staff import Role
from app.staff.models import StaffUser
from tests.client.helpers import LiveServer, Officer

# What argon2 writes for 3 passes over 64 MiB in 4 lanes.
PRODUCTION_HASH_PREFIX = "$argon2id$v=19$m=65536,t=3,p=4$"


@pytest.fixture
def key_derivation() -> KeyDerivation:
    return PRODUCTION_KEY_DERIVATION


def api(server: LiveServer, officer: Officer) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {officer.token}"})


async def test_a_report_from_submission_to_conclusion(server: LiveServer) -> None:
    triage = await server.staff(Role.TRIAGE)
    investigator = await server.staff(Role.INVESTIGATOR)
    auditor = await server.staff(Role.AUDITOR, with_key=False)
    receipt = await server.report("E2E-MARKER", category="contracts_permits")

    # Triage finds it in the queue (CLI), reads it locally, acknowledges it.
    queue = json.loads(server.ok("cases", "list", "--json", "--state", "received", officer=triage))
    (case,) = queue["items"]
    case_id = case["id"]
    assert (case["category"], case["version"], case["overdue"]) == ("contracts_permits", 1, False)
    shown = json.loads(
        server.ok("cases", "show", case_id, "--key", str(triage.key_path), "--json", officer=triage)
    )
    assert "E2E-MARKER" in json.dumps(shown, ensure_ascii=False)
    server.ok(
        "cases", "transition", case_id, "acknowledge", "--expected-version", "1", officer=triage
    )

    # Assessment through the API, assignment through the CLI, then the key for the investigator.
    with api(server, triage) as client:
        assessed = client.post(
            f"/api/v1/cases/{case_id}/transitions",
            json={"action": "start_assessment", "expected_version": 2},
        )
        assert assessed.status_code == 200, assessed.text
    server.ok(
        "cases",
        "transition",
        case_id,
        "accept",
        "--assignee",
        investigator.username,
        "--expected-version",
        "3",
        officer=triage,
    )
    server.ok(
        "cases",
        "grant",
        case_id,
        "--to",
        investigator.username,
        "--key",
        str(triage.key_path),
        officer=triage,
    )

    # The investigator sees the case as theirs, reads it, writes to the reporter, concludes.
    mine = json.loads(
        server.ok("cases", "list", "--json", "--assignee", "me", officer=investigator)
    )
    assert [item["id"] for item in mine["items"]] == [case_id]
    assert "E2E-MARKER" in server.ok(
        "cases", "show", case_id, "--key", str(investigator.key_path), officer=investigator
    )
    reply = "보고서 잘 받았습니다. 담당 부서에서 조사 중입니다. Thank you."
    server.ok(
        "cases",
        "reply",
        case_id,
        "--key",
        str(investigator.key_path),
        officer=investigator,
        input=reply,
    )
    with api(server, investigator) as client:
        concluded = client.post(
            f"/api/v1/cases/{case_id}/transitions",
            json={
                "action": "conclude",
                "resolution": "substantiated",
                "expected_version": 4,
                "reason": "Invoices matched.",
            },
        )
        assert concluded.status_code == 200, concluded.text
        assert (concluded.json()["state"], concluded.json()["version"]) == ("closed", 5)
        assert (
            concluded.json()["feedback_given_on"] is not None
        )  # the reply came after the acknowledgement

    # The reporter, with nothing but the receipt, reads the reply and the outcome.
    async with httpx.AsyncClient(base_url=server.url) as reporter_client:
        mailbox = await reporter_client.get(
            "/api/v1/reporter/report", headers=await server.reporter(receipt)
        )
    assert mailbox.status_code == 200
    assert mailbox.json()["status"] == "closed"
    assert [(m["author"], m["body"]) for m in mailbox.json()["messages"]] == [("staff", reply)]

    # History: every step, by whom. The CLI prints the same.
    with api(server, triage) as client:
        history = client.get(f"/api/v1/cases/{case_id}/history").json()["items"]
    assert [(h["action"], h["actor"]) for h in history] == [
        ("acknowledge", triage.username),
        ("start_assessment", triage.username),
        ("accept", triage.username),
        ("conclude", investigator.username),
    ]
    printed = server.ok("cases", "history", case_id, officer=triage)
    for action in ("acknowledge", "start_assessment", "accept", "conclude"):
        assert action in printed

    # Audit: every step of this case, and the logins and keys around it; the chain holds.
    with api(server, auditor) as client:
        entries = client.get("/api/v1/audit", params={"limit": 500}).json()["items"]
        verified = client.get("/api/v1/audit/verify").json()
    of_case = [
        (e["action"], e["actor"], e["details"].get("action"))
        for e in reversed(entries)
        if e["case_id"] == case_id
    ]
    assert of_case == [
        ("case.read", triage.username, None),
        ("case.transition", triage.username, "acknowledge"),
        ("case.transition", triage.username, "start_assessment"),
        ("case.transition", triage.username, "accept"),
        ("case.read", triage.username, None),  # `grant` opens the triage officer's key
        ("case.grant", triage.username, None),
        ("case.read", investigator.username, None),
        ("case.read", investigator.username, None),  # `reply` fetches the key to seal with
        ("case.message", investigator.username, None),
        ("case.transition", investigator.username, "conclude"),
    ]
    actions = {e["action"] for e in entries}
    assert {"user.created", "auth.login", "key.registered"} <= actions
    assert verified == {
        "ok": True,
        "entries": entries[0]["seq"],
        "first_bad": None,
        "head_hash": entries[0]["hash"],
    }

    # Production's parameters throughout: accounts made over the API, the first admin's
    # cheap test hash rehashed at its login, and the receipt under scheme 1.
    engine = create_async_engine(server.database_url)
    try:
        async with engine.connect() as connection:
            hashes = dict((await connection.execute(select(StaffUser.username, StaffUser.password_hash))).all())
            schemes = (await connection.scalars(select(Case.receipt_scheme))).all()
    finally:
        await engine.dispose()
    assert set(hashes) == {"first-admin", triage.username, investigator.username, auditor.username}
    assert all(value.startswith(PRODUCTION_HASH_PREFIX) for value in hashes.values()), hashes
    assert schemes == [PRODUCTION_KEY_DERIVATION.receipts.number] == [1]
