"""Browser fixtures: Playwright driving the system's chromium against real servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from fastapi import FastAPI

from tenants.schemas import Onboarded
from tests.console.browser import Guard, chromium_path, skip_without_playwright
from tests.console.support import Browser, onboard

if TYPE_CHECKING:
    from playwright.sync_api import Browser


# Module scope, not session: while Playwright's sync API runs, its event loop counts as
# the thread's running loop, and pytest-asyncio cannot start the async tests' loops.
# Browser test modules hold sync tests only.
@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """A headless chromium (Playwright never downloads a browser here)."""
    path = chromium_path()
    skip_without_playwright()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, headless=True)
        yield browser
        browser.close()


OpenPage = Callable[[str], Guard]


@pytest.fixture
def guarded(chromium: Browser, tmp_path: Path) -> Iterator[OpenPage]:
    """``guarded(origin)``: a fresh browser context whose page may talk to ``origin`` only."""
    opened: list[Guard] = []
    shots = tmp_path / "screenshots"
    shots.mkdir()

    def open_page(origin: str) -> Guard:
        context = chromium.new_context(base_url=origin, viewport={"width": 1280, "height": 800})
        guard = Guard(origin, context, context.new_page(), shots)
        guard.watch()
        opened.append(guard)
        return guard

    yield open_page
    try:
        for guard in opened:
            guard.assert_clean()
    finally:
        for guard in opened:
            guard.context.close()


# -- the console over ASGI (tests/console/support.Browser) -------------------------------
@pytest.fixture
def browser(client: httpx.AsyncClient) -> Browser:
    """The console as a browser would use it, over ASGI (no chromium)."""
    return Browser(client)


@pytest.fixture
async def acme(app: FastAPI) -> Onboarded:
    return await onboard(app.state.tenants)


@pytest.fixture
async def tenant_browser(browser: Browser, acme: Onboarded) -> Browser:
    r = await browser.sign_in(acme.client_id, acme.client_secret)
    assert r.status_code == 303, r.text
    return browser


@pytest.fixture
async def operator_browser(app: FastAPI, browser: Browser, acme: Onboarded) -> Browser:
    admin = await app.state.tenants.create_admin_client()
    r = await browser.sign_in(admin.client_id, admin.client_secret)
    assert r.status_code == 303, r.text
    return browser
