"""The same API behaviour on every store backend (the app built with an injected store)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from api.app import create_app
from core.settings import Settings
from storage import Store
from tests.conftest import app_token, bearer


@pytest.fixture
async def backend_client(
    settings: Settings, store: Store
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    app = create_app(settings, store=store)
    async with app.router.lifespan_context(app):
        token = app_token(app)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            yield c, bearer(token)


async def test_500_concurrent_nexts_are_1_to_500_on_every_backend(
    backend_client: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    client, h = backend_client
    assert (await client.post("/v1/sequences", json={"name": "s"}, headers=h)).status_code == 201
    rs = await asyncio.gather(*(client.post("/v1/sequences/s/next", headers=h) for _ in range(500)))
    assert sorted(r.json()["value"] for r in rs) == list(range(1, 501))
    peek = await client.get("/v1/sequences/s", headers=h)
    assert (peek.json()["last"], peek.json()["next"]) == (500, 501)


async def test_exhaustion_and_batches_on_every_backend(
    backend_client: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    client, h = backend_client
    await client.post(
        "/v1/sequences", json={"name": "s", "start": 10, "step": 5, "max": 40}, headers=h
    )
    r = await client.post("/v1/sequences/s/next", json={"count": 6}, headers=h)
    assert (r.json()["value"], r.json()["last"]) == (10, 35)
    r = await client.post("/v1/sequences/s/next", json={"count": 2}, headers=h)
    assert r.status_code == 409
    r = await client.post("/v1/sequences/s/next", headers=h)
    assert r.json()["value"] == 40
