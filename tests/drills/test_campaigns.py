"""Campaigns over the real API: who may run them, what a campaign body must hold, and the
life cycle as the database records it."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from app.domain.staff import Role
from app.drills.models import DrillCampaign, DrillCampaignTransition
from tests.drills.helpers import act, campaign_body, create_campaign, issue_codes, scenario

PROBLEM = "urn:cleanwindow:problem:"


@pytest.fixture
async def coordinator(staff) -> dict[str, str]:
    return await staff.headers_for(Role.DRILL_COORDINATOR)


async def test_a_coordinator_creates_a_campaign_and_sees_its_token_once(client, coordinator, sessionmaker, clock):
    created = await create_campaign(client, coordinator, now=clock.now)
    token = created["injection_token"]
    assert len(token) == 32 and created["state"] == "running" and created["accepting_reports"] is True
    assert [s["number"] for s in created["scenarios"]] == [1, 2, 3]
    assert created["allowed_actions"] == ["pause", "close"]

    read = (await client.get(f"/api/v1/drills/{created['id']}", headers=coordinator)).json()
    listed = (await client.get("/api/v1/drills", headers=coordinator)).json()["items"]
    assert "injection_token" not in read and [item["id"] for item in listed] == [created["id"]]
    async with sessionmaker() as session:
        campaign = await session.get(DrillCampaign, created["id"])
        history = (await session.scalars(select(DrillCampaignTransition))).all()
        dump = (await session.execute(text("SELECT row_to_json(c)::text FROM drill_campaigns c"))).scalar()
    assert token not in dump and campaign.token_digest != token.encode()
    # The window had opened: the service recorded the clock's start, with no actor.
    assert [(h.action, h.from_state, h.to_state, h.actor_id) for h in history] == [("start", "scheduled", "running", None)]


async def test_a_campaign_still_to_come_is_scheduled_and_takes_nothing(client, coordinator, clock):
    created = await create_campaign(
        client, coordinator, starts_at=clock.now + timedelta(minutes=10), ends_at=clock.now + timedelta(days=2)
    )
    assert created["state"] == "scheduled" and created["accepting_reports"] is False
    clock.now += timedelta(minutes=10)
    read = (await client.get(f"/api/v1/drills/{created['id']}", headers=coordinator)).json()
    assert read["state"] == "running" and read["accepting_reports"] is True
    card = (await client.get(f"/api/v1/drills/{created['id']}/scorecard", headers=coordinator)).json()
    assert card["campaign"]["state"] == "running"  # the scorecard says what the campaign does


@pytest.mark.parametrize("role", [r for r in Role if r is not Role.DRILL_COORDINATOR])
async def test_every_other_role_is_refused_every_drill_endpoint(client, staff, coordinator, role, clock):
    created = await create_campaign(client, coordinator, now=clock.now)
    headers = await staff.headers_for(role)
    cid = created["id"]
    calls = [
        ("POST", "/api/v1/drills", campaign_body(now=clock.now)),
        ("GET", "/api/v1/drills", None),
        ("GET", "/api/v1/drills/scenarios", None),
        ("GET", f"/api/v1/drills/{cid}", None),
        ("POST", f"/api/v1/drills/{cid}/pause", None),
        ("POST", f"/api/v1/drills/{cid}/close", None),
        ("POST", f"/api/v1/drills/{cid}/inject", {}),
        ("POST", f"/api/v1/drills/{cid}/participants", {"count": 1}),
        ("GET", f"/api/v1/drills/{cid}/scorecard", None),
    ]
    for method, path, body in calls:
        response = await client.request(method, path, json=body, headers=headers)
        assert response.status_code == 403, (path, response.text)
        assert response.json()["type"] == PROBLEM + "forbidden"


async def test_coordinators_see_only_their_own_campaigns(client, staff, coordinator, clock):
    created = await create_campaign(client, coordinator, now=clock.now)
    other = await staff.headers_for(Role.DRILL_COORDINATOR)
    assert (await client.get("/api/v1/drills", headers=other)).json()["items"] == []
    for method, suffix in (("GET", ""), ("POST", "/pause"), ("GET", "/scorecard"), ("POST", "/inject")):
        response = await client.request(method, f"/api/v1/drills/{created['id']}{suffix}", json={}, headers=other)
        assert response.status_code == 404, (suffix, response.text)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b.update(ends_at=b["starts_at"]), "ends_at"),
        (lambda b: b.update(starts_at="2026-12-01T09:00:00"), "starts_at"),  # no zone
        (lambda b: b.update(scenarios=[]), "scenarios"),
        (lambda b: b.update(scenarios=[{"library": "no-such-scenario"}]), "scenarios[0].library"),
        (lambda b: b.update(scenarios=[scenario(category="no_such_category")]), "scenarios[0].report.category"),
        (lambda b: b.update(scenarios=[scenario(org_unit="nowhere")]), "scenarios[0].report.org_unit"),
        (lambda b: b["scenarios"][0]["expected"].update(category=None), "scenarios"),
        (lambda b: b["scenarios"][0]["report"].update(contact={"name": "김가명"}), "scenarios"),
        (lambda b: b.update(name=" "), "name"),
        (lambda b: b.update(extra=1), "extra"),
    ],
)
async def test_a_bad_campaign_body_gets_a_clear_422_and_stores_nothing(client, coordinator, sessionmaker, clock, change, field):
    body = campaign_body(now=clock.now)
    change(body)
    response = await client.post("/api/v1/drills", json=body, headers=coordinator)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field.split("[")[0].split(".")[0] in response.text
    async with sessionmaker() as session:
        assert (await session.scalars(select(DrillCampaign))).all() == []


async def test_a_window_already_over_is_refused(client, coordinator, clock):
    body = campaign_body(starts_at=clock.now - timedelta(days=2), ends_at=clock.now - timedelta(days=1))
    response = await client.post("/api/v1/drills", json=body, headers=coordinator)
    assert response.status_code == 422 and "ends_at" in response.text


async def test_pause_resume_close_follow_the_table_and_name_the_allowed_actions(client, coordinator, clock):
    cid = (await create_campaign(client, coordinator, now=clock.now))["id"]
    assert (await act(client, coordinator, cid, "resume")).status_code == 409
    paused = await act(client, coordinator, cid, "pause")
    assert paused.json()["state"] == "paused" and paused.json()["accepting_reports"] is False
    refused = await act(client, coordinator, cid, "pause")
    assert refused.status_code == 409
    assert refused.json()["type"] == PROBLEM + "campaign-action-not-allowed"
    assert refused.json()["allowed_actions"] == ["resume", "close"]
    assert (await act(client, coordinator, cid, "resume")).json()["state"] == "running"
    closed = await act(client, coordinator, cid, "close")
    assert closed.json()["state"] == "closed" and closed.json()["closed_at"] is not None
    for action in ("pause", "resume", "close"):
        again = await act(client, coordinator, cid, action)
        assert again.status_code == 409 and again.json()["allowed_actions"] == []
    late = await client.post(f"/api/v1/drills/{cid}/participants", json={"count": 1}, headers=coordinator)
    assert late.status_code == 409 and late.json()["type"] == PROBLEM + "campaign-closed"


async def test_participant_codes_are_shown_once_and_stored_as_digests(client, coordinator, sessionmaker, clock):
    cid = (await create_campaign(client, coordinator, now=clock.now))["id"]
    codes = await issue_codes(client, coordinator, cid, 7, cohort="감사팀")
    codes += await issue_codes(client, coordinator, cid, 2)
    assert len(set(codes)) == 9
    async with sessionmaker() as session:
        dump = (await session.execute(text("SELECT json_agg(c)::text FROM drill_participant_codes c"))).scalar()
        rows = (await session.execute(text("SELECT cohort, scenario FROM drill_participant_codes"))).all()
    assert not any(code in dump or code.replace("-", "") in dump for code in codes)
    assert sorted(scenario for _, scenario in rows) == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert sorted((cohort or "") for cohort, _ in rows) == [""] * 2 + ["감사팀"] * 7
    read = (await client.get(f"/api/v1/drills/{cid}", headers=coordinator)).json()
    assert read["codes_issued"] == 9
    for bad in ({"count": 0}, {"count": 1001}, {"count": "3"}, {"count": 1, "cohort": "x" * 65}):
        response = await client.post(f"/api/v1/drills/{cid}/participants", json=bad, headers=coordinator)
        assert response.status_code == 422, bad


async def test_the_database_refuses_every_step_the_table_does_not_allow(sessionmaker, client, coordinator, clock):
    cid = (await create_campaign(client, coordinator, now=clock.now))["id"]
    states, actions = ("scheduled", "running", "paused", "closed"), ("start", "pause", "resume", "close")
    allowed = {
        ("start", "scheduled", "running"), ("pause", "scheduled", "paused"), ("pause", "running", "paused"),
        ("resume", "paused", "running"), ("close", "scheduled", "closed"), ("close", "running", "closed"),
        ("close", "paused", "closed"),
    }
    for version, (action, source, target) in enumerate(itertools.product(actions, states, states), start=100):
        async with sessionmaker() as session:
            actor = "NULL" if action == "start" else "(SELECT created_by_id FROM drill_campaigns LIMIT 1)"
            statement = text(
                "INSERT INTO drill_campaign_transitions (id, campaign_id, version, action, from_state, to_state,"
                f" actor_id, occurred_at) VALUES (gen_random_uuid(), :cid, :version, :action, :source, :target, {actor}, now())"
            )
            parameters = {"cid": cid, "version": version, "action": action, "source": source, "target": target}
            if (action, source, target) in allowed:
                await session.execute(statement, parameters)
            else:
                with pytest.raises(IntegrityError):
                    await session.execute(statement, parameters)
            await session.rollback()


async def test_the_library_is_served_and_copied_into_a_campaign(client, coordinator, clock):
    library = (await client.get("/api/v1/drills/scenarios", headers=coordinator)).json()["items"]
    assert len(library) >= 12 and sum(not item["expected"]["report"] for item in library) >= 2
    assert all(item["title"]["ko"] and item["title"]["en"] and item["brief"]["ko"] for item in library)
    slugs = [library[0]["slug"], next(item["slug"] for item in library if not item["expected"]["report"])]
    own = {key: library[1][key] for key in ("title", "brief", "report", "expected")}
    own["title"] = {"ko": "수정한 시나리오", "en": "An edited scenario"}
    body = campaign_body(now=clock.now, scenarios=[{"library": slugs[0]}, {"library": slugs[1]}, own])
    created = (await client.post("/api/v1/drills", json=body, headers=coordinator)).json()
    scenarios = created["scenarios"]
    assert [s["library"] for s in scenarios[:2]] == slugs and scenarios[2]["library"] is None
    assert scenarios[0]["report"] == library[0]["report"] and scenarios[2]["title"]["en"] == "An edited scenario"
    assert scenarios[1]["expected"] == {"report": False, "category": None, "org_unit": None}
