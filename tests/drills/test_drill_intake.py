"""Drill reports through the intake path: the injection token, participant codes, the
inject endpoint; and every refusal, which must store nothing at all."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text

from app.cases.models import Case
from app.domain.staff import Role
from app.drills.models import DrillCase, DrillParticipantCode
from tests.drills.helpers import act, create_campaign, inject, issue_codes
from tests.intake.helpers import idempotency_key, report_body, submit

PROBLEM = "urn:cleanwindow:problem:"


@pytest.fixture
async def coordinator(staff) -> dict[str, str]:
    return await staff.headers_for(Role.DRILL_COORDINATOR)


async def snapshot(sessionmaker) -> dict[str, object]:
    """Every table's rows, as text: a refusal must leave all of it as it was."""
    async with sessionmaker() as session:
        tables = (
            await session.scalars(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'")
            )
        ).all()
        return {
            table: (await session.execute(text(f'SELECT coalesce(json_agg(t ORDER BY t::text), \'[]\')::text FROM "{table}" t'))).scalar()
            for table in sorted(tables)
        }


async def drill_rows(sessionmaker) -> list[tuple[Case, DrillCase]]:
    async with sessionmaker() as session:
        return [tuple(row) for row in (await session.execute(select(Case, DrillCase).join(DrillCase))).all()]


@pytest.mark.parametrize("blind", [True, False])
async def test_the_injection_token_files_a_drill_case_without_proof_of_work(client, coordinator, sessionmaker, clock, blind):
    created = await create_campaign(client, coordinator, now=clock.now, blind=blind)
    response = await submit(client, report_body(), headers={"X-Drill-Token": created["injection_token"]}, with_pow=False)
    assert response.status_code == 201, response.text
    [(case, drill)] = await drill_rows(sessionmaker)
    assert case.is_drill and str(case.drill_campaign_id) == created["id"] and case.shown_as_drill is (not blind)
    assert (drill.source, drill.scenario, drill.received_at) == ("injection", 1, clock.now)
    assert case.pow_digest is None
    async with sessionmaker() as session:
        budgets = (await session.execute(text("SELECT count(*) FROM intake_budgets"))).scalar()
    assert budgets == 0  # a drill does not raise real reporters' proof of work


async def test_a_participant_code_files_one_drill_report_with_proof_of_work(client, coordinator, sessionmaker, clock):
    cid = (await create_campaign(client, coordinator, now=clock.now))["id"]
    [code] = await issue_codes(client, coordinator, cid, 1)
    without_work = await submit(client, report_body(), headers={"X-Drill-Token": code}, with_pow=False)
    assert without_work.status_code == 422
    assert without_work.json()["type"] == PROBLEM + "proof-of-work-required"

    typed = code.lower().replace("-", " ")  # as someone types it from a slip of paper
    assert (await submit(client, report_body(), headers={"X-Drill-Token": typed})).status_code == 201
    [(_, drill)] = await drill_rows(sessionmaker)
    assert drill.source == "participant" and drill.scenario == 1
    assert drill.received_at == clock.now.replace(minute=0, second=0, microsecond=0)
    async with sessionmaker() as session:
        [stored] = (await session.scalars(select(DrillParticipantCode))).all()
    assert stored.used and stored.decision == "reported"

    again = await submit(client, report_body(), headers={"X-Drill-Token": code})
    assert again.status_code == 403 and again.json()["type"] == PROBLEM + "drill-token-invalid"


async def test_a_retried_drill_report_returns_the_same_receipt(client, coordinator, sessionmaker, clock):
    cid = (await create_campaign(client, coordinator, now=clock.now))["id"]
    [code] = await issue_codes(client, coordinator, cid, 1)
    key = idempotency_key()
    headers = {"X-Drill-Token": code, "Idempotency-Key": key}
    first = await submit(client, report_body(), headers=headers)
    retry = await submit(client, report_body(), headers=headers)
    assert first.status_code == retry.status_code == 201
    assert first.json()["receipt"] == retry.json()["receipt"] and retry.headers["Idempotent-Replayed"] == "true"
    # The same key with no code is another request, not a replay of the drill one.
    as_real = await submit(client, report_body(), headers={"Idempotency-Key": key})
    assert as_real.status_code == 422 and as_real.json()["type"] == PROBLEM + "idempotency-key-reused"
    assert len(await drill_rows(sessionmaker)) == 1


async def refusals(client, coordinator, clock):
    """Every kind of token or code that must be refused, each with its campaign set up."""
    running = await create_campaign(client, coordinator, now=clock.now)
    used, declined = await issue_codes(client, coordinator, running["id"], 2)
    assert (await submit(client, report_body(), headers={"X-Drill-Token": used})).status_code == 201
    assert (await client.post("/api/v1/participant/no-report", json={"code": declined})).status_code == 201
    paused = await create_campaign(client, coordinator, now=clock.now)
    [paused_code] = await issue_codes(client, coordinator, paused["id"], 1)
    assert (await act(client, coordinator, paused["id"], "pause")).status_code == 200
    closed = await create_campaign(client, coordinator, now=clock.now)
    [closed_code] = await issue_codes(client, coordinator, closed["id"], 1)
    assert (await act(client, coordinator, closed["id"], "close")).status_code == 200
    early = await create_campaign(
        client, coordinator, starts_at=clock.now + timedelta(hours=1), ends_at=clock.now + timedelta(days=1)
    )
    [early_code] = await issue_codes(client, coordinator, early["id"], 1)
    ending = await create_campaign(
        client, coordinator, starts_at=clock.now - timedelta(hours=1), ends_at=clock.now + timedelta(minutes=1)
    )
    [ended_code] = await issue_codes(client, coordinator, ending["id"], 1)
    return {
        "unknown token": "A" * 32,
        "unknown code": "ABCD-EFGH-JKMN",
        "malformed": "not a token",
        "used code": used,
        "declined code": declined,
        "paused token": paused["injection_token"],
        "paused code": paused_code,
        "closed token": closed["injection_token"],
        "closed code": closed_code,
        "early token": early["injection_token"],
        "early code": early_code,
        "ended token": ending["injection_token"],
        "ended code": ended_code,
    }


async def test_every_refused_token_or_code_gets_the_same_403_and_writes_nothing(client, coordinator, sessionmaker, clock):
    presented = await refusals(client, coordinator, clock)
    clock.now += timedelta(minutes=2)  # past the end of the `ending` campaign's window
    before = await snapshot(sessionmaker)
    details = set()
    for why, token in presented.items():
        for path, body in (
            ("/api/v1/reports", None),
            ("/api/v1/participant/scenario", {"code": token}),
            ("/api/v1/participant/no-report", {"code": token}),
        ):
            if body is None:
                response = await submit(client, report_body(), headers={"X-Drill-Token": token})
            else:
                response = await client.post(path, json=body)
            assert response.status_code == 403, (why, path, response.text)
            assert response.json()["type"] == PROBLEM + "drill-token-invalid", why
            details.add(response.json()["detail"])
    assert len(details) == 1  # one answer for every reason: a refusal tells a guesser nothing
    assert await snapshot(sessionmaker) == before


async def test_the_inject_endpoint_runs_each_scenario_in_turn(client, coordinator, sessionmaker, clock):
    created = await create_campaign(client, coordinator, now=clock.now)
    cid = created["id"]
    numbers = [(await inject(client, coordinator, cid))["scenario"] for _ in range(4)]
    assert numbers == [1, 2, 3, 1]
    chosen = await inject(client, coordinator, cid, 3)
    assert chosen["scenario"] == 3 and len(chosen["receipt"].replace("-", "")) == 21
    rows = await drill_rows(sessionmaker)
    assert sorted(drill.scenario for _, drill in rows) == [1, 1, 2, 3, 3]
    second = created["scenarios"][1]["report"]
    assert {(case.category, case.org_unit) for case, drill in rows if drill.scenario == 2} == {
        (second["category"], second["org_unit"])
    }
    # The injected receipt opens the mailbox: the coordinator can play the reporter.
    session = await client.post("/api/v1/reporter/sessions", json={"receipt": chosen["receipt"]})
    assert session.status_code == 201
    out_of_range = await client.post(f"/api/v1/drills/{cid}/inject", json={"scenario": 4}, headers=coordinator)
    assert out_of_range.status_code == 422
    assert (await act(client, coordinator, cid, "pause")).status_code == 200
    before = await snapshot(sessionmaker)
    paused = await client.post(f"/api/v1/drills/{cid}/inject", json={}, headers=coordinator)
    assert paused.status_code == 403 and paused.json()["type"] == PROBLEM + "drill-token-invalid"
    assert await snapshot(sessionmaker) == before


async def test_a_drill_token_means_nothing_on_a_real_reporters_session(client, sessionmaker, coordinator, clock):
    created = await create_campaign(client, coordinator, now=clock.now)
    response = await submit(client, report_body())
    assert response.status_code == 201
    login = await client.post("/api/v1/reporter/sessions", json={"receipt": response.json()["receipt"]})
    headers = {"Authorization": f"Bearer {login.json()['token']}", "X-Drill-Token": created["injection_token"]}
    assert (await client.post("/api/v1/reporter/messages", json={"body": "추가 정보"}, headers=headers)).status_code == 201
    report = await client.get("/api/v1/reporter/report", headers=headers)
    assert report.status_code == 200 and "drill" not in report.text.lower()
    async with sessionmaker() as session:
        assert (await session.scalars(select(Case.is_drill))).all() == [False]


async def test_a_drill_report_is_not_counted_in_the_hourly_intake_figure(app, client, coordinator, clock):
    """Whoever reads /metrics must not tell a drill's report from a real one."""
    created = await create_campaign(client, coordinator, now=clock.now, blind=True)
    drill = await submit(client, report_body(), headers={"X-Drill-Token": created["injection_token"]}, with_pow=False)
    assert drill.status_code == 201, drill.text
    assert (await submit(client, report_body())).status_code == 201
    # The real one counts, the drill does not.
    assert app.state.context.intake_hours.last_completed(clock.now + timedelta(hours=1)).count == 1
