"""The report form in a real browser: a citizen with JavaScript off (Tor Browser at
"Safest") on a phone-sized screen, the same with JavaScript on, an employee identifying
confidentially, and every page of the way (errors included) checked by axe."""

from __future__ import annotations

import asyncio
import re
import secrets

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from tests.web.helpers import assert_accessible, capture

pytestmark = pytest.mark.slow


async def fill_report(page: Page, *, english: bool) -> None:
    await page.get_by_label("Bribery and improper solicitation" if english else "금품수수 및 부정청탁").check()
    await page.get_by_label("Summary" if english else "요약", exact=True).fill("허가 대가로 상품권 BROWSERMARK")
    await page.get_by_label("What happened" if english else "신고 내용", exact=True).fill(
        "The permit officer asked for gift cards before signing the permit."
    )
    await page.get_by_label("Where (optional)" if english else "어디서 (선택)").fill("3층 민원실")


@pytest.mark.parametrize(("javascript", "language", "width"), [(False, "ko", 360), (False, "en", 1280), (True, "ko", 1280)])
async def test_a_citizen_reports_and_keeps_the_receipt(
    browser: Browser, site: str, axe_source: str, tmp_path, javascript: bool, language: str, width: int
) -> None:
    english = language == "en"
    suffix = "?lang=en" if english else ""
    context = await browser.new_context(java_script_enabled=javascript, viewport={"width": width, "height": 900})
    context.set_default_timeout(10_000)
    await context.add_init_script("window.__printed = 0; window.print = () => { window.__printed += 1; };")
    name = f"{'js' if javascript else 'nojs'}-{language}-{width}"
    try:
        page = await context.new_page()
        await page.goto(f"{site}/{suffix}")
        await page.get_by_role("link", name="Report as a citizen" if english else "국민 신고").click()
        assert page.url == f"{site}/report{suffix}"
        form_html = await capture(page, f"report-{name}")

        # Continue with nothing filled in: the errors, linked from the summary at the top.
        await page.get_by_role("button", name="Continue" if english else "계속").click()
        await expect(page).to_have_title(re.compile("^" + ("Error:" if english else "오류:")))
        summary = page.get_by_role("alert")
        await summary.get_by_role("link").first.click()
        assert page.url.endswith("#category")
        errors_html = await capture(page, f"report-errors-{name}")
        assert await page.locator("[aria-invalid=true]").count() >= 2

        await fill_report(page, english=english)
        await page.get_by_role("button", name="Continue" if english else "계속").click()
        assert await page.get_by_role("heading", level=1).inner_text() == (
            "Check your answers before sending" if english else "보내기 전에 입력 내용을 확인하세요"
        )
        await expect(page.get_by_text("허가 대가로 상품권 BROWSERMARK")).to_be_visible()
        check_html = await capture(page, f"check-{name}")
        await page.wait_for_timeout(1100)  # the form ticket's minimum age in the test service
        evidence = tmp_path / "evidence.txt"
        evidence.write_text("장부 사본 FILEMARK\n")
        await page.get_by_label("Evidence file (optional)" if english else "증거 파일 (선택)").set_input_files(str(evidence))
        await page.get_by_role("button", name="Send report" if english else "신고 보내기").click()
        await expect(page.get_by_text("Your file was attached to the report." if english else "파일이 신고에 첨부되었습니다.")).to_be_visible()

        assert await page.get_by_role("heading", level=1).inner_text() == ("Your report was sent" if english else "신고가 접수되었습니다")
        await expect(page.locator(".receipt-group")).to_have_count(7)
        groups = await page.locator(".receipt-group").all_inner_texts()
        assert len(groups) == 7 and all(re.fullmatch(r"\d{3}", group) for group in groups)
        print_button = page.get_by_role("button", name="Print this page" if english else "이 페이지 인쇄")
        if javascript:  # the one script: a Print button that opens the browser's print dialog
            await print_button.click()
            assert await page.evaluate("window.__printed") == 1
        else:  # without it, no dead button: the page says to use the browser's Print command
            assert await print_button.count() == 0 or not await print_button.is_visible()
        receipt_html = await capture(page, f"receipt-{name}")
        assert await context.cookies() == []
    finally:
        await context.close()

    async with httpx.AsyncClient(base_url=site) as client:  # the receipt opens the report
        session = await client.post("/api/v1/reporter/sessions", json={"receipt": "-".join(groups)})
        report = (await client.get("/api/v1/reporter/report", headers={"Authorization": f"Bearer {session.json()['token']}"})).json()
    assert report["content"]["summary"] == "허가 대가로 상품권 BROWSERMARK" and report["language"] == language
    assert [attachment["filename"] for attachment in report["attachments"]] == ["evidence.txt"]

    for html in (form_html, errors_html, check_html, receipt_html):
        await assert_accessible(browser, axe_source, site, html, width)


async def test_an_employee_identifies_confidentially_with_javascript_off(browser: Browser, site: str, axe_source: str) -> None:
    context = await browser.new_context(java_script_enabled=False, viewport={"width": 360, "height": 800})
    context.set_default_timeout(10_000)
    try:
        page = await context.new_page()
        await page.goto(f"{site}/internal/report")
        await fill_report(page, english=False)
        await page.get_by_label("예, 비밀 보장 하에 밝힙니다").check()
        await page.get_by_role("button", name="계속").click()
        # Yes, but nothing to reach them by: the error sits next to the name field.
        message = " ".join((await page.locator("#name-error").inner_text()).split())
        assert message == "오류: 이름, 이메일 주소, 전화번호 중 하나 이상을 적어 주세요"
        identity_error_html = await capture(page, "internal-errors-ko-360")
        await page.get_by_label("이름", exact=True).fill("홍길동")
        await page.get_by_label("부서 또는 직위").fill("도시계획과 주무관")
        await page.get_by_label("전화번호").fill("010-0000-0000")
        await page.get_by_role("button", name="계속").click()
        await expect(page.get_by_text("도시계획과 주무관")).to_be_visible()
        await page.wait_for_timeout(1100)
        await page.get_by_role("button", name="신고 보내기").click()
        await expect(page.locator(".receipt-group")).to_have_count(7)
    finally:
        await context.close()
    await assert_accessible(browser, axe_source, site, identity_error_html, 360)


async def test_a_report_typed_into_the_browser_leaves_no_marker_in_a_database_dump(
    browser: Browser, site: str, fresh_database_url: str
) -> None:
    from tests.test_privacy import dump_bytes, pg_dump

    marker = f"DUMPMARK{secrets.token_hex(5)}"
    context = await browser.new_context(java_script_enabled=False)
    context.set_default_timeout(10_000)
    try:
        page = await context.new_page()
        await page.goto(f"{site}/internal/report?lang=en")
        await page.get_by_label("Bribery and improper solicitation").check()
        await page.get_by_label("Summary", exact=True).fill(f"summary {marker}")
        await page.get_by_label("What happened", exact=True).fill(f"details {marker}")
        await page.get_by_label("Yes, confidentially").check()
        await page.get_by_label("Name", exact=True).fill(f"name {marker}")
        await page.get_by_label("Department or post").fill(f"dept {marker}")
        await page.get_by_role("button", name="Continue").click()
        await page.wait_for_timeout(1100)
        await page.get_by_role("button", name="Send report").click()
        await expect(page.locator(".receipt-group")).to_have_count(7)
        receipt = "".join(await page.locator(".receipt-group").all_inner_texts())
    finally:
        await context.close()
    assert len(receipt) == 21
    dump = pg_dump(fresh_database_url)
    assert "COPY public.case_identities" in dump and "COPY public.cases" in dump
    haystack = dump_bytes(dump)
    for secret in (marker, receipt):
        assert secret.encode() not in haystack, f"{secret} found in the database dump"
    assert b"employee" in haystack  # the search could have failed: the clear metadata is there


async def test_the_refusal_pages_are_accessible_too(browser: Browser, site: str, axe_source: str) -> None:
    """The pages a refused report meets: a filled honeypot, a post from another site."""
    async with httpx.AsyncClient(base_url=site) as client:
        form = (await client.get("/report")).text
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form))
        body = {**fields, "category": "bribery", "summary": "s", "details": "d", "step": "check"}
        trapped = await client.post("/report", data={**body, "website": "x"})
        cross = await client.post("/report", data=body, headers={"Origin": "https://elsewhere.example"})
        check = await client.post("/report", data={**body, "summary": "요약", "details": "내용"})
        await asyncio.sleep(1.1)
        send = {**dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', check.text)), "step": "send"}
        parts = [(key, (None, value)) for key, value in send.items()] + [("file", ("x.exe", b"MZ" * 300, "application/octet-stream"))]
        file_refused = await client.post("/report", files=parts)
    assert (trapped.status_code, cross.status_code, file_refused.status_code) == (400, 403, 200)
    assert "신고는 접수되었지만 파일은 첨부되지 않았습니다" in file_refused.text
    for html in (trapped.text, cross.text, file_refused.text):
        await assert_accessible(browser, axe_source, site, html, 360)


async def test_the_keyboard_walks_the_form_in_reading_order(browser: Browser, site: str) -> None:
    context = await browser.new_context(java_script_enabled=True)
    try:
        page = await context.new_page()
        await page.goto(f"{site}/report?lang=en")
        seen = []
        for _ in range(6):
            await page.keyboard.press("Tab")
            seen.append(await page.evaluate("(e => e.id || e.textContent.trim())(document.activeElement)"))
        # Skip link, home link, language switch, then the first radio of the first question
        # (a radio group is one stop), the unit list, the summary.
        assert seen == ["Skip to main content", "Integrity Clean Window", "한국어", "category-bribery", "org_unit", "summary"]
        assert await page.locator("#website").evaluate("e => e.tabIndex") == -1  # the honeypot is never reached
    finally:
        await context.close()
