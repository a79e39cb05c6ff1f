"""Readiness follows the store: 503 problem+json with Retry-After when it does not answer."""

from __future__ import annotations

from pathlib import Path

import httpx

from api.app import create_app
from core.settings import Settings
from storage import StoreUnavailable
from storage.sqlite import SQLiteStore


class _Unreachable(SQLiteStore):
    async def ping(self) -> None:
        raise StoreUnavailable("SQLite store unavailable: disk I/O error")


async def test_readyz_is_503_when_the_store_is_unreachable(
    settings: Settings, tmp_path: Path
) -> None:
    store = _Unreachable(tmp_path / "t.db")
    await store.start()
    app = create_app(settings, store=store)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                assert (await c.get("/healthz")).status_code == 200  # alive, just not ready
                assert (await c.head("/readyz")).status_code == 503
                r = await c.get("/readyz")
    finally:
        await store.close()
    assert r.status_code == 503
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["retry-after"] == "1"
    assert r.json()["type"].endswith("/store-unavailable")


async def test_a_store_file_replaced_by_one_that_is_not_a_database_is_503_not_500(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "t.db"
    store = SQLiteStore(path)
    await store.start()  # the writer's connection only: the reader opens at its first read
    bad = tmp_path / "restored"
    bad.write_text("not a database\n" * 100)
    bad.replace(path)  # e.g. a botched restore under the running server
    for journal in tmp_path.glob("t.db-*"):
        journal.unlink()
    app = create_app(settings, store=store)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                r = await c.get("/readyz")
    finally:
        await store.close()
    assert r.status_code == 503
    assert "file is not a database" in r.json()["detail"]
