"""Confidential identity from start to finish, against a really running server, with the CLI.

An employee files an identified report. The assigned investigator reads the report but
not the identity (tried with every key they hold); they ask for it; the reporter consents
in the mailbox; a custodian releases it with `cleanwindow identity release`; the
investigator reads it with `cases show --identity`. A second case goes the legal way: a
supervisor records the ground, a custodian releases it, the reporter is told. Every step
is in the audit chain, which verifies."""

from __future__ import annotations

import json
import secrets
import uuid

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from app.cases.models import CaseKey
from app.client.sealing import read_private_key
from app.domain import crypto
from app.domain.staff import Role
from app.identity.models import CaseIdentity, IdentityKey
from tests.client.conftest import server  # noqa: F401  (the running service)
from tests.client.helpers import LiveServer, Officer
from tests.intake.helpers import report_body

pytestmark = pytest.mark.slow

REASON = "I need to ask the reporter where the second ledger is kept."
GROUND = "Warrant 2026-GO-77 of the Seoul Central District Court (Criminal Procedure Act art. 106)."


def bearer(officer: Officer) -> dict[str, str]:
    return {"Authorization": f"Bearer {officer.token}"}


async def test_identity_released_by_consent_and_by_legal_ground(server: LiveServer) -> None:  # noqa: F811
    admin = Officer("first-admin", Role.ADMIN, token=server.admin_token)
    triage = await server.staff(Role.TRIAGE)
    investigator = await server.staff(Role.INVESTIGATOR)
    supervisor = await server.staff(Role.SUPERVISOR, with_key=False)
    custodian = await server.staff(Role.AUDITOR)  # holds identities in trust; reads no case
    assert "custodian" in server.ok("users", "custodian", custodian.username, officer=admin)
    assert f"{custodian.username}" in server.ok("users", "list", officer=admin)

    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:

        async def file_identified(marker: str) -> tuple[str, str, dict]:
            contact = {"name": f"홍길동 {marker}", "department": f"회계과 {marker}", "phone": "010-0000-0000"}
            before = {item["id"] for item in await queue(client)}
            from tests.intake.helpers import submit_ok

            receipt = await submit_ok(client, report_body(f"report {marker.lower()[::-1]}", channel="employee", contact=contact))
            (case_id,) = {item["id"] for item in await queue(client)} - before
            return receipt, case_id, contact

        async def queue(c: httpx.AsyncClient) -> list[dict]:
            answer = await c.get("/api/v1/cases?limit=100", headers=bearer(triage))
            assert answer.status_code == 200, answer.text
            return answer.json()["items"]

        def hand_to_investigator(case_id: str) -> None:
            for action, extra in (("acknowledge", []), ("start_assessment", []), ("accept", ["--assignee", investigator.username])):
                server.ok("cases", "transition", case_id, action, *extra, officer=triage)
            server.ok("cases", "grant", case_id, "--to", investigator.username, "--key", str(triage.key_path), officer=triage)

        async def mailbox(receipt: str) -> tuple[dict, dict[str, str]]:
            session = await client.post("/api/v1/reporter/sessions", json={"receipt": receipt})
            headers = {"Authorization": f"Bearer {session.json()['token']}"}
            report = await client.get("/api/v1/reporter/report", headers=headers)
            assert report.status_code == 200, report.text
            return report.json(), headers

        # --- the first case: the reporter consents -------------------------------------------
        marker = f"IDMARK-{secrets.token_hex(4)}"
        receipt, case_id, contact = await file_identified(marker)
        hand_to_investigator(case_id)

        shown = json.loads(server.ok("cases", "show", case_id, "--key", str(investigator.key_path), "--json", officer=investigator))
        assert shown["identified"] is True and shown["report"]["contact"] is None
        assert marker not in json.dumps(shown, ensure_ascii=False)
        text = server.ok("cases", "show", case_id, "--key", str(investigator.key_path), officer=investigator)
        assert "identified, sealed apart" in text and marker not in text
        await cannot_open_identity(server, case_id, investigator)

        refused = server.cli("cases", "show", case_id, "--key", str(investigator.key_path), "--identity", token=investigator.token)
        assert refused.exit_code == 1 and "released" in refused.stderr

        asked = json.loads(server.ok("cases", "identity-request", case_id, "--reason", REASON, "--json", officer=investigator))
        request_id = asked["id"]
        assert asked["status"] == "pending"
        # Nothing to release yet: the reporter has not answered.
        assert "nothing is waiting" in server.ok("identity", "pending", officer=custodian)
        early = server.cli("identity", "release", request_id, "--key", str(custodian.key_path), token=custodian.token)
        assert early.exit_code == 1 and "only after the reporter consents" in early.stderr

        report, headers = await mailbox(receipt)
        assert report["contact"] == contact  # the reporter sees their own contact
        (seen,) = report["identity_requests"]
        assert (seen["id"], seen["reason"], seen["status"], seen["may_answer"]) == (request_id, REASON, "pending", True)
        consent = await client.post(f"/api/v1/reporter/identity-requests/{request_id}", json={"answer": "consent"}, headers=headers)
        assert consent.status_code == 200, consent.text

        assert request_id in server.ok("identity", "pending", officer=custodian)
        released = server.ok("identity", "release", request_id, "--key", str(custodian.key_path), officer=custodian)
        assert investigator.username in released and marker not in released  # the custodian's screen shows no identity

        opened = json.loads(
            server.ok("cases", "show", case_id, "--key", str(investigator.key_path), "--identity", "--json", officer=investigator)
        )
        assert opened["identity"] == contact
        assert marker in server.ok("cases", "show", case_id, "--key", str(investigator.key_path), "--identity", officer=investigator)

        # --- the second case: a legal ground, and the reporter is told ----------------------------
        marker2 = f"IDMARK-{secrets.token_hex(4)}"
        receipt2, case2, contact2 = await file_identified(marker2)
        hand_to_investigator(case2)
        request2 = json.loads(server.ok("cases", "identity-request", case2, "--reason", REASON, "--json", officer=investigator))["id"]
        assert request2 in server.ok("identity", "pending", officer=supervisor)
        server.ok("identity", "approve", request2, "--legal-ground", GROUND, officer=supervisor)
        server.ok("identity", "release", request2, "--key", str(custodian.key_path), officer=custodian)
        opened2 = json.loads(
            server.ok("cases", "show", case2, "--key", str(investigator.key_path), "--identity", "--json", officer=investigator)
        )
        assert opened2["identity"] == contact2
        report2, _ = await mailbox(receipt2)
        (told,) = report2["identity_requests"]
        assert (told["status"], told["legal_ground"], told["your_answer"]) == ("released", GROUND, None)

    # --- the audit chain holds every step, and verifies -------------------------------------------
    assert "the audit chain holds" in server.ok("audit", "verify", officer=custodian)
    entries = json.loads(server.ok("audit", "list", "--all", "--json", officer=custodian))["items"]
    steps = {(entry["case_id"], entry["action"]) for entry in entries}
    for case in (case_id, case2):
        assert {(case, "identity.requested"), (case, "identity.released"), (case, "identity.read")} <= steps
    assert (case2, "identity.approved") in steps
    consent_release = next(e for e in entries if e["action"] == "identity.released" and e["case_id"] == case_id)
    assert consent_release["details"]["basis"] == "consent" and consent_release["details"]["reporter_answer"] == "consent"
    legal_release = next(e for e in entries if e["action"] == "identity.released" and e["case_id"] == case2)
    assert legal_release["details"]["basis"] == "legal_obligation"
    assert legal_release["details"]["approver"] == supervisor.username
    assert any(e["action"] == "user.custodian_set" for e in entries)
    assert not any(secret in json.dumps(e, ensure_ascii=False) for e in entries for secret in (marker, marker2))


async def cannot_open_identity(live_server: LiveServer, case_id: str, officer: Officer) -> None:
    """Every key the investigator holds, tried on the identity: none opens it."""
    case = uuid.UUID(case_id)
    private_key = read_private_key(officer.key_path)
    engine = create_async_engine(live_server.database_url)
    try:
        async with async_sessionmaker(engine)() as session:
            sealed_identity = (await session.get(CaseIdentity, case)).sealed_identity
            content_keys = (await session.scalars(select(CaseKey.sealed_key).where(CaseKey.case_id == case))).all()
            identity_keys = (await session.scalars(select(IdentityKey.sealed_key).where(IdentityKey.case_id == case))).all()
    finally:
        await engine.dispose()
    keys_they_hold = []
    for sealed in content_keys:
        try:
            keys_they_hold.append(crypto.open_content_key(sealed, private_key, case))
        except crypto.DecryptionFailed:
            pass
    assert keys_they_hold, "the investigator holds the content key (the check below must mean something)"
    for key in keys_they_hold:
        with pytest.raises(crypto.DecryptionFailed):
            crypto.open_identity(key, sealed_identity, case)
    for sealed in [*identity_keys, *content_keys]:
        with pytest.raises(crypto.DecryptionFailed):
            crypto.open_identity_key(sealed, private_key, case)
