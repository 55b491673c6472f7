"""Steps the page tests share: capture a page as a JavaScript-off browser gets it, then
check it with axe-core in a second context (JavaScript on, CSP bypassed for axe only)."""

from __future__ import annotations

from playwright.async_api import Browser, Page

from tests.web.conftest import SCREENSHOTS

WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


async def capture(page: Page, name: str) -> str:
    """The page's HTML as this (JavaScript-off) context holds it, and its screenshot."""
    SCREENSHOTS.mkdir(exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)
    return await page.content()


async def assert_accessible(browser: Browser, axe_source: str, site: str, html: str, width: int = 1280) -> None:
    """No axe violation at WCAG 2.2 AA, and no horizontal scrolling at normal and double text size."""
    context = await browser.new_context(java_script_enabled=True, bypass_csp=True, viewport={"width": width, "height": 900})
    try:
        page = await context.new_page()
        await page.goto(site + "/static/site.css")  # this origin, so the page's stylesheet loads
        await page.set_content(html)
        await page.add_script_tag(content=axe_source)
        result = await page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG)
        assert [(v["id"], [n["target"] for n in v["nodes"]]) for v in result["violations"]] == []
        assert len(result["passes"]) >= 5  # axe really ran its rules
        for text_size in ("100%", "200%"):
            await page.evaluate("size => { document.documentElement.style.fontSize = size }", text_size)
            overflow = await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, f"{overflow}px of horizontal scrolling at {width}px, text {text_size}"
    finally:
        await context.close()
