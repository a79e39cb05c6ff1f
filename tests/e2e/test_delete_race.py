"""DELETE racing the first ``next``, across two real server processes on one SQLite file.

The ``next`` that founds a sequence's counter and a DELETE of that sequence land in
either order; whichever wins, a sequence created again with the same name issues its
own numbers (its new ``start``, up to its new ``max``) and nothing a dead counter held.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.e2e.conftest import cli, running_server

pytestmark = pytest.mark.e2e

RACES = 200


async def race(a: httpx.AsyncClient, b: httpx.AsyncClient, h: dict[str, str], i: int) -> str:
    name = f"race-{i}"
    deleter, taker = (a, b) if i % 2 else (b, a)
    r = await deleter.post("/v1/sequences", json={"name": name}, headers=h)
    assert r.status_code == 201, r.text
    deleted, took = await asyncio.gather(
        deleter.delete(f"/v1/sequences/{name}", headers=h),
        taker.post(f"/v1/sequences/{name}/next", json={}, headers=h),
    )
    assert deleted.status_code == 204, deleted.text
    assert took.status_code in (200, 404), took.text
    assert took.status_code == 404 or took.json()["value"] == 1

    start = 1000 + i
    r = await taker.post(
        "/v1/sequences", json={"name": name, "start": start, "max": start + 2}, headers=h
    )
    assert r.status_code == 201, r.text
    got = []
    for j in range(4):
        r = await (a if j % 2 else b).post(f"/v1/sequences/{name}/next", json={}, headers=h)
        got.append(r.json()["value"] if r.status_code == 200 else r.status_code)
    assert got == [start, start + 1, start + 2, 409], f"{name}: {got}"
    return "founded" if took.status_code == 200 else "deleted first"


async def test_delete_racing_the_first_next_never_leaves_a_counter_to_adopt(
    e2e_env: dict[str, str],
) -> None:
    token = cli(e2e_env, "token", "--tenant", "acme").stdout.strip()
    h = {"Authorization": f"Bearer {token}"}
    with running_server(e2e_env) as url_a, running_server(e2e_env) as url_b:
        async with (
            httpx.AsyncClient(base_url=url_a, timeout=30) as a,
            httpx.AsyncClient(base_url=url_b, timeout=30) as b,
        ):
            gate = asyncio.Semaphore(8)

            async def one(i: int) -> str:
                async with gate:
                    return await race(a, b, h, i)

            outcomes = await asyncio.gather(*(one(i) for i in range(RACES)))
    # Both orders happened, so the race was real (not always won by one side).
    assert len(outcomes) == RACES
    assert set(outcomes) == {"founded", "deleted first"}, outcomes
