"""A blind drill from start to finish against a really running server.

A coordinator creates a blind campaign, injects two reports and hands out participant
codes. One participant files a drill report with a code, one records "no report", one
files "this is real". Triage works the queue with the investigator CLI, unable to tell
the drill cases from the real ones; the scorecard shows what happened; close freezes it
and purges the drill cases, while the real cases filed in the same minutes, their history
and the audit chain stay intact; the statistics never counted a drill."""

from __future__ import annotations

import json

import httpx
import pytest

from app.domain.staff import Role
from tests.client.conftest import server  # noqa: F401  (the running service)
from tests.client.helpers import LiveServer
from tests.drills.helpers import campaign_body, scenario
from tests.intake.helpers import report_body, solved_pow

pytestmark = pytest.mark.slow


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_blind_drill_from_start_to_finish(server: LiveServer) -> None:  # noqa: F811
    triage = await server.staff(Role.TRIAGE)
    coordinator = await server.staff(Role.DRILL_COORDINATOR, with_key=False)
    supervisor = await server.staff(Role.SUPERVISOR, with_key=False)
    auditor = await server.staff(Role.AUDITOR, with_key=False)
    drill_api = bearer(coordinator.token)

    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:

        async def stats() -> dict:
            response = await client.get("/api/v1/stats", headers=bearer(supervisor.token))
            assert response.status_code == 200, response.text
            return response.json()

        async def file(body: dict, code: str | None = None) -> str:
            body = {**body, "pow": await solved_pow(client)}
            headers = {"X-Drill-Token": code} if code else {}
            response = await client.post("/api/v1/reports", json=body, headers=headers)
            assert response.status_code == 201, response.text
            return response.json()["receipt"]

        # The coordinator plans a blind campaign: two real-looking scenarios and a decoy.
        scenarios = [
            scenario("bribery", "construction_transport", marker="S1"),
            scenario("hiring", "human_resources", marker="S2"),
            scenario(report=False, marker="S3"),
        ]
        created = await client.post("/api/v1/drills", json=campaign_body(scenarios=scenarios), headers=drill_api)
        assert created.status_code == 201, created.text
        cid = created.json()["id"]
        injected = []
        for number in (1, 2):
            response = await client.post(f"/api/v1/drills/{cid}/inject", json={"scenario": number}, headers=drill_api)
            assert response.status_code == 201, response.text
            injected.append(response.json()["receipt"])
        issued = await client.post(f"/api/v1/drills/{cid}/participants", json={"count": 6, "cohort": "감사팀"}, headers=drill_api)
        codes = issued.json()["codes"]

        # Participants: code 0 has S1 and reports it; code 2 has the decoy S3 and declines;
        # code 1's holder has something real to report and ticks "this is real".
        titles = []
        for code in codes[:3]:
            opened = await client.post("/api/v1/participant/scenario", json={"code": code})
            assert opened.status_code == 200, opened.text
            titles.append(opened.json()["scenario"]["title"]["en"].split()[-1])
        assert titles == ["S1", "S2", "S3"]
        await file(report_body(marker="participant drill"), codes[0])
        declined = await client.post("/api/v1/participant/no-report", json={"code": codes[2]})
        assert declined.status_code == 201
        real_receipts = [
            await file(report_body(marker="this is real", channel="employee")),  # no code: a real case
            await file(report_body(marker="another real report")),  # filed in the same minutes
        ]
        assert (await stats())["total"] == 2

        # Triage works the queue with the CLI: five cases, none marked, each decrypted locally.
        listed = json.loads(server.ok("cases", "list", "--json", officer=triage))
        items = listed["items"] if isinstance(listed, dict) else listed
        assert len(items) == 5 and not any(item["is_drill"] for item in items)
        assert {frozenset(item) for item in items} == {frozenset(items[0])}  # the same fields for all
        assert json.loads(server.ok("cases", "list", "--drill", "--json", officer=triage)) in ([], {"items": [], "next_cursor": None})
        shown = {}
        for item in items:
            case = json.loads(server.ok("cases", "show", item["id"], "--key", str(triage.key_path), "--json", officer=triage))
            shown[item["id"]] = case
            server.ok("cases", "transition", item["id"], "acknowledge", officer=triage)
            server.ok("cases", "transition", item["id"], "start_assessment", officer=triage)
        assert all("report" in case or "content" in case for case in shown.values())
        reply_to = next(item["id"] for item in items if item["category"] == "bribery" and item["channel"] == "employee")
        server.ok("cases", "reply", reply_to, "--key", str(triage.key_path), officer=triage, input="확인 중입니다.\n")
        assert (await stats())["total"] == 2  # never a drill

        card = (await client.get(f"/api/v1/drills/{cid}/scorecard", headers=drill_api)).json()
        assert (card["totals"]["drill_cases"], card["totals"]["injected"], card["totals"]["participant_reports"]) == (3, 2, 1)
        # The one participant's report is counted, never listed, and (one is fewer than the
        # cohort threshold) left out of the handling figures, which are the injections'.
        assert card["totals"]["participant_handling_counted"] is False
        assert [row["source"] for row in card["cases"]] == ["injection", "injection"]
        assert card["totals"]["acknowledged"] == 2 and card["totals"]["median_seconds_to_acknowledge"] is not None
        assert card["totals"]["routed_as_expected"] == 2 and card["totals"]["routing_scored"] == 2
        assert card["participants"] == {
            "codes_issued": 6, "codes_used": 3, "reports_filed": 1, "no_report_decisions": 1, "correct_decisions": 2,
        }
        assert [row["cohort"] for row in card["cohorts"]] == ["감사팀"]

        histories = {}
        for item in items:
            response = await client.get(f"/api/v1/cases/{item['id']}/history", headers=bearer(triage.token))
            histories[item["id"]] = response.json()

        closed = await client.post(f"/api/v1/drills/{cid}/close", headers=drill_api)
        assert closed.status_code == 200 and closed.json()["purged_cases"] == 3
        frozen = (await client.get(f"/api/v1/drills/{cid}/scorecard", headers=drill_api)).json()
        assert frozen["frozen"] is True and frozen["totals"] == card["totals"] and frozen["cohorts"] == card["cohorts"]

        # The real cases, their history and their reporters' mailboxes are as they were.
        after = (await client.get("/api/v1/cases", headers=bearer(triage.token))).json()["items"]
        assert len(after) == 2
        for item in after:
            history = await client.get(f"/api/v1/cases/{item['id']}/history", headers=bearer(triage.token))
            assert history.json() == histories[item["id"]]
        for receipt in real_receipts:
            assert (await client.post("/api/v1/reporter/sessions", json={"receipt": receipt})).status_code == 201
        for receipt in injected:
            assert (await client.post("/api/v1/reporter/sessions", json={"receipt": receipt})).status_code == 401
        verified = await client.get("/api/v1/audit/verify", headers=bearer(auditor.token))
        assert verified.json()["ok"] is True
        purges = await client.get("/api/v1/audit", params={"action": "drill.purged"}, headers=bearer(auditor.token))
        assert [entry["details"]["purged_cases"] for entry in purges.json()["items"]] == [3]
        assert (await stats())["total"] == 2
