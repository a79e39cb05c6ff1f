"""Usage over time over HTTP: the tenant's own view and the platform admin's."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.app import create_app
from core.clock import FrozenClock
from core.settings import Settings
from tests.conftest import app_token, bearer
from tests.tenants.builders import make_tenant, token_for

Headers = Callable[..., dict[str, str]]
WINDOW = {"granularity": "hour", "from": "2026-03-01T09:00:00Z", "to": "2026-03-01T12:00:00Z"}


def at(hour: int, minute: int) -> datetime:
    return datetime(2026, 3, 1, hour, minute, tzinfo=UTC)


async def take(client: httpx.AsyncClient, h: dict[str, str], name: str, count: int = 1) -> int:
    r = await client.post(f"/v1/sequences/{name}/next", json={"count": count}, headers=h)
    return r.status_code


async def traffic(client: httpx.AsyncClient, clock: FrozenClock, h: dict[str, str]) -> None:
    for name, extra in [("a", {}), ("b", {}), ("c", {"max": 1})]:
        await client.post("/v1/sequences", json={"name": name, **extra}, headers=h)
    clock.set(at(10, 15))
    assert [await take(client, h, "a"), await take(client, h, "a")] == [200, 200]
    assert await take(client, h, "a", 5) == 200
    assert await take(client, h, "b", 3) == 200
    assert await take(client, h, "c") == 200
    assert await take(client, h, "c") == 409  # nothing issued: not counted
    clock.set(at(11, 5))
    assert await take(client, h, "a") == 200
    assert (await client.get("/getCounter", headers=h)).status_code == 200  # `default`
    clock.set(at(11, 30))


def summary(body: dict[str, Any]) -> tuple[Any, ...]:
    points = [(p["start"], p["requests"], p["numbers"]) for p in body["points"]]
    seqs = [(s["sequence"], s["requests"], s["numbers"]) for s in body["sequences"]]
    return points, body["requests"], body["numbers"], seqs


EXPECTED = (
    [
        ("2026-03-01T09:00:00Z", 0, 0),
        ("2026-03-01T10:00:00Z", 5, 11),
        ("2026-03-01T11:00:00Z", 2, 2),
    ],
    7,
    13,
    [("a", 4, 8), ("b", 1, 3), ("c", 1, 1), ("default", 1, 1)],
)


async def test_usage_per_hour_counts_every_number_issued_and_only_those(
    client: httpx.AsyncClient, app: FastAPI, clock: FrozenClock, auth_headers: Headers
) -> None:
    h = auth_headers()
    await traffic(client, clock, h)
    r = await client.get("/v1/usage", params=WINDOW, headers=h)
    assert r.status_code == 200, r.text
    assert summary(r.json()) == EXPECTED  # this process's counts, before any flush
    await app.state.usage.recorder.flush()
    again = await client.get("/v1/usage", params=WINDOW, headers=h)
    assert summary(again.json()) == EXPECTED  # from the store now, not counted twice
    body = again.json()
    assert body["start"] == "2026-03-01T09:00:00Z" and body["end"] == "2026-03-01T12:00:00Z"

    only_b = await client.get("/v1/usage", params={**WINDOW, "sequence": "b"}, headers=h)
    assert summary(only_b.json())[1:] == (1, 3, [("b", 1, 3)])
    other = await client.get("/v1/usage", params=WINDOW, headers=auth_headers("globex"))
    assert summary(other.json())[1:] == (0, 0, [])  # another tenant sees none of it


async def test_usage_per_day_defaults_to_the_last_30_days(
    client: httpx.AsyncClient, clock: FrozenClock, auth_headers: Headers
) -> None:
    h = auth_headers()
    await traffic(client, clock, h)
    body = (await client.get("/v1/usage", headers=h)).json()
    assert body["granularity"] == "day" and len(body["points"]) == 30
    assert body["points"][-1] == {"start": "2026-03-01T00:00:00Z", "requests": 7, "numbers": 13}
    assert body["end"] == "2026-03-02T00:00:00Z"
    assert sum(p["numbers"] for p in body["points"]) == 13


@pytest.mark.parametrize(
    "params",
    [
        {"from": "2026-03-01T12:00:00Z", "to": "2026-03-01T12:00:00Z"},  # empty range
        {"from": "2026-03-02T00:00:00Z", "to": "2026-03-01T00:00:00Z"},  # backwards
        {"from": "2026-03-01T09:00:00"},  # no time zone
        {"granularity": "week"},
        {"granularity": "hour", "from": "2026-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"},
        {"sequence": "Not/A name"},
        {"to": "9999-12-31T23:59:59Z"},  # the bucket would end past datetime's range
        {"to": "0001-01-01T00:00:00Z"},
        {"from": "0001-01-01T00:00:00+14:00"},
    ],
)
async def test_bad_usage_queries_are_422_problems(
    client: httpx.AsyncClient, auth_headers: Headers, params: dict[str, str]
) -> None:
    r = await client.get("/v1/usage", params=params, headers=auth_headers())
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"


async def test_usage_needs_the_read_scope(client: httpx.AsyncClient, auth_headers: Headers) -> None:
    r = await client.get("/v1/usage", headers=auth_headers(scopes="sequences:next"))
    assert r.status_code == 403


async def test_platform_admins_read_any_tenants_usage_and_sequences(
    client: httpx.AsyncClient, app: FastAPI, clock: FrozenClock
) -> None:
    admin = bearer(await token_for(client, await app.state.tenants.create_admin_client("ops")))
    acme = bearer(await token_for(client, await make_tenant(app.state.tenants, "acme")))
    await traffic(client, clock, acme)

    r = await client.get("/admin/v1/tenants/acme/usage", params=WINDOW, headers=admin)
    assert r.status_code == 200, r.text
    assert summary(r.json()) == EXPECTED
    r = await client.get("/admin/v1/tenants/acme/sequences", headers=admin)
    assert r.status_code == 200, r.text
    listed = {i["name"]: (i["last"], i["next"]) for i in r.json()["items"]}
    assert listed == {"a": (8, 9), "b": (3, 4), "c": (1, None), "default": (1, 2)}
    assert r.json() == (await client.get("/v1/sequences", headers=acme)).json()

    for path in ("/admin/v1/tenants/nope/usage", "/admin/v1/tenants/nope/sequences"):
        assert (await client.get(path, headers=admin)).status_code == 404
    for path in ("/admin/v1/tenants/acme/usage", "/admin/v1/tenants/acme/sequences"):
        assert (await client.get(path, headers=acme)).status_code == 403  # tenants are not admins


async def test_the_last_counts_reach_the_store_when_the_server_stops(settings: Settings) -> None:
    clock = FrozenClock(at(10, 0))
    tokens: dict[str, str] = {}
    for round_ in range(2):
        app = create_app(settings, clock=clock)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                if round_ == 0:
                    tokens["h"] = app_token(app)
                    h = bearer(tokens["h"])
                    await client.post("/v1/sequences", json={"name": "a"}, headers=h)
                    assert await take(client, h, "a", 42) == 200
                else:  # a new process: only what the first one flushed at shutdown
                    assert app.state.usage.recorder.pending("acme") == []
                    r = await client.get("/v1/usage", params=WINDOW, headers=bearer(tokens["h"]))
                    assert summary(r.json())[1:] == (1, 42, [("a", 1, 42)])
