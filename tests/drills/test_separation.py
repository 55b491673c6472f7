"""Drills kept apart from real cases by construction: the database refuses to change a
case's drill columns, blind drills look real to staff, statistics never count a drill,
effects outside the service are only recorded, and a "this is real" report carries no
trace of the code that led to it."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from app.cases.models import Case
from app.domain import pow
from app.domain.staff import Role
from app.drills.models import DrillEffect
from tests.cases.helpers import case_row, insert_campaign, insert_case, transition
from tests.conftest import StaffFactory
from tests.drills.helpers import act, create_campaign, issue_codes
from tests.drills.test_drill_intake import snapshot
from tests.intake.helpers import report_body, submit

PROBLEM = "urn:cleanwindow:problem:"


@pytest.fixture
async def coordinator(staff) -> dict[str, str]:
    return await staff.headers_for(Role.DRILL_COORDINATOR)


@pytest.fixture
def staff_live(live, password_hashing, strong_password_hash):
    """Headers of a new staff member of a role, on the `live` service's database."""
    return StaffFactory(live.sessionmaker, live.client, password_hashing, strong_password_hash).headers_for


@pytest.mark.parametrize(
    ("drill", "change"),
    [
        (True, "is_drill = false"),
        (True, "shown_as_drill = NOT shown_as_drill"),
        (True, "drill_campaign_id = :other"),
        (True, "drill_campaign_id = NULL, is_drill = false, shown_as_drill = false"),  # made "real"
        (False, "is_drill = true"),
        (False, "shown_as_drill = true"),
        (False, "drill_campaign_id = :other, is_drill = true"),  # a real case made a drill
        (False, "drill_campaign_id = :other, is_drill = true, shown_as_drill = true"),
    ],
)
async def test_no_sql_can_change_a_cases_drill_columns(sessionmaker, change, drill):
    case = await insert_case(sessionmaker, is_drill=drill)
    other = await insert_campaign(sessionmaker)
    async with sessionmaker() as session:
        with pytest.raises((IntegrityError, DBAPIError)) as refused:
            await session.execute(text(f"UPDATE cases SET {change} WHERE id = :id"), {"id": case.id, "other": other.id})
        await session.rollback()
    assert "never change" in str(refused.value) or "drill_has_campaign" in str(refused.value)
    async with sessionmaker() as session:
        stored = await session.get(Case, case.id)
        assert (stored.is_drill, stored.drill_campaign_id) == (drill, case.drill_campaign_id)


async def test_a_drill_case_needs_a_campaign_and_a_real_case_has_none(sessionmaker):
    campaign = await insert_campaign(sessionmaker)
    for values in ({"is_drill": True}, {"drill_campaign_id": campaign.id}, {"shown_as_drill": True}):
        async with sessionmaker() as session:
            session.add(case_row(**values))
            with pytest.raises(IntegrityError):
                await session.flush()
            await session.rollback()


async def test_a_closed_campaign_takes_no_case_even_by_sql(sessionmaker, client, coordinator, clock):
    cid = (await create_campaign(client, coordinator, now=clock.now))["id"]
    assert (await act(client, coordinator, cid, "close")).status_code == 200
    async with sessionmaker() as session:
        session.add(case_row(is_drill=True, drill_campaign_id=cid))
        with pytest.raises((IntegrityError, DBAPIError), match="closed drill campaign"):
            await session.flush()


async def queue(client, headers, **params) -> dict[str, bool]:
    response = await client.get("/api/v1/cases", params={"limit": 200, **params}, headers=headers)
    assert response.status_code == 200, response.text
    return {item["id"]: item["is_drill"] for item in response.json()["items"]}


async def test_blind_drill_cases_look_real_to_staff_and_announced_ones_do_not(client, staff, sessionmaker):
    triage = await staff.headers_for(Role.TRIAGE)
    real = str((await insert_case(sessionmaker)).id)
    blind = str((await insert_case(sessionmaker, is_drill=True, blind=True)).id)
    announced = str((await insert_case(sessionmaker, is_drill=True, blind=False)).id)

    everything = await queue(client, triage)
    assert everything[real] is False and everything[blind] is False and everything[announced] is True
    assert set(await queue(client, triage, drill="true")) == {announced}
    assert {real, blind} <= set(await queue(client, triage, drill="false"))
    assert announced not in await queue(client, triage, drill="false")
    detail = await client.get(f"/api/v1/cases/{blind}", headers=triage)
    assert detail.json()["is_drill"] is False
    moved = await transition(client, triage, blind, "acknowledge", 1)
    assert moved.status_code == 200 and moved.json()["is_drill"] is False


async def test_statistics_count_no_drill_blind_or_announced(client, staff, sessionmaker):
    supervisor = await staff.headers_for(Role.SUPERVISOR)
    before = (await client.get("/api/v1/stats", headers=supervisor)).json()
    await insert_case(sessionmaker, is_drill=True, blind=True)
    await insert_case(sessionmaker, is_drill=True, blind=False)
    after = (await client.get("/api/v1/stats", headers=supervisor)).json()
    assert after["total"] == before["total"] and after["by_state"] == before["by_state"]


async def test_a_drill_referral_is_recorded_on_the_campaign_and_a_real_one_is_not(client, staff, sessionmaker):
    supervisor = await staff.headers_for(Role.SUPERVISOR)
    drill = await insert_case(sessionmaker, is_drill=True, blind=True, state="assessing", acknowledged_on=None)
    real = await insert_case(sessionmaker, state="assessing")
    for case in (drill, real):
        response = await transition(client, supervisor, case.id, "refer", case.version, reason="to the ACRC")
        assert response.status_code == 200, response.text
    async with sessionmaker() as session:
        effects = (await session.scalars(select(DrillEffect))).all()
    assert [(e.campaign_id, e.case_id, e.kind) for e in effects] == [(drill.drill_campaign_id, drill.id, "referral")]


async def test_a_this_is_real_report_leaves_no_trace_of_its_code(client, coordinator, sessionmaker, clock):
    cid = (await create_campaign(client, coordinator, now=clock.now))["id"]
    [code, *_] = await issue_codes(client, coordinator, cid, 5)
    opened = await client.post("/api/v1/participant/scenario", json={"code": code})
    assert opened.status_code == 200 and opened.json()["scenario"]["title"]["ko"]
    before = await snapshot(sessionmaker)

    # The participant ticks "this is a real report": the page sends it without the code.
    response = await submit(client, report_body(marker="진짜 신고"))
    assert response.status_code == 201
    after = await snapshot(sessionmaker)
    drill_tables = [t for t in before if t.startswith("drill_")]
    assert drill_tables and all(after[t] == before[t] for t in drill_tables)
    async with sessionmaker() as session:
        [case] = (await session.scalars(select(Case).where(Case.is_drill.is_(False)))).all()
        assert case.drill_campaign_id is None and case.shown_as_drill is False
        code_digests = (await session.scalars(text("SELECT encode(digest, 'hex') FROM drill_participant_codes"))).all()
    changed = {t for t in after if after[t] != before[t]}
    # A real report is announced to triage (batched); nothing in that notice names the code.
    assert changed <= {"cases", "case_keys", "intake_budgets", "notification_events"}
    for table in changed:
        assert not any(digest in after[table] for digest in code_digests)
        assert cid not in after[table]
    # The code is still open for a drill decision: nothing moved when the real report came.
    assert (await client.post("/api/v1/participant/no-report", json={"code": code})).status_code == 201


async def test_two_reports_with_one_code_leave_exactly_one_winner(live, staff_live):
    headers = await staff_live(Role.DRILL_COORDINATOR)
    cid = (await create_campaign(live.client, headers))["id"]
    [code] = await issue_codes(live.client, headers, cid, 1)
    bodies = []
    for _ in range(4):
        body = report_body()
        challenge = (await live.client.post("/api/v1/intake/challenges")).json()
        body["pow"] = {"challenge": challenge["challenge"], "nonce": pow.solve(challenge["challenge"], challenge["difficulty"])}
        bodies.append(body)
    responses = await asyncio.gather(
        *(live.client.post("/api/v1/reports", json=body, headers={"X-Drill-Token": code}) for body in bodies),
        live.client.post("/api/v1/participant/no-report", json={"code": code}),
    )
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201, 403, 403, 403, 403], [r.text for r in responses]
    async with live.sessionmaker() as session:
        drill_cases = (await session.execute(text("SELECT count(*) FROM drill_cases"))).scalar()
        decision = (await session.execute(text("SELECT decision FROM drill_participant_codes"))).scalar()
    won_by_report = any(r.status_code == 201 for r in responses[:4])
    assert (drill_cases, decision) == ((1, "reported") if won_by_report else (0, "no_report"))


async def test_a_close_racing_injections_leaves_no_drill_case_behind(live, staff_live):
    headers = await staff_live(Role.DRILL_COORDINATOR)
    created = await create_campaign(live.client, headers)
    token = created["injection_token"]
    injections = [
        live.client.post("/api/v1/reports", json=report_body(), headers={"X-Drill-Token": token}) for _ in range(6)
    ]
    close = live.client.post(f"/api/v1/drills/{created['id']}/close", headers=headers)
    *filed, closed = await asyncio.gather(*injections, close)
    assert closed.status_code == 200
    assert {response.status_code for response in filed} <= {201, 403}
    async with live.sessionmaker() as session:
        left = (await session.execute(text("SELECT count(*) FROM cases WHERE is_drill"))).scalar()
        scorecard = (await session.execute(text("SELECT purged_cases FROM drill_campaigns"))).scalar()
    assert left == 0
    assert scorecard == sum(response.status_code == 201 for response in filed)


async def test_a_close_racing_staff_work_on_its_cases_neither_deadlocks_nor_fails(live, staff_live):
    """Close locks the campaign, then deletes its cases; a referral of one of them locks the
    case, then records its simulated effect (whose foreign key touches the campaign row).
    The close must not lock the campaign against that key check, or the two deadlock."""
    coordinator = await staff_live(Role.DRILL_COORDINATOR)
    supervisor = await staff_live(Role.SUPERVISOR)
    for _ in range(3):
        cid = (await create_campaign(live.client, coordinator))["id"]
        for _ in range(3):
            response = await live.client.post(f"/api/v1/drills/{cid}/inject", json={}, headers=coordinator)
            assert response.status_code == 201, response.text
        async with live.sessionmaker() as session:
            ids = (await session.scalars(select(Case.id).where(Case.drill_campaign_id == cid))).all()
        for case_id in ids:
            for version, action in enumerate(("acknowledge", "start_assessment"), start=1):
                assert (await transition(live.client, supervisor, case_id, action, version)).status_code == 200
        referrals = [transition(live.client, supervisor, case_id, "refer", 3, reason="ACRC") for case_id in ids]
        *referred, closed = await asyncio.gather(*referrals, live.client.post(f"/api/v1/drills/{cid}/close", headers=coordinator))
        assert closed.status_code == 200, closed.text
        assert {response.status_code for response in referred} <= {200, 404}, [r.text for r in referred]
        async with live.sessionmaker() as session:
            assert (await session.scalars(select(Case.id).where(Case.drill_campaign_id == cid))).all() == []


async def test_injections_at_once_each_take_their_own_turn(live, staff_live):
    headers = await staff_live(Role.DRILL_COORDINATOR)
    cid = (await create_campaign(live.client, headers))["id"]
    answers = await asyncio.gather(
        *(live.client.post(f"/api/v1/drills/{cid}/inject", json={}, headers=headers) for _ in range(6))
    )
    assert all(answer.status_code == 201 for answer in answers), [a.text for a in answers]
    assert sorted(answer.json()["scenario"] for answer in answers) == [1, 1, 2, 2, 3, 3]
