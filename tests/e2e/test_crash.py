"""A server killed outright (SIGKILL, no shutdown) under load: no number ever repeats.

Strict numbers are durable before their response leaves, so after the crash the next
strict number is above every number any client received. Cached numbers come from
durable block reservations, so none received before the crash is issued again.
(A killed process keeps what it committed in the OS; surviving power loss as well is
SQLite's ``synchronous=FULL``, which a test on one machine cannot cut the power to.)
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal

import httpx
import pytest

from tests.e2e.conftest import SERVERS, cli, open_lanes, running_server

pytestmark = pytest.mark.e2e


async def hammer(client: httpx.AsyncClient, name: str, token: str, got: list[int]) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    while True:
        try:
            r = await client.post(f"/v1/sequences/{name}/next", json={"count": 3}, headers=headers)
        except httpx.TransportError:
            return  # the server is gone
        assert r.status_code == 200, r.text
        body = r.json()
        got.extend(range(body["value"], body["last"] + 1))


async def test_sigkill_under_load_never_repeats_a_number(e2e_env: dict[str, str]) -> None:
    token = cli(e2e_env, "token", "--tenant", "acme").stdout.strip()
    received: dict[str, list[int]] = {"orders": [], "tickets": []}
    with running_server(e2e_env) as url:
        h = {"Authorization": f"Bearer {token}"}
        for name, mode in (("orders", "strict"), ("tickets", "cached")):
            r = httpx.post(f"{url}/v1/sequences", json={"name": name, "mode": mode}, headers=h)
            assert r.status_code == 201, r.text
        async with open_lanes([url], 32, timeout=10) as clients:
            names = [name for name in received for _ in range(16)]
            workers = [
                asyncio.create_task(hammer(client, name, token, received[name]))
                for client, name in zip(clients, names, strict=True)
            ]
            deadline = asyncio.get_running_loop().time() + 60
            while min(len(v) for v in received.values()) < 3000:  # well under way
                broken = [t for t in workers if t.done()]
                if broken:
                    broken[0].result()  # a wrong answer before the crash: show it
                assert asyncio.get_running_loop().time() < deadline, "load never got going"
                await asyncio.sleep(0.05)
            SERVERS[url].send_signal(signal.SIGKILL)
            done, pending = await asyncio.wait(workers, timeout=30)
            assert not pending, "clients did not notice the crash"
            for task in done:
                with contextlib.suppress(httpx.TransportError):
                    task.result()  # re-raise any wrong answer seen before the crash
    for numbers in received.values():
        assert len(numbers) == len(set(numbers)), "a number was issued twice before the crash"

    with running_server(e2e_env) as url:
        h = {"Authorization": f"Bearer {token}"}
        after = {
            name: httpx.post(
                f"{url}/v1/sequences/{name}/next", json={"count": 50}, headers=h
            ).json()
            for name in received
        }
    strict = after["orders"]
    assert strict["value"] > max(received["orders"]), "a durable strict number was lost"
    cached = range(after["tickets"]["value"], after["tickets"]["last"] + 1)
    assert not set(cached) & set(received["tickets"]), "a cached number repeated after the crash"


async def test_sigkill_under_spread_load_repeats_nothing_and_strict_continues_above(
    e2e_env: dict[str, str],
) -> None:
    # Many tenants' counters at once: group commit puts them in shared transactions.
    tenants = ["acme", "globex", "initech", "umbrella"]
    names = [f"s{i}" for i in range(10)]
    tokens = {t: cli(e2e_env, "token", "--tenant", t).stdout.strip() for t in tenants}
    received: dict[tuple[str, str], list[int]] = {(t, n): [] for t in tenants for n in names}
    rng = random.Random(5)

    async def spread(client: httpx.AsyncClient) -> None:
        while True:
            tenant, name = rng.choice(tenants), rng.choice(names)
            headers = {"Authorization": f"Bearer {tokens[tenant]}"}
            try:
                r = await client.post(
                    f"/v1/sequences/{name}/next", json={"count": 2}, headers=headers
                )
            except httpx.TransportError:
                return  # the server is gone
            assert r.status_code == 200, r.text
            body = r.json()
            received[(tenant, name)].extend(range(body["value"], body["last"] + 1))

    with running_server(e2e_env) as url:
        for tenant, name in received:
            h = {"Authorization": f"Bearer {tokens[tenant]}"}
            r = httpx.post(f"{url}/v1/sequences", json={"name": name}, headers=h)
            assert r.status_code == 201, r.text
        async with open_lanes([url], 32, timeout=10) as clients:
            workers = [asyncio.create_task(spread(client)) for client in clients]
            deadline = asyncio.get_running_loop().time() + 60
            while sum(len(v) for v in received.values()) < 3000:  # well under way
                broken = [t for t in workers if t.done()]
                if broken:
                    broken[0].result()
                assert asyncio.get_running_loop().time() < deadline, "load never got going"
                await asyncio.sleep(0.05)
            SERVERS[url].send_signal(signal.SIGKILL)
            done, pending = await asyncio.wait(workers, timeout=30)
            assert not pending, "clients did not notice the crash"
            for task in done:
                with contextlib.suppress(httpx.TransportError):
                    task.result()
    for numbers in received.values():
        assert len(numbers) == len(set(numbers)), "a number was issued twice before the crash"

    with running_server(e2e_env) as url:
        for (tenant, name), numbers in received.items():
            h = {"Authorization": f"Bearer {tokens[tenant]}"}
            r = httpx.post(f"{url}/v1/sequences/{name}/next", headers=h)
            assert r.status_code == 200, r.text
            assert r.json()["value"] > max(numbers, default=0), (tenant, name)
