"""Cached mode across real processes: two servers on one SQLite file, then a restart."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.e2e.conftest import cli, in_lanes, running_server

pytestmark = pytest.mark.e2e


async def take(url: str, token: str, requests: int, count: int) -> list[int]:
    headers = {"Authorization": f"Bearer {token}"}

    async def one(client: httpx.AsyncClient, i: int) -> list[int]:
        r = await client.post("/v1/sequences/tickets/next", json={"count": count}, headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["last"] - body["value"] == count - 1
        return list(range(body["value"], body["last"] + 1))

    slices = await in_lanes([url], requests, one, lanes=32)
    return [n for s in slices for n in s]


async def test_two_cached_servers_on_one_file_never_duplicate_even_after_restart(
    e2e_env: dict[str, str],
) -> None:
    token = cli(e2e_env, "token", "--tenant", "acme").stdout.strip()
    env = {**e2e_env, "TALLY_CACHED_BLOCK_MIN": "20"}
    with running_server(env) as first, running_server(env) as second:
        r = httpx.post(
            f"{first}/v1/sequences",
            json={"name": "tickets", "mode": "cached"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 201, r.text
        # 5,000 numbers from each process at once: 250 requests of 20 (served from
        # leased blocks, or directly when a block has fewer than 20 left).
        a, b = await asyncio.gather(take(first, token, 250, 20), take(second, token, 250, 20))
    assert len(a) == len(b) == 5000
    before = set(a) | set(b)
    assert len(before) == 10_000, "a number was issued twice"

    with running_server(env) as again:
        after = await take(again, token, 100, 5)
    assert len(set(after)) == len(after) == 500
    assert not before & set(after), "a number repeated after the restart"
