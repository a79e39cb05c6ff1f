"""Plain builders for sequence tests: an app over any store, clock and time zones."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from fastapi import FastAPI

from api.app import create_app
from core.clock import FrozenClock
from core.settings import Settings
from sequences.service import TimezoneLookup
from storage import Counter, Store
from tests.conftest import ALL_SCOPES, app_token, bearer


def zones(by_tenant: Mapping[str, str]) -> TimezoneLookup:
    """A ``timezone_of`` hook: the given tenants' zones, UTC for everyone else."""

    async def lookup(tenant: str) -> ZoneInfo:
        return ZoneInfo(by_tenant.get(tenant, "UTC"))

    return lookup


@dataclass
class Api:
    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings
    clock: FrozenClock

    @property
    def store(self) -> Store:
        store: Store = self.app.state.store
        return store

    def headers(
        self, tenant: str = "acme", scopes: str = ALL_SCOPES, subject: str = ""
    ) -> dict[str, str]:
        return bearer(
            app_token(
                self.app, tenant, scopes, subject=subject or f"user-of-{tenant or 'platform'}"
            )
        )

    def admin_headers(self) -> dict[str, str]:
        return self.headers(tenant="", scopes="platform:admin", subject="operator")

    async def create(self, tenant: str = "acme", **body: Any) -> httpx.Response:
        return await self.client.post("/v1/sequences", json=body, headers=self.headers(tenant))

    async def next(self, name: str, tenant: str = "acme", count: int = 1) -> httpx.Response:
        return await self.client.post(
            f"/v1/sequences/{name}/next", json={"count": count}, headers=self.headers(tenant)
        )

    async def values(self, name: str, times: int, tenant: str = "acme") -> list[int]:
        return [(await self.next(name, tenant)).json()["value"] for _ in range(times)]

    async def peek(self, name: str, tenant: str = "acme") -> dict[str, Any]:
        r = await self.client.get(f"/v1/sequences/{name}", headers=self.headers(tenant))
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body


@asynccontextmanager
async def running_api(
    settings: Settings,
    clock: FrozenClock,
    *,
    store: Store | None = None,
    tz: Mapping[str, str] | None = None,
) -> AsyncIterator[Api]:
    app = create_app(settings, store=store, clock=clock, timezone_of=zones(tz or {}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tally.test") as c:
            yield Api(app, c, settings, clock)


async def stored_counter(api: Api, tenant: str, key: str) -> Counter | None:
    """The stored counter of ``key``, checked to belong to its sequence's incarnation.

    Returned with the (random) incarnation blanked, so tests compare the numbers only.
    """
    counter = await api.store.read_counter(tenant, key)
    if counter is None:
        return None
    record = await api.store.get_sequence(tenant, key.split("/")[0])
    assert record is not None and counter.incarnation == record.incarnation
    return dataclasses.replace(counter, incarnation="")


class HeldOnce:
    """A store whose next call of ``method`` waits, once ``reached``, until ``go`` is set
    (arm it with ``go = held.hold()``): one step of a race, held while the other runs."""

    def __init__(self, inner: Store, method: str) -> None:
        self.inner = inner
        self.method = method
        self.reached = asyncio.Event()
        self.go: asyncio.Event | None = None

    def hold(self) -> asyncio.Event:
        self.go = asyncio.Event()
        return self.go

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.inner, name)
        if name != self.method:
            return real

        async def held(*args: Any, **kwargs: Any) -> Any:
            if self.go is not None:
                go, self.go = self.go, None
                self.reached.set()
                await go.wait()
            return await real(*args, **kwargs)

        return held
