"""Page tests: a running service and a real, headless chromium, with JavaScript off (as
Tor Browser's Safest level) and on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from app.domain.kdf import KeyDerivation
from app.main import create_app
from app.settings import Settings
from tests.client.helpers import serving
from tests.web.browser import ensure_axe, ensure_chromium

# Where the screenshots go: outside the source tree's tracked files, kept by CI as an artifact.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    executable = ensure_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(executable), headless=True, args=["--no-sandbox"])
        yield browser
        await browser.close()


@pytest.fixture(scope="module")
def axe_source() -> str:
    return ensure_axe()


@pytest.fixture
async def site(fresh_database_url: str, settings: Settings, key_derivation: KeyDerivation) -> AsyncIterator[str]:
    """The service, really listening, on a database of its own. A form may be sent one
    second after it was served (a person takes longer; the tests' browser does not)."""
    settings.web.ticket_min_seconds = 1
    app = create_app(settings.with_database_url(fresh_database_url), key_derivation=key_derivation)
    with serving(app) as url:
        yield url
