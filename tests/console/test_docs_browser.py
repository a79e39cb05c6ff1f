"""``/docs`` in a real browser on a branded (siloed) instance: Swagger UI renders every
operation, nothing leaves the instance, and text on a pale brand colour is dark."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.console.conftest import OpenPage
from tests.e2e.conftest import running_server, server_env

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = server_env(
        Path(tmp_path_factory.mktemp("docs-server")),
        TALLY_TENANT="acme",
        TALLY_BRAND_NAME="Acme Invoicing",
        TALLY_BRAND_COLOR="#ffd43b",  # pale: white text on it would be unreadable
    )
    with running_server(env) as url:
        yield url


def test_docs_render_offline_under_the_csp(server: str, guarded: OpenPage) -> None:
    guard = guarded(server)
    response = guard.page.goto("/docs")
    assert response is not None and response.ok
    assert "default-src 'self'" in response.headers["content-security-policy"]
    guard.page.get_by_role("heading", name="Acme Invoicing API").first.wait_for(timeout=20_000)
    operations = guard.page.locator(".opblock")
    operations.first.wait_for()
    assert operations.count() >= 20
    assert guard.page.get_by_text("/v1/sequences/{name}/next").count() >= 1
    guard.page.locator(".opblock-summary").first.click()  # expand one operation
    guard.page.get_by_text("Parameters").first.wait_for()
    guard.shot("docs")
    assert all(u.startswith(server) for u in guard.urls)
    guard.assert_clean()


def test_text_on_a_pale_brand_colour_is_dark_and_readable(server: str, guarded: OpenPage) -> None:
    guard = guarded(server)
    guard.page.goto("/console/sign-in")
    colours = guard.page.evaluate(
        """() => {
            const bar = getComputedStyle(document.querySelector(".brand-bar"));
            const name = getComputedStyle(document.querySelector(".brand-name"));
            const button = getComputedStyle(document.querySelector("button[type=submit]"));
            return [bar.backgroundColor, name.color, button.backgroundColor, button.color];
        }"""
    )
    brand, ink = "rgb(255, 212, 59)", "rgb(17, 24, 39)"
    assert colours == [brand, ink, brand, ink]
    assert guard.page.title() == "Sign in · Acme Invoicing console"
    # Keyboard: the first Tab reaches the skip link, the next ones the form's fields.
    guard.page.keyboard.press("Tab")
    assert guard.page.evaluate("document.activeElement.textContent") == "Skip to content"
    guard.shot("sign-in-pale-brand")
    guard.assert_clean()
