"""Red-team probes of the drill feature (see the report on branch wt/redteam)."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest
from sqlalchemy import text

from app.domain.staff import Role
from app.drills import admission as admission_module
from tests.drills.helpers import act, campaign_body, create_campaign, inject, issue_codes, scenario
from tests.intake.helpers import report_body, submit

PROBLEM = "urn:cleanwindow:problem:"


@pytest.fixture
async def coordinator(staff) -> dict[str, str]:
    return await staff.headers_for(Role.DRILL_COORDINATOR)


def is_problem(response) -> bool:
    return response.headers.get("content-type", "").startswith("application/problem+json")


# --- 10. bad input on the new endpoints -----------------------------------------------

NUL = "\u0000"


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda b: b.update(name=f"훈련{NUL}이름"), id="nul-in-name"),
        pytest.param(lambda b: b["scenarios"][0]["title"].update(ko=f"제목{NUL}"), id="nul-in-scenario-title"),
        pytest.param(lambda b: b["scenarios"][0]["report"]["content"].update(summary=f"x{NUL}y"), id="nul-in-scenario-report"),
        pytest.param(lambda b: b.update(starts_at="0001-01-01T00:00:00+09:00"), id="starts-at-year-1-east"),
        pytest.param(lambda b: b.update(ends_at="9999-12-31T23:59:59-14:00"), id="ends-at-year-9999-west"),
        pytest.param(lambda b: b["scenarios"][0]["expected"].update(category="x" * 64), id="unknown-expected-category"),
        pytest.param(lambda b: b.update(scenarios=[{"library": "does-not-exist"}]), id="unknown-library"),
    ],
)
async def test_odd_campaign_bodies_get_a_problem_4xx_not_a_500(client, coordinator, clock, mutate):
    body = campaign_body(now=clock.now)
    mutate(body)
    response = await client.post("/api/v1/drills", json=body, headers=coordinator)
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert is_problem(response), response.headers


@pytest.mark.parametrize(
    "body",
    [
        {"count": 1, "cohort": f"건설{NUL}교통국"},
        {"count": 10**30},
        {"count": 1.0},
        {"count": "5"},
        {"count": 1, "cohort": "x" * 65},
        {"count": 1, "cohort": "   "},
        [],
        None,
    ],
    ids=["nul-cohort", "huge", "float", "string", "long-cohort", "blank-cohort", "list", "null"],
)
async def test_odd_participant_bodies_get_a_problem_4xx(client, coordinator, clock, body):
    cid = (await create_campaign(client, coordinator, now=clock.now))["id"]
    response = await client.post(f"/api/v1/drills/{cid}/participants", json=body, headers=coordinator)
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert is_problem(response)


@pytest.mark.parametrize(
    "body",
    [{"code": NUL}, {"code": f"ABCD{NUL}EFGH-JKMN"}, {"code": "Ａ" * 12}, {"code": 12}, {"code": ""}, {}, {"code": "x" * 65}],
    ids=["nul", "nul-inside", "fullwidth", "int", "empty", "missing", "long"],
)
@pytest.mark.parametrize("path", ["/api/v1/participant/scenario", "/api/v1/participant/no-report"])
async def test_odd_participant_codes_get_a_problem_4xx(client, path, body):
    response = await client.post(path, json=body)
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert is_problem(response)


@pytest.mark.parametrize("token", [NUL, "ABCD\u00a0EFGH\u00a0JKMN", "abcd–efgh–jkmn", "A" * 10_000])
async def test_odd_drill_token_headers_get_a_problem_4xx(client, token):
    response = await submit(client, report_body(), headers={"X-Drill-Token": token.encode()})
    assert 400 <= response.status_code < 500, (response.status_code, response.text)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/v1/drills/not-a-uuid", None),
        ("POST", "/api/v1/drills/scenarios/pause", None),
        ("POST", "/api/v1/drills/00000000-0000-0000-0000-000000000000/inject", {}),
        ("POST", "/api/v1/drills/00000000-0000-0000-0000-000000000000/participants", {"count": 1}),
        ("GET", "/api/v1/drills/00000000-0000-0000-0000-000000000000/scorecard", None),
        ("POST", "/api/v1/drills/00000000-0000-0000-0000-000000000000/close", None),
    ],
)
async def test_unknown_or_malformed_campaign_ids_get_a_problem_4xx(client, coordinator, method, path, body):
    response = await client.request(method, path, json=body, headers=coordinator)
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert is_problem(response)


async def test_wrong_content_types_get_a_problem_4xx(client, coordinator, clock):
    cid = (await create_campaign(client, coordinator, now=clock.now))["id"]
    for path, headers in (
        ("/api/v1/drills", coordinator),
        (f"/api/v1/drills/{cid}/participants", coordinator),
        (f"/api/v1/drills/{cid}/inject", coordinator),
        ("/api/v1/participant/scenario", {}),
        ("/api/v1/participant/no-report", {}),
    ):
        for content_type, data in (("text/plain", "count=1"), ("application/x-www-form-urlencoded", "code=ABCD"), ("application/json", "{")):
            response = await client.post(path, content=data, headers={**headers, "Content-Type": content_type})
            assert 400 <= response.status_code < 500, (path, content_type, response.status_code, response.text)


# --- 7. the scorecard: aggregate only, CSV, Accept --------------------------------------


async def file_with_code(client, code: str, **overrides) -> int:
    return (await submit(client, report_body(**overrides), headers={"X-Drill-Token": code})).status_code


async def test_a_folded_participant_is_still_singled_out_by_the_per_case_rows(client, coordinator, clock):
    """Six scenarios: five codes for the cohort "big" (scenarios 1-5) and one for "solo"
    (scenario 6, handed out in turn). "solo" is below the threshold and is folded away,
    yet the per-case rows still say that the one holder of scenario 6 reported."""
    scenarios = [scenario(marker=str(n)) for n in range(1, 7)]
    cid = (await create_campaign(client, coordinator, now=clock.now, scenarios=scenarios))["id"]
    await issue_codes(client, coordinator, cid, 5, cohort="big")
    [solo] = await issue_codes(client, coordinator, cid, 1, cohort="solo")
    assert await file_with_code(client, solo) == 201
    card = (await client.get(f"/api/v1/drills/{cid}/scorecard", headers=coordinator)).json()
    assert [c["cohort"] for c in card["cohorts"]] == ["other"]  # the fold did happen
    singled_out = [row for row in card["cases"] if row["source"] == "participant" and row["scenario"] == 6]
    # Only one code in the whole campaign was for scenario 6: this row is that person.
    assert singled_out == [], "a per-case row identifies the single holder of scenario 6 as having reported"


@pytest.mark.parametrize(
    ("accept", "csv_expected"),
    [
        ("text/csv", True),
        ("TEXT/CSV", True),  # media types are case-insensitive (RFC 9110 8.3.1)
        ("text/csv;q=0, application/json", False),  # q=0: "not acceptable"
        ("application/json, text/csv;q=0.1", False),
        ("application/json", False),
        ("*/*", False),
    ],
)
async def test_the_scorecard_honours_accept(client, coordinator, clock, accept, csv_expected):
    cid = (await create_campaign(client, coordinator, now=clock.now))["id"]
    response = await client.get(f"/api/v1/drills/{cid}/scorecard", headers={**coordinator, "Accept": accept})
    assert response.status_code == 200
    served_csv = response.headers["content-type"].startswith("text/csv")
    assert served_csv is csv_expected, (accept, response.headers["content-type"])


@pytest.mark.parametrize(
    "cohort",
    ["=HYPERLINK(\"http://x\",\"y\")", "+1+1", "-2+3", "@SUM(A1)", " =1+1", "\t=1+1", "\r=1+1", "\n=1+1", "\u00a0=1+1", "＝1+1"],
)
async def test_csv_cells_never_start_a_formula(client, coordinator, clock, cohort):
    cid = (await create_campaign(client, coordinator, now=clock.now))["id"]
    response = await client.post(f"/api/v1/drills/{cid}/participants", json={"count": 5, "cohort": cohort}, headers=coordinator)
    assert response.status_code in (201, 422), response.text
    csv_text = (await client.get(f"/api/v1/drills/{cid}/scorecard", headers={**coordinator, "Accept": "text/csv"})).text
    import csv as csv_module
    import io

    for row in csv_module.reader(io.StringIO(csv_text)):
        for cell in row:
            assert not cell.lstrip(" \u00a0").startswith(("=", "+", "-", "@", "\t", "\r", "\n")) or cell.lstrip("-").isdigit(), cell


async def test_the_scorecard_is_frozen_at_close_byte_for_byte(client, staff, clock):
    user = await staff.create(Role.DRILL_COORDINATOR)
    coordinator = {"Authorization": f"Bearer {await staff.token_for(user)}"}
    cid = (await create_campaign(client, coordinator, now=clock.now))["id"]
    codes = await issue_codes(client, coordinator, cid, 6, cohort="복지국")
    await inject(client, coordinator, cid)
    assert await file_with_code(client, codes[0]) == 201
    assert (await client.post("/api/v1/participant/no-report", json={"code": codes[1]})).status_code == 201
    closed = await act(client, coordinator, cid, "close")
    assert closed.status_code == 200
    first_json = (await client.get(f"/api/v1/drills/{cid}/scorecard", headers=coordinator)).content
    first_csv = (await client.get(f"/api/v1/drills/{cid}/scorecard", headers={**coordinator, "Accept": "text/csv"})).content
    clock.now += timedelta(days=40)  # deadlines would now read "missed"
    coordinator = {"Authorization": f"Bearer {await staff.token_for(user)}"}
    # a leftover code cannot move a frozen card either
    assert (await client.post("/api/v1/participant/no-report", json={"code": codes[2]})).status_code == 403
    assert (await client.get(f"/api/v1/drills/{cid}/scorecard", headers=coordinator)).content == first_json
    assert (await client.get(f"/api/v1/drills/{cid}/scorecard", headers={**coordinator, "Accept": "text/csv"})).content == first_csv


# --- 1 and 8. refusals after the pre-check, and races ----------------------------------

import asyncio  # noqa: E402

from app.domain import pow as pow_module  # noqa: E402
from tests.conftest import StaffFactory  # noqa: E402


@pytest.fixture
def staff_live(live, password_hashing, strong_password_hash):
    return StaffFactory(live.sessionmaker, live.client, password_hashing, strong_password_hash).headers_for


async def campaign_row(sessionmaker, cid: str) -> dict:
    async with sessionmaker() as session:
        return dict(
            (await session.execute(text("SELECT state, injections, codes_issued FROM drill_campaigns WHERE id = :id"), {"id": cid}))
            .mappings()
            .one()
        )


async def test_an_injection_refused_by_a_racing_pause_moves_no_counter(live, staff_live, monkeypatch):
    """The inject endpoint takes its round-robin turn in a transaction of its own, before
    the claim. A pause committing in between makes the claim refuse (403) -- yet the
    campaign's `injections` counter has moved, and the next injection skips a scenario."""
    headers = await staff_live(Role.DRILL_COORDINATOR)
    cid = (await create_campaign(live.client, headers))["id"]
    original = admission_module.DrillAdmission.claim
    paused = False

    async def claim_after_a_pause(self, entry, now):
        nonlocal paused
        if not paused:
            paused = True
            async with live.sessionmaker() as other:
                await other.execute(text("UPDATE drill_campaigns SET state = 'paused' WHERE id = :id"), {"id": cid})
                await other.commit()
        return await original(self, entry, now)

    monkeypatch.setattr(admission_module.DrillAdmission, "claim", claim_after_a_pause)
    before = await campaign_row(live.sessionmaker, cid)
    refused = await live.client.post(f"/api/v1/drills/{cid}/inject", json={}, headers=headers)
    assert refused.status_code == 403 and refused.json()["type"] == PROBLEM + "drill-token-invalid"
    assert await live.case_count() == 0
    after = await campaign_row(live.sessionmaker, cid)
    assert after["injections"] == before["injections"], "a refused injection moved the campaign's counter"


async def solved(client) -> dict:
    challenge = (await client.post("/api/v1/intake/challenges")).json()
    return {"challenge": challenge["challenge"], "nonce": pow_module.solve(challenge["challenge"], challenge["difficulty"])}


@pytest.mark.parametrize("action", ["close", "pause"])
async def test_a_close_or_pause_racing_participant_reports_and_decisions(live, staff_live, action):
    headers = await staff_live(Role.DRILL_COORDINATOR)
    cid = (await create_campaign(live.client, headers))["id"]
    codes = await issue_codes(live.client, headers, cid, 12, cohort="건설교통국")
    bodies = [{**report_body(), "pow": await solved(live.client)} for _ in codes[:8]]
    reports = [
        live.client.post("/api/v1/reports", json=body, headers={"X-Drill-Token": code}) for body, code in zip(bodies, codes[:8], strict=True)
    ]
    declines = [live.client.post("/api/v1/participant/no-report", json={"code": code}) for code in codes[8:]]
    injections = [live.client.post(f"/api/v1/drills/{cid}/inject", json={}, headers=headers) for _ in range(3)]
    racing = [*reports, *declines, *injections]
    half = len(racing) // 2
    # the coordinator's step lands in the middle of the participants' and injections' requests
    *answers, acted = await asyncio.gather(
        *racing[:half], *racing[half:], live.client.post(f"/api/v1/drills/{cid}/{action}", headers=headers)
    )
    assert acted.status_code == 200, acted.text
    assert {a.status_code for a in answers} <= {201, 403}, [a.text for a in answers if a.status_code not in (201, 403)]
    filed = sum(a.status_code == 201 for a in answers[:8])
    declined = sum(a.status_code == 201 for a in answers[8:12])
    injected = sum(a.status_code == 201 for a in answers[12:])
    async with live.sessionmaker() as session:
        drill_cases = (await session.execute(text("SELECT count(*) FROM cases WHERE is_drill"))).scalar()
        decisions = dict((await session.execute(text("SELECT coalesce(decision, '-'), count(*) FROM drill_participant_codes GROUP BY 1"))).all())
        purged = (await session.execute(text("SELECT purged_cases FROM drill_campaigns"))).scalar()
        real = (await session.execute(text("SELECT count(*) FROM cases WHERE NOT is_drill"))).scalar()
    assert real == 0  # a refused participant is never taken as a real reporter
    assert decisions.get("reported", 0) == filed and decisions.get("no_report", 0) == declined
    if action == "close":
        assert drill_cases == 0 and purged == filed + injected
    else:
        assert drill_cases == filed + injected


# --- 4. blind campaigns: nothing a handler is shown tells a drill from a real case ----

from tests.cases.helpers import transition  # noqa: E402

VARYING = {"id", "reporter_public_key", "sealed_report"}


def comparable(detail: dict) -> dict:
    shown = {key: value for key, value in detail.items() if key not in VARYING}
    if shown.get("content_key"):
        shown["content_key"] = {"fingerprint": shown["content_key"]["fingerprint"]}
    return shown


def comparable_history(items: list[dict]) -> list[dict]:
    return [{k: v for k, v in item.items() if k != "occurred_at"} for item in items]


async def test_a_blind_drill_case_and_a_real_one_look_alike_through_every_handler_step(client, staff, coordinator, clock):
    triage = await staff.headers_for(Role.TRIAGE)
    supervisor = await staff.headers_for(Role.SUPERVISOR)
    investigator_user = await staff.create(Role.INVESTIGATOR)
    investigator = {"Authorization": f"Bearer {await staff.token_for(investigator_user)}"}
    created = await create_campaign(client, coordinator, now=clock.now, blind=True)
    scenario_report = created["scenarios"][0]["report"]
    real_body = {k: v for k, v in copy.deepcopy(scenario_report).items() if v is not None}
    real = await submit(client, real_body)
    assert real.status_code == 201, real.text
    real_receipt = real.json()["receipt"]
    assert real_receipt
    await inject(client, coordinator, created["id"], 1)
    listed = (await client.get("/api/v1/cases", headers=triage)).json()["items"]
    assert len(listed) == 2
    [a, b] = listed
    assert {k: v for k, v in a.items() if k != "id"} == {k: v for k, v in b.items() if k != "id"}
    for params in ({"drill": "true"}, {"drill": "false"}, {"category": scenario_report["category"]}, {"channel": scenario_report["channel"]}):
        found = {item["id"] for item in (await client.get("/api/v1/cases", params=params, headers=supervisor)).json()["items"]}
        assert found in (set(), {a["id"], b["id"]}), params
    ids = [a["id"], b["id"]]
    steps = [
        (triage, "acknowledge", {}),
        (supervisor, "start_assessment", {}),
        (supervisor, "accept", {"assignee": investigator_user.username}),
        (investigator, "refer", {"reason": "ACRC"}),
    ]
    for version, (headers, action, fields) in enumerate(steps, start=1):
        answers = [await transition(client, headers, case_id, action, version, **fields) for case_id in ids]
        assert [r.status_code for r in answers] == [200, 200], [r.text for r in answers]
        assert comparable(answers[0].json()) == comparable(answers[1].json()), action
        stale = [await transition(client, headers, case_id, action, version, **fields) for case_id in ids]
        assert [(r.status_code, r.json()["detail"]) for r in stale][0] == [(r.status_code, r.json()["detail"]) for r in stale][1]
    for headers in (triage, supervisor, investigator):
        details = [(await client.get(f"/api/v1/cases/{case_id}", headers=headers)).json() for case_id in ids]
        assert comparable(details[0]) == comparable(details[1])
        histories = [(await client.get(f"/api/v1/cases/{case_id}/history", headers=headers)).json()["items"] for case_id in ids]
        assert comparable_history(histories[0]) == comparable_history(histories[1])


# --- 5. a coordinator sees no real case, statistic or audit entry -------------------------


async def test_a_coordinator_reaches_no_real_case_statistic_audit_entry_or_colleague(client, staff, coordinator, clock):
    real = await submit(client, report_body())
    assert real.status_code == 201
    triage = await staff.create(Role.TRIAGE)
    for method, path in (
        ("GET", "/api/v1/cases"),
        ("GET", "/api/v1/cases?drill=true"),
        ("GET", "/api/v1/stats"),
        ("GET", "/api/v1/audit"),
        ("GET", "/api/v1/audit/verify"),
        ("GET", "/api/v1/users"),
        ("GET", f"/api/v1/users/{triage.username}/public-key"),
    ):
        response = await client.request(method, path, headers=coordinator)
        assert response.status_code in (403, 404), (path, response.status_code, response.text[:200])
