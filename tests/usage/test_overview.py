"""The admin overview and the tenants list's counts: exact numbers, split by tenant."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI

from core.clock import FrozenClock
from tests.conftest import app_token, bearer
from tests.tenants.builders import make_tenant, token_for

DAY = 86_400


@pytest.fixture
async def admin(client: httpx.AsyncClient, app: FastAPI) -> dict[str, str]:
    creds = await app.state.tenants.create_admin_client("ops")
    return bearer(await token_for(client, creds))


async def take(client: httpx.AsyncClient, h: dict[str, str], name: str, count: int) -> None:
    r = await client.post(f"/v1/sequences/{name}/next", json={"count": count}, headers=h)
    assert r.status_code == 200, r.text


async def test_overview_and_tenant_list_report_exactly_what_was_issued_split_by_tenant(
    client: httpx.AsyncClient, app: FastAPI, clock: FrozenClock, admin: dict[str, str]
) -> None:
    clock.set(datetime(2026, 3, 10, 12, 0, tzinfo=UTC))
    for slug in ("acme", "globex", "initech"):
        await make_tenant(app.state.tenants, slug)
    await app.state.tenants.suspend("initech")
    acme, globex = bearer(app_token(app, "acme")), bearer(app_token(app, "globex"))
    for h, body in [
        (acme, {"name": "inv", "max": 100}),
        (acme, {"name": "half", "max": 100}),
        (globex, {"name": "orders"}),
        (globex, {"name": "tickets", "start": 1, "max": 20, "cycle": True}),
    ]:
        assert (await client.post("/v1/sequences", json=body, headers=h)).status_code == 201

    # Three days ago (inside the 30 days, not today), flushed to the store.
    clock.set(datetime(2026, 3, 7, 9, 0, tzinfo=UTC))
    await take(client, acme, "inv", 40)
    await take(client, globex, "orders", 7)
    await app.state.usage.recorder.flush()
    # 40 days ago: outside the window.
    clock.set(datetime(2026, 1, 29, 9, 0, tzinfo=UTC))
    await take(client, globex, "orders", 1000)
    await app.state.usage.recorder.flush()
    # Today: some flushed, some still pending in this process.
    clock.set(datetime(2026, 3, 10, 12, 0, tzinfo=UTC))
    await take(client, acme, "inv", 55)  # inv now at 95 of 100
    await take(client, acme, "half", 50)
    await take(client, globex, "tickets", 19)  # 1 of 20 left, but it cycles
    await app.state.usage.recorder.flush()
    await take(client, globex, "orders", 3)
    await take(client, acme, "default", 2)

    r = await client.get("/admin/v1/overview", headers=admin)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["tenants"] == {"total": 3, "by_status": {"active": 2, "suspended": 1}}
    today = {"acme": 55 + 50 + 2, "globex": 19 + 3}
    month = {"acme": 40 + today["acme"], "globex": 7 + today["globex"]}
    assert body["numbers"] == {
        "today": sum(today.values()),
        "last_30_days": sum(month.values()),
    }
    assert [(t["slug"], t["numbers_today"], t["numbers_30d"]) for t in body["top_tenants"]] == [
        ("acme", today["acme"], month["acme"]),
        ("globex", today["globex"], month["globex"]),
    ]
    near = {(n["tenant"], n["sequence"]): n for n in body["near_exhaustion"]}
    assert set(near) == {("acme", "inv"), ("globex", "tickets")}  # "half" has 50 % left
    assert near[("acme", "inv")] == {
        "tenant": "acme",
        "sequence": "inv",
        "period": None,
        "max": 100,
        "cycle": False,
        "capacity": 100,
        "remaining": 5,
        "headroom_percent": 5.0,
    }
    assert near[("globex", "tickets")]["remaining"] == 1
    assert near[("globex", "tickets")]["cycle"] is True
    # Least headroom first.
    assert [n["sequence"] for n in body["near_exhaustion"]] == ["tickets", "inv"]

    r = await client.get("/admin/v1/tenants", headers=admin)
    assert r.status_code == 200, r.text
    listed = {t["slug"]: t for t in r.json()["items"]}
    assert {
        s: (t["sequences"], t["numbers_today"], t["numbers_30d"]) for s, t in listed.items()
    } == {
        "acme": (3, today["acme"], month["acme"]),  # default, inv, half
        "globex": (3, today["globex"], month["globex"]),  # default, orders, tickets
        "initech": (1, 0, 0),
    }
    assert listed["initech"]["status"] == "suspended"

    # The series' own view agrees with the overview's day split.
    r = await client.get("/admin/v1/tenants/globex/usage", headers=admin)
    assert r.json()["numbers"] == month["globex"]


async def test_top_limits_the_top_tenants(
    client: httpx.AsyncClient, app: FastAPI, admin: dict[str, str]
) -> None:
    for i, slug in enumerate(("aaa", "bbb", "ccc")):
        await make_tenant(app.state.tenants, slug)
        await take(client, bearer(app_token(app, slug)), "default", i + 1)
    r = await client.get("/admin/v1/overview", params={"top": 2}, headers=admin)
    assert [t["slug"] for t in r.json()["top_tenants"]] == ["ccc", "bbb"]
    bad = await client.get("/admin/v1/overview", params={"top": 0}, headers=admin)
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"


async def test_an_empty_platform_has_an_empty_overview(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    r = await client.get("/admin/v1/overview", headers=admin)
    assert r.status_code == 200
    body = r.json()
    assert body["tenants"] == {"total": 0, "by_status": {"active": 0, "suspended": 0}}
    assert body["numbers"] == {"today": 0, "last_30_days": 0}
    assert body["top_tenants"] == [] and body["near_exhaustion"] == []


@pytest.mark.parametrize("path", ["/admin/v1/overview", "/admin/v1/tenants"])
async def test_tenant_tokens_get_403_on_the_overview_and_the_list(
    client: httpx.AsyncClient, app: FastAPI, path: str
) -> None:
    await make_tenant(app.state.tenants, "acme")
    every_scope = "sequences:read sequences:next sequences:write platform:admin"
    r = await client.get(path, headers=bearer(app_token(app, "acme", scopes=every_scope)))
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/problem+json"
    assert (await client.get(path)).status_code == 401
