"""``/docs`` in a real browser: Swagger UI renders every operation, nothing leaves the instance."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.console.conftest import OpenPage
from tests.e2e.conftest import running_server, server_env

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = server_env(Path(tmp_path_factory.mktemp("docs-server")))
    with running_server(env) as url:
        yield url


def test_docs_render_offline_under_the_csp(server: str, guarded: OpenPage) -> None:
    guard = guarded(server)
    response = guard.page.goto("/docs")
    assert response is not None and response.ok
    assert "default-src 'self'" in response.headers["content-security-policy"]
    guard.page.get_by_role("heading", name="Tally API").first.wait_for(timeout=20_000)
    operations = guard.page.locator(".opblock")
    operations.first.wait_for()
    assert operations.count() >= 20
    assert guard.page.get_by_text("/v1/sequences/{name}/next").count() >= 1
    guard.page.locator(".opblock-summary").first.click()  # expand one operation
    guard.page.get_by_text("Parameters").first.wait_for()
    guard.shot("docs")
    assert all(u.startswith(server) for u in guard.urls)
    guard.assert_clean()
