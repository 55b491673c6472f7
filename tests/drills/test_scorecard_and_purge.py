"""The scorecard from the system's own records, frozen at close; and the purge that
follows, which takes every drill case's content and keys and leaves real cases, their
history and the audit chain as they were."""

from __future__ import annotations

import csv
import io
import os
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from app.cases.models import Case, CaseKey, CaseTransition
from app.domain.staff import Role
from app.drills.schemas import Scorecard
from tests.cases.helpers import register_key, transition
from tests.drills.helpers import act, campaign_body, inject, issue_codes, scenario
from tests.intake.helpers import report_body, submit

PROBLEM = "urn:cleanwindow:problem:"


@pytest.fixture
async def coordinator(staff) -> dict[str, str]:
    return await staff.headers_for(Role.DRILL_COORDINATOR)


async def message(client, headers, case_id) -> None:
    body = {"id": str(uuid.uuid4()), "sealed_body": "eA" * 40, "seal_format": 2}
    response = await client.post(f"/api/v1/cases/{case_id}/messages", json=body, headers=headers)
    assert response.status_code == 201, response.text


async def test_a_campaign_is_scored_frozen_at_close_and_then_purged(client, staff, sessionmaker, coordinator, clock):
    triage_user = await staff.create(Role.TRIAGE)
    triage = {"Authorization": f"Bearer {await staff.token_for(triage_user)}"}
    await register_key(client, triage)  # drill reports are sealed to triage, like real ones
    auditor = await staff.create(Role.AUDITOR)
    scenarios = [
        scenario("bribery", "construction_transport", marker="S1"),
        scenario("hiring", None, marker="S2"),  # any unit will do
        scenario(report=False, marker="S3"),  # a decoy
    ]
    body = campaign_body(now=clock.now, scenarios=scenarios, blind=True)
    created = (await client.post("/api/v1/drills", json=body, headers=coordinator)).json()
    cid = created["id"]
    start = clock.now

    # Handlers: two injections, one acknowledged after 10 minutes and assessed after 25,
    # answered, and its key given to an auditor (who did not need it).
    first = await inject(client, coordinator, cid, 1)
    await inject(client, coordinator, cid, 2)
    real_receipt = (await submit(client, report_body(marker="REAL"))).json()["receipt"]
    async with sessionmaker() as session:
        injected = (await session.scalars(select(Case).where(Case.is_drill).order_by(Case.category))).all()
        real = (await session.scalars(select(Case).where(Case.is_drill.is_(False)))).one()
    bribery = next(case for case in injected if case.category == "bribery")
    clock.now = start + timedelta(minutes=10)
    assert (await transition(client, triage, bribery.id, "acknowledge", 1)).status_code == 200
    clock.now = start + timedelta(minutes=25)
    assert (await transition(client, triage, bribery.id, "start_assessment", 2)).status_code == 200
    await message(client, triage, bribery.id)
    async with sessionmaker() as session:
        session.add(
            CaseKey(case_id=bribery.id, recipient_kind="staff", staff_user_id=auditor.id,
                    recipient_fingerprint="f" * 39, sealed_key=os.urandom(80))
        )
        await session.commit()
    # The real case is handled alongside, in the same minutes.
    assert (await transition(client, triage, real.id, "acknowledge", 1)).status_code == 200

    # Participants: 6 codes for 감사팀, 5 for 복지과, 2 for 민원실 (both folded into "other").
    codes = {
        "감사팀": await issue_codes(client, coordinator, cid, 6, "감사팀"),
        "복지과": await issue_codes(client, coordinator, cid, 5, "복지과"),
        "민원실": await issue_codes(client, coordinator, cid, 2, "민원실"),
    }

    async def scenario_of(code: str) -> str:
        opened = await client.post("/api/v1/participant/scenario", json={"code": code})
        assert opened.status_code == 200, opened.text
        return opened.json()["scenario"]["title"]["en"].split()[-1]

    audit = codes["감사팀"]
    assert [await scenario_of(code) for code in audit] == ["S1", "S2", "S3", "S1", "S2", "S3"]
    # 감사팀: reports S1 correctly (with the right category), declines the decoy S3 (correct),
    # reports the decoy's twin S3 (wrong), declines S2 (wrong); two codes only opened.
    assert (await submit(client, report_body(), headers={"X-Drill-Token": audit[0]})).status_code == 201
    assert (await client.post("/api/v1/participant/no-report", json={"code": audit[2]})).status_code == 201
    assert (await submit(client, report_body(category="other"), headers={"X-Drill-Token": audit[5]})).status_code == 201
    assert (await client.post("/api/v1/participant/no-report", json={"code": audit[4]})).status_code == 201
    # 민원실 (codes 12 and 13 of the round robin: S3, S1): one opens the decoy, the other
    # reports S1 under the wrong category. "other" holds 복지과 and 민원실.
    assert [await scenario_of(code) for code in codes["민원실"]] == ["S3", "S1"]
    assert (
        await submit(client, report_body(category="hiring"), headers={"X-Drill-Token": codes["민원실"][1]})
    ).status_code == 201

    clock.now = start + timedelta(hours=1)
    card = (await client.get(f"/api/v1/drills/{cid}/scorecard", headers=coordinator)).json()
    Scorecard.model_validate(card)  # what /openapi.json documents is what is served
    totals = card["totals"]
    assert card["frozen"] is False and card["cohort_threshold"] == 5
    assert (totals["drill_cases"], totals["injected"], totals["participant_reports"]) == (5, 2, 3)
    assert totals["acknowledged"] == 1
    assert totals["median_seconds_to_acknowledge"] == 600 and totals["median_seconds_to_assessment"] == 1500
    # Three participants' reports (below the threshold of 5): counted, never listed, and
    # their handling left out of the figures, which are the two injections'.
    assert totals["participant_handling_counted"] is False
    assert totals["reporter_answered"] == 1 and totals["confidentiality_kept"] == 1
    assert totals["routing_scored"] == 2 and totals["routed_as_expected"] == 2
    assert sum(totals["acknowledgement_deadline"].values()) == 2
    assert [row["source"] for row in card["cases"]] == ["injection", "injection"]
    assert card["participants"] == {
        "codes_issued": 13, "codes_used": 8, "reports_filed": 3, "no_report_decisions": 2, "correct_decisions": 3,
    }
    by_cohort = {row["cohort"]: row for row in card["cohorts"]}
    assert set(by_cohort) == {"감사팀", "other"}
    assert by_cohort["감사팀"] == {
        "cohort": "감사팀", "codes_issued": 6, "codes_used": 6, "reports_filed": 2,
        "no_report_decisions": 2, "correct_decisions": 2,
    }
    assert by_cohort["other"] == {
        "cohort": "other", "codes_issued": 7, "codes_used": 2, "reports_filed": 1,
        "no_report_decisions": 0, "correct_decisions": 1,
    }
    dumped = str(card)
    assert not any(str(case.id) in dumped for case in injected) and str(first["receipt"]) not in dumped
    assert not any(code in dumped for batch in codes.values() for code in batch)

    as_csv = await client.get(f"/api/v1/drills/{cid}/scorecard", headers={**coordinator, "Accept": "text/csv"})
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [row["kind"] for row in rows].count("case") == 2
    assert {row["label"] for row in rows if row["kind"] == "cohort"} == {"감사팀", "other"}

    # Close: the numbers are frozen, then the campaign's cases are purged.
    audit_before = (await client.get("/api/v1/audit/verify", headers=await staff.headers_for(Role.AUDITOR))).json()
    clock.now = start + timedelta(hours=2)
    closed = await act(client, coordinator, cid, "close")
    assert closed.status_code == 200 and closed.json()["purged_cases"] == 5 and closed.json()["drill_cases"] == 0
    frozen = (await client.get(f"/api/v1/drills/{cid}/scorecard", headers=coordinator)).json()
    clock.now = start + timedelta(hours=6)  # later reads return the same numbers
    assert (await client.get(f"/api/v1/drills/{cid}/scorecard", headers=coordinator)).json() == frozen
    assert frozen["frozen"] is True
    for key in ("totals", "participants", "cohorts", "cases"):
        assert frozen[key] == card[key] or key == "cases" and len(frozen[key]) == len(card[key]), key

    async with sessionmaker() as session:
        left = {
            table: (await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar()
            for table in ("drill_cases", "case_messages", "case_attachments")
        }
        keys_left = (await session.scalars(select(CaseKey.case_id).distinct())).all()
        history = (await session.scalars(select(CaseTransition.case_id).distinct())).all()
        cases_left = (await session.scalars(select(Case.id))).all()
    assert cases_left == [real.id] and keys_left == [real.id] and history == [real.id]
    assert left == {"drill_cases": 0, "case_messages": 0, "case_attachments": 0}
    # The real case still opens for its reporter.
    assert (await client.post("/api/v1/reporter/sessions", json={"receipt": real_receipt})).status_code == 201
    assert (await client.post("/api/v1/reporter/sessions", json={"receipt": first["receipt"]})).status_code == 401

    auditor_headers = await staff.headers_for(Role.AUDITOR)
    verified = (await client.get("/api/v1/audit/verify", headers=auditor_headers)).json()
    assert verified["ok"] is True and verified["entries"] > audit_before["entries"]
    entries = (await client.get("/api/v1/audit", params={"limit": 200}, headers=auditor_headers)).json()["items"]
    purged = [entry for entry in entries if entry["action"] == "drill.purged"]
    assert len(purged) == 1 and purged[0]["details"]["purged_cases"] == 5
    assert any(entry["action"] == "drill.transition" and entry["details"]["action"] == "close" for entry in entries)
