"""Steps the page tests share: capture a page as a JavaScript-off browser gets it, then
check it with axe-core in a second context (JavaScript on, CSP bypassed for axe only)."""

from __future__ import annotations

import uuid

import httpx
from playwright.async_api import Browser, Page
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from app.domain import crypto
from app.domain.kdf import TEST_KEY_DERIVATION
from app.domain.staff import PasswordHashing, Role
from app.staff.models import StaffUser

from tests.web.conftest import SCREENSHOTS

WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


async def capture(page: Page, name: str) -> str:
    """The page's HTML as this (JavaScript-off) context holds it, and its screenshot."""
    SCREENSHOTS.mkdir(exist_ok=True)
    await page.wait_for_load_state("load")  # a click returns once the next page's headers came, not its body
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


class Desk:
    """A triage officer on the running service, with a key registered before any report
    arrives (so reports are sealed to them), who can answer a reporter."""

    PASSWORD = "triage officer passphrase"

    def __init__(self, site: str, token: str, key: crypto.PrivateKey):
        self.site, self.token, self.key = site, token, key

    @classmethod
    async def open(cls, site: str, database_url: str) -> Desk:
        username = f"triage-{uuid.uuid4().hex[:6]}"
        engine = create_async_engine(database_url)
        try:
            async with async_sessionmaker(engine)() as session:
                password_hash = PasswordHashing(TEST_KEY_DERIVATION.passwords).hash(cls.PASSWORD)
                session.add(StaffUser(username=username, role=Role.TRIAGE.value, password_hash=password_hash))
                await session.commit()
        finally:
            await engine.dispose()
        key = crypto.PrivateKey.generate()
        async with httpx.AsyncClient(base_url=site) as api:
            token = (await api.post("/api/v1/auth/token", data={"username": username, "password": cls.PASSWORD})).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            registered = await api.put("/api/v1/users/me/public-key", json={"public_key": key.public_key.to_text()}, headers=headers)
            assert registered.status_code == 200, registered.text
        return cls(site, token, key)

    async def reply_to_every_case(self, body: str) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with httpx.AsyncClient(base_url=self.site) as api:
            for item in (await api.get("/api/v1/cases", headers=headers)).json()["items"]:
                case_id = uuid.UUID(item["id"])
                case = (await api.get(f"/api/v1/cases/{case_id}", headers=headers)).json()
                content_key = crypto.open_content_key(crypto.b64url_decode(case["content_key"]["sealed_key"]), self.key, case_id)
                message_id = uuid.uuid4()
                sealed = crypto.seal_message(content_key, body, case_id=case_id, message_id=message_id, author="staff")
                sent = await api.post(
                    f"/api/v1/cases/{case_id}/messages",
                    json={"id": str(message_id), "sealed_body": crypto.b64url_encode(sealed), "seal_format": 2},
                    headers=headers,
                )
                assert sent.status_code == 201, sent.text
