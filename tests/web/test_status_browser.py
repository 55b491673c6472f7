"""The status page in a real browser with JavaScript off: a reporter comes back with the
receipt (typed with spaces, once mistyped), reads the status, replies and attaches a file;
every page of the way is checked by axe."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Browser, expect

from tests.intake.helpers import report_body, submit_ok
from tests.web.helpers import Desk, assert_accessible, capture

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(("language", "width", "javascript"), [("ko", 360, False), ("en", 1280, False), ("ko", 1280, True)])
async def test_a_reporter_comes_back_reads_replies_and_attaches_a_file(
    browser: Browser, site: str, fresh_database_url: str, axe_source: str, tmp_path, language: str, width: int, javascript: bool
) -> None:
    import httpx

    desk = await Desk.open(site, fresh_database_url)
    async with httpx.AsyncClient(base_url=site) as client:
        receipt = await submit_ok(client, report_body("came back"))
    await desk.reply_to_every_case("담당 조사관입니다. 장부 사본을 첨부해 주실 수 있나요? STAFFREPLY")
    digits = receipt.replace("-", "")
    english = language == "en"
    suffix = "?lang=en" if english else ""
    name = f"{'js' if javascript else 'nojs'}-{language}-{width}"
    evidence = tmp_path / "ledger.txt"
    evidence.write_text("2026-03-02 상품권 50만원\n")
    context = await browser.new_context(java_script_enabled=javascript, viewport={"width": width, "height": 900})
    context.set_default_timeout(10_000)
    try:
        page = await context.new_page()
        await page.goto(f"{site}/{suffix}")
        await page.get_by_role("link", name="Check a report" if english else "처리 상황 확인").click()
        receipt_form = await capture(page, f"status-{name}")
        field = page.get_by_label("Receipt" if english else "접수번호", exact=True)
        typo = digits[:-1] + str((int(digits[-1]) + 1) % 10)
        await field.fill(typo)
        await page.get_by_role("button", name="Continue" if english else "계속").click()
        await expect(page.locator("#receipt-error")).to_be_visible()
        typo_page = await capture(page, f"status-typo-{name}")

        await page.get_by_label("Receipt" if english else "접수번호", exact=True).fill(" ".join(digits[i : i + 3] for i in range(0, 21, 3)))
        await page.get_by_role("button", name="Continue" if english else "계속").click()
        assert await page.get_by_role("heading", level=1).inner_text() == ("Your report" if english else "나의 신고")
        await expect(page.get_by_text("장부 사본을 첨부해 주실 수 있나요? STAFFREPLY")).to_be_visible()  # the reply, read
        await page.get_by_role("button", name="Send message" if english else "메시지 보내기").click()  # empty
        await expect(page).to_have_title(re.compile("^" + ("Error:" if english else "오류:")))
        empty_reply = await capture(page, f"mailbox-error-{name}")
        await page.get_by_label("Write to the investigators" if english else "조사 담당자에게 메시지 쓰기").fill("장부 사본이 있습니다 THREADMARK")
        await page.get_by_role("button", name="Send message" if english else "메시지 보내기").click()
        await expect(page.get_by_text("장부 사본이 있습니다 THREADMARK")).to_be_visible()
        await page.get_by_label("Attach a file" if english else "파일 첨부").set_input_files(str(evidence))
        await page.get_by_role("button", name="Attach" if english else "첨부하기", exact=True).click()
        await expect(page.get_by_text("ledger.txt")).to_be_visible()
        mailbox = await capture(page, f"mailbox-{name}")
        assert await context.cookies() == []
    finally:
        await context.close()
    for html in (receipt_form, typo_page, empty_reply, mailbox):
        await assert_accessible(browser, axe_source, site, html, width)
