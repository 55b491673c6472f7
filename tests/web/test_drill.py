"""`/drill`: a participant's code opens the scenario; "report it" sends a drill report
through the form with the code; "no report" is recorded; a bad code gets one answer for
every reason; and in a browser with JavaScript off, axe-clean."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest
from playwright.async_api import Browser
from sqlalchemy import select

from app.cases.models import Case
from app.domain.staff import Role
from app.drills.models import DrillParticipantCode
from tests.drills.helpers import create_campaign, issue_codes
from tests.web.helpers import assert_accessible, capture
from tests.web.test_report import FIELDS, carried


async def codes(client, staff, clock, count: int = 3) -> list[str]:
    coordinator = await staff.headers_for(Role.DRILL_COORDINATOR)
    campaign = await create_campaign(client, coordinator, now=clock.now, blind=False)
    return await issue_codes(client, coordinator, campaign["id"], count)


async def test_a_code_opens_the_scenario_and_no_report_is_recorded(client, staff, sessionmaker, clock) -> None:
    first, second, _ = await codes(client, staff, clock)
    form = await client.get("/drill")
    assert form.status_code == 200 and 'name="code"' in form.text
    opened = await client.post("/drill", data={"step": "open", "code": first.lower()})
    assert opened.status_code == 200 and "모의훈련입니다" in opened.text and "허가 대가 상품권" in opened.text
    assert f'name="drill_code" value="{first.lower()}"' in opened.text
    declined = await client.post("/drill", data={"step": "no-report", "drill_code": second})
    assert declined.status_code == 200 and "판단이 기록되었습니다" in declined.text
    async with sessionmaker() as session:
        decisions = sorted((code.decision or "") for code in (await session.scalars(select(DrillParticipantCode))).all())
    assert decisions == ["", "", "no_report"]
    again = await client.post("/drill", data={"step": "open", "code": second})
    unknown = await client.post("/drill", data={"step": "open", "code": "ABCD-EFGH-JKMN"})
    assert again.status_code == unknown.status_code == 403
    text = lambda page: re.search(r'<p id="code-error".*?</p>', page.text, re.S).group(0)  # noqa: E731
    assert text(again) == text(unknown)  # one answer for every reason


async def test_report_it_sends_a_drill_report_with_the_code(client, staff, sessionmaker, clock) -> None:
    (code,) = await codes(client, staff, clock, 1)
    page = await client.post("/drill?lang=en", data={"step": "form", "drill_code": code, "drill_channel": "employee"})
    assert page.status_code == 200 and "This is a drill report" in page.text and 'name="department"' in page.text
    form = carried(page.text)
    check = await client.post("/drill?lang=en", data={**form, **FIELDS, "step": "check"})
    assert check.status_code == 200 and f'name="drill_code" value="{code}"' in check.text
    clock.now += timedelta(seconds=30)
    sent = await client.post("/drill?lang=en", data={**carried(check.text), "step": "send"})
    assert sent.status_code == 200 and "Your report was sent" in sent.text
    async with sessionmaker() as session:
        drill_cases = (await session.scalars(select(Case).where(Case.is_drill.is_(True)))).all()
        assert len(drill_cases) == 1 and drill_cases[0].channel == "employee"
        assert (await session.scalars(select(DrillParticipantCode))).one().decision == "reported"
    spent = await client.post("/drill?lang=en", data={**carried(check.text), "idempotency_key": "z" * 24, "step": "send"})
    assert spent.status_code in (403, 409)


@pytest.mark.slow
async def test_a_participant_with_javascript_off(browser: Browser, site: str, axe_source: str, fresh_database_url: str) -> None:
    code = await _code_on(site, fresh_database_url)
    context = await browser.new_context(java_script_enabled=False, viewport={"width": 360, "height": 800})
    context.set_default_timeout(10_000)
    try:
        page = await context.new_page()
        await page.goto(f"{site}/drill")
        code_page = await capture(page, "drill-nojs-ko-360")
        await page.get_by_label("훈련 코드").fill("ABCD-EFGH-JKMN")
        await page.get_by_role("button", name="계속").click()
        error_page = await capture(page, "drill-error-nojs-ko-360")
        await page.get_by_label("훈련 코드").fill(code)
        await page.get_by_role("button", name="계속").click()
        scenario_page = await capture(page, "drill-scenario-nojs-ko-360")
        await page.get_by_role("button", name="신고할 필요 없음").click()
        assert await page.get_by_role("heading", level=1).inner_text() == "판단이 기록되었습니다"
    finally:
        await context.close()
    for html in (code_page, error_page, scenario_page):
        await assert_accessible(browser, axe_source, site, html, 360)


async def _code_on(site: str, database_url: str) -> str:
    """A campaign and one code on the running service, made by a coordinator over its API."""
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    from app.domain.kdf import TEST_KEY_DERIVATION
    from app.domain.staff import PasswordHashing
    from app.staff.models import StaffUser

    password = "drill coordinator passphrase"
    engine = create_async_engine(database_url)
    try:
        async with async_sessionmaker(engine)() as session:
            session.add(StaffUser(username="coordinator-web", role=Role.DRILL_COORDINATOR.value,
                                  password_hash=PasswordHashing(TEST_KEY_DERIVATION.passwords).hash(password)))
            await session.commit()
    finally:
        await engine.dispose()
    async with httpx.AsyncClient(base_url=site) as api:
        token = (await api.post("/api/v1/auth/token", data={"username": "coordinator-web", "password": password})).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        campaign = await create_campaign(api, headers, blind=True)
        (code,) = await issue_codes(api, headers, campaign["id"], 1)
    return code
