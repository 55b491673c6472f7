"""`/`: what the clean window is, its entrances, and the properties every page keeps
(headers, no cookie, no third-party asset, both languages, any screen, axe-clean)."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.async_api import Browser, expect

from app.domain.intake import Language
from app.web.catalogue import read_catalogue, template_messages
from app.web.pages import CONTENT_SECURITY_POLICY
from tests.web.helpers import assert_accessible, capture

pytestmark = pytest.mark.slow

EXPECTED_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
}


def assert_page_headers(response: httpx.Response) -> None:
    for name, value in EXPECTED_HEADERS.items():
        assert response.headers.get(name) == value, name
    assert "default-src 'none'" in CONTENT_SECURITY_POLICY and "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    for absent in ("set-cookie", "etag", "last-modified"):
        assert absent not in response.headers, absent


async def test_the_home_page_and_its_files_carry_the_safety_headers_and_no_cookie(client: httpx.AsyncClient) -> None:
    for path in ("/", "/?lang=en", "/static/site.css", "/static/print.js"):
        response = await client.get(path)
        assert response.status_code == 200, path
        assert_page_headers(response)
    assert (await client.get("/")).headers["content-type"].startswith("text/html")
    assert (await client.get("/static/site.css")).headers["content-type"].startswith("text/css")
    assert (await client.get("/static/print.js")).headers["content-type"].startswith("text/javascript")
    # Only the named files: no other name, and no path, reaches the file system.
    for path in ("/static/nothing.css", "/static/templates", "/static/site.css.bak"):
        refused = await client.get(path)
        assert refused.status_code == 404, path
        assert_page_headers(refused)
    for path in ("/static/..%2Fi18n.py", "/static/%2e%2e%2fpages.py", "/static/../web/i18n.py"):
        refused = await client.get(path)
        assert refused.status_code == 404, path
        assert "import" not in refused.text


async def test_no_asset_comes_from_elsewhere(client: httpx.AsyncClient) -> None:
    for lang in ("ko", "en"):
        html = (await client.get(f"/?lang={lang}")).text
        for reference in re.findall(r'(?:href|src|action)="([^"]+)"', html):
            assert reference.startswith(("/", "#")) and not reference.startswith("//"), reference
        assert "<script" not in html and "<svg" not in html and "<img" not in html


async def test_korean_by_default_english_on_request_and_the_switch_keeps_the_page(client: httpx.AsyncClient) -> None:
    korean = (await client.get("/")).text
    assert '<html lang="ko">' in korean and "청렴 클린창구" in korean and "부패행위를 안전하게 신고하세요" in korean
    assert 'href="/?lang=en"' in korean and 'href="/report"' in korean and 'href="/internal/report"' in korean
    english = (await client.get("/?lang=en")).text
    assert '<html lang="en">' in english and "Integrity Clean Window" in english
    assert 'href="/?lang=ko"' in english and 'href="/report?lang=en"' in english and 'href="/status?lang=en"' in english
    for unknown in ("xx", "KO", "../en"):
        assert '<html lang="ko">' in (await client.get(f"/?lang={unknown}")).text
    # The deadlines shown are the service's own settings, not numbers written into the page.
    assert "7일 이내" in korean and "within 3 months" in english


def test_every_message_of_the_pages_has_its_korean() -> None:
    messages = template_messages()
    assert len(messages) > 20  # the extraction found the templates' messages
    korean = read_catalogue(Language.KO)
    english = read_catalogue(Language.EN)
    missing = [message for message in messages if not (korean.get(message) and korean.get(message).string)]
    assert missing == []
    assert {message.id for message in english if message.id} == set(messages)
    assert {message.id for message in korean if message.id} == set(messages)  # nothing stale either


async def test_the_korean_page_shows_no_english_message(client: httpx.AsyncClient) -> None:
    korean = (await client.get("/")).text
    leaked = [message for message in template_messages() if "%(" not in message and message in korean]
    assert leaked == []


async def pages(browser: Browser, site: str, *, javascript: bool, width: int = 1280):
    context = await browser.new_context(java_script_enabled=javascript, viewport={"width": width, "height": 900})
    return context, await context.new_page()


async def test_with_javascript_off_a_reader_finds_the_entrances_and_switches_language(browser: Browser, site: str) -> None:
    context, page = await pages(browser, site, javascript=False)
    try:
        await page.goto(site + "/")
        assert await page.title() == "부패행위를 안전하게 신고하세요 - 청렴 클린창구"
        for name, href in (("국민 신고", "/report"), ("직원 신고", "/internal/report"), ("처리 상황 확인", "/status")):
            assert await page.get_by_role("link", name=name).get_attribute("href") == href
        await page.get_by_role("link", name="English").click()
        assert page.url == site + "/?lang=en"
        assert await page.get_by_role("heading", level=1).inner_text() == "Report corruption safely"
        await page.get_by_role("link", name="한국어").click()
        assert page.url == site + "/?lang=ko"
        # The advice opens without a script: a native <details>.
        await page.get_by_text("더 안전하게 신고하려면").click()
        await expect(page.get_by_text("Tor 브라우저는 접속 위치를 숨겨 줍니다")).to_be_visible()
        assert await context.cookies() == []
    finally:
        await context.close()


async def test_the_keyboard_reaches_a_visible_skip_link_first(browser: Browser, site: str) -> None:
    context, page = await pages(browser, site, javascript=True)
    try:
        await page.goto(site + "/?lang=en")
        await page.keyboard.press("Tab")
        focused = page.locator(":focus")
        assert await focused.inner_text() == "Skip to main content"
        box = await focused.bounding_box()
        assert box is not None and box["x"] >= 0 and box["y"] >= 0  # on screen once focused
        outline = await focused.evaluate("e => getComputedStyle(e).outlineStyle")
        assert outline != "none"
        await page.keyboard.press("Enter")
        assert page.url.endswith("#main")
        order = []
        for _ in range(4):
            await page.keyboard.press("Tab")
            order.append(await page.evaluate("document.activeElement.textContent.trim()"))
        assert order == ["Report as a citizen", "Report as an employee", "Check a report", "Protect yourself further"]
    finally:
        await context.close()


@pytest.mark.parametrize("width", [360, 1280])
@pytest.mark.parametrize("language", ["ko", "en"])
async def test_axe_finds_no_violation_and_the_page_fits_any_screen_and_text_size(
    browser: Browser, site: str, axe_source: str, language: str, width: int
) -> None:
    context, page = await pages(browser, site, javascript=False, width=width)
    try:
        await page.goto(f"{site}/?lang={language}")
        html = await capture(page, f"home-{language}-{width}")
    finally:
        await context.close()
    await assert_accessible(browser, axe_source, site, html, width)


def test_text_from_staff_and_reporters_is_escaped_in_every_language() -> None:
    """A coordinator's campaign name, a requester's reason or a reporter's own words reach
    pages other people read: markup in them is shown, never run."""
    from app.web.i18n import environment

    hostile = '"><script>alert(1)</script>'
    for language in Language:
        html = environment(language).get_template("drill_scenario.html").render(
            language=language.value, other_language="ko", other_language_url="/drill", lang_query="",
            action="/drill", code=hostile, campaign=hostile, title=hostile, brief=hostile, channel="employee",
            report_url="/report",
        )
        assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html
