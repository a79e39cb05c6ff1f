"""Branding: a siloed instance shows its tenant's name, colour and logo; pooled shows Tally's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from core.settings import Settings
from tests.conftest import app_token


async def serve(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            yield c


@pytest.fixture
async def siloed(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        store_url=f"sqlite:///{tmp_path}/t.db",  # type: ignore[arg-type]
        keys_dir=tmp_path / "keys",
        tenant="acme",
        brand_name="Acme <Invoicing>",
        brand_color="#ff6600",
        brand_logo_url="https://cdn.acme.test/logo.svg",
    )
    async for c in serve(settings):
        yield c


async def test_siloed_landing_page_shows_tenant_branding(siloed: httpx.AsyncClient) -> None:
    r = await siloed.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "<title>Acme &lt;Invoicing&gt;</title>" in r.text  # escaped, never raw HTML
    # Under the console's CSP: no inline style; the brand's colours are a stylesheet.
    policy = r.headers["content-security-policy"]
    assert "style-src 'self'" in policy and "unsafe-inline" not in policy
    assert "<style" not in r.text and "style=" not in r.text
    assert 'href="/console/brand.css"' in r.text
    assert "--brand: #ff6600" in (await siloed.get("/console/brand.css")).text
    css = await siloed.get("/console/static/landing.css")
    assert css.status_code == 200 and "var(--brand)" in css.text
    assert 'src="https://cdn.acme.test/logo.svg"' in r.text
    assert "Tally" in r.text  # "powered by Tally"


async def test_siloed_openapi_title_is_the_tenants(siloed: httpx.AsyncClient) -> None:
    spec = (await siloed.get("/openapi.json")).json()
    assert spec["info"]["title"] == "Acme <Invoicing> API"
    docs = await siloed.get("/docs")
    assert "Acme &lt;Invoicing&gt; API" in docs.text


async def test_pooled_instance_shows_tallys_own_branding(client: httpx.AsyncClient) -> None:
    r = await client.get("/")
    assert "<title>Tally</title>" in r.text and "<img" not in r.text
    assert (await client.get("/openapi.json")).json()["info"]["title"] == "Tally API"


def test_logo_must_be_https(tmp_path: Path) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="https"):
        Settings(_env_file=None, brand_logo_url="javascript:alert(1)")  # type: ignore[call-arg]


async def test_siloed_instance_refuses_other_tenants_tokens(tmp_path: Path) -> None:

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        store_url=f"sqlite:///{tmp_path}/t.db",  # type: ignore[arg-type]
        keys_dir=tmp_path / "keys",
        tenant="acme",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):

        def token(tenant: str) -> dict[str, str]:
            signed = app_token(app, tenant, "sequences:next sequences:read", ttl=60)
            return {"Authorization": f"Bearer {signed}"}

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            assert (await c.get("/getCounter", headers=token("acme"))).text == "1"
            other = await c.get("/getCounter", headers=token("globex"))
            assert other.status_code == 401
            assert "only tenant 'acme'" in other.json()["detail"]
