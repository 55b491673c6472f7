"""The rest of `cleanwindow identity`, against a really running server: show, approve with
the notice withheld, lift-withholding, withdraw, unopenable, pending as JSON, and refusals
in one line."""

from __future__ import annotations

import json

import httpx
import pytest

from app.domain import crypto
from app.domain.staff import Role
from tests.client.conftest import server  # noqa: F401  (the running service)
from tests.client.helpers import LiveServer, Officer
from tests.client.test_failures import assert_one_line_failure
from tests.intake.helpers import report_body, submit_ok

pytestmark = pytest.mark.slow

REASON = "We must ask the reporter which meeting the minutes describe."


async def test_the_identity_commands(server: LiveServer) -> None:  # noqa: F811
    admin = Officer("first-admin", Role.ADMIN, token=server.admin_token)
    triage = await server.staff(Role.TRIAGE)
    supervisor = await server.staff(Role.SUPERVISOR, with_key=False)
    custodian = await server.staff(Role.AUDITOR)
    server.ok("users", "custodian", custodian.username, officer=admin)

    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        receipts = [
            await submit_ok(client, report_body(f"cli {n}", channel="employee", contact={"name": f"Reporter {n}"}))
            for n in range(2)
        ]
        cases = [item["id"] for item in (await client.get("/api/v1/cases", headers={"Authorization": f"Bearer {triage.token}"})).json()["items"]]
    assert len(cases) == 2

    # Withdrawn by the requester.
    first = json.loads(server.ok("cases", "identity-request", cases[0], "--reason", REASON, "--json", officer=triage))["id"]
    shown = server.ok("identity", "show", first, officer=triage)
    assert f"identity request {first}" in shown and REASON in shown and "pending" in shown
    assert "withdrawn" in server.ok("identity", "withdraw", first, officer=triage)
    assert_one_line_failure(server.cli("identity", "withdraw", first, token=triage.token), "can no longer be withdrawn")

    # Approved with the notice withheld, released, then lifted; the requester reads it.
    second = json.loads(server.ok("cases", "identity-request", cases[1], "--reason", REASON, "--json", officer=triage))["id"]
    to_weigh = json.loads(server.ok("identity", "pending", "--json", officer=supervisor))
    assert [item["id"] for item in to_weigh["to_approve"]] == [second] and to_weigh["to_release"] == []
    assert_one_line_failure(
        server.cli("identity", "approve", second, "--legal-ground", "too short", token=supervisor.token), "at least 20"
    )
    approved = server.ok(
        "identity", "approve", second,
        "--legal-ground", "Prosecutor's order 2026-77 under the Anti-Corruption Act art. 64.",
        "--withhold-notice-because", "The suspect is not yet questioned.",
        officer=supervisor,
    )
    assert "(the reporter is not told yet)" in approved and "notice withheld because" in approved
    listed = json.loads(server.ok("identity", "pending", "--json", officer=custodian))
    assert [item["request"]["id"] for item in listed["to_release"]] == [second]
    assert "custodian_key" not in listed["to_release"][0]
    assert second in server.ok("identity", "pending", officer=custodian)

    # A custodian who releases garbage (not through the CLI): the requester sends it back.
    async with httpx.AsyncClient(base_url=server.url) as client:
        garbage = await client.post(
            f"/api/v1/identity-requests/{second}/release",
            json={
                "fingerprint": crypto.PublicKey.from_text(listed["to_release"][0]["requester_public_key"]).fingerprint,
                "sealed_key": crypto.b64url_encode(bytes(crypto.SEALED_IDENTITY_KEY_BYTES)),
            },
            headers={"Authorization": f"Bearer {custodian.token}"},
        )
    assert garbage.status_code == 200, garbage.text
    unopened = server.cli("cases", "show", cases[1], "--key", str(triage.key_path), "--identity", token=triage.token)
    assert_one_line_failure(unopened, f"cleanwindow identity unopenable {second}")
    assert "approved" in server.ok("identity", "unopenable", second, officer=triage)

    released = server.ok("identity", "release", second, "--key", str(custodian.key_path), officer=custodian)
    assert f"to {triage.username} (legal_obligation)" in released
    async def what_the_reporter_sees() -> dict:
        """The request `second` in its reporter's mailbox (the queue's order is not the filing order)."""
        async with httpx.AsyncClient(base_url=server.url) as client:
            for receipt in receipts:
                session = (await client.post("/api/v1/reporter/sessions", json={"receipt": receipt})).json()
                report = (await client.get("/api/v1/reporter/report", headers={"Authorization": f"Bearer {session['token']}"})).json()
                for request in report["identity_requests"]:
                    if request["id"] == second:
                        return {**request, "name": report["contact"]["name"]}
        raise AssertionError("no mailbox shows the request")

    seen = await what_the_reporter_sees()
    assert f"name: {seen['name']}" in server.ok("cases", "show", cases[1], "--key", str(triage.key_path), "--identity", officer=triage)
    assert (seen["status"], seen["legal_ground"]) == ("pending", None)  # not told yet
    lifted = json.loads(server.ok("identity", "lift-withholding", second, "--json", officer=supervisor))
    assert lifted["notice_withheld"] is False and lifted["status"] == "released"
    told = await what_the_reporter_sees()
    assert told["status"] == "released" and told["legal_ground"].startswith("Prosecutor's order")
    assert_one_line_failure(server.cli("identity", "lift-withholding", second, token=supervisor.token), "nothing to lift")
