"""While it serves, the app keeps CPython's cyclic GC off the hot path: what start-up
made is frozen, and the young generation is not collected every few hundred requests
of a load spread over many counters (api.app.GC_YOUNG_THRESHOLD)."""

from __future__ import annotations

import gc
from collections import Counter
from typing import Any

import httpx

from api.app import GC_YOUNG_THRESHOLD, create_app
from bench.inprocess import drive
from core.clock import FrozenClock
from core.settings import Settings
from tests.conftest import app_token, bearer

TENANTS, SEQUENCES, IN_FLIGHT, REQUESTS = 10, 10, 64, 3_000


async def test_a_spread_load_triggers_no_young_collection_and_shutdown_restores_the_gc(
    settings: Settings,
) -> None:
    before = gc.get_threshold()
    app = create_app(settings, clock=FrozenClock())
    collections: list[int] = []
    statuses: Counter[int] = Counter()

    def watch(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    async with app.router.lifespan_context(app):
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *before[1:])
        targets: list[tuple[bytes, str]] = []
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for t in range(TENANTS):
                token = app_token(app, f"t{t}")
                for s in range(SEQUENCES):
                    r = await client.post(
                        "/v1/sequences", json={"name": f"s{s}"}, headers=bearer(token)
                    )
                    assert r.status_code == 201, r.text
                    targets.append((token.encode(), f"/v1/sequences/s{s}/next"))

        gc.collect()
        gc.callbacks.append(watch)
        try:
            await drive(app, targets, REQUESTS, statuses, IN_FLIGHT)
        finally:
            gc.callbacks.remove(watch)
    assert statuses == {200: REQUESTS}
    # CPython's default threshold (700) collected ~10 times in this run.
    assert collections == [], f"collections of generations {collections} while serving"
    assert gc.get_threshold() == before
