"""Two real server processes on one Bigtable emulator (cbtemulator, started by the session).

Each test has a table of its own (``table_prefix``), created by the servers at start-up.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import cli, in_lanes, running_server, server_env

pytestmark = [pytest.mark.e2e, pytest.mark.bigtable]

INT64_MAX = 2**63 - 1


def make_env(tmp_path: Path, bigtable_host: str) -> dict[str, str]:
    prefix = f"e{uuid.uuid4().hex[:10]}_"
    return {
        **server_env(tmp_path),
        "TALLY_STORE_URL": f"bigtable://tally-e2e/tally?table_prefix={prefix}",
        "BIGTABLE_EMULATOR_HOST": bigtable_host,
        "TALLY_BIGTABLE_TIMEOUT_MS": "10000",  # a loaded CI machine, not a slow store
    }


@pytest.fixture
def bt_env(tmp_path: Path, bigtable_host: str) -> dict[str, str]:
    return make_env(tmp_path, bigtable_host)


@pytest.fixture(scope="module")
def two_servers(
    tmp_path_factory: pytest.TempPathFactory, bigtable_host: str
) -> Iterator[tuple[str, str, dict[str, str]]]:
    """One pair for the module's concurrency tests (each uses sequences of its own)."""
    bt_env = make_env(tmp_path_factory.mktemp("bigtable-e2e"), bigtable_host)
    token = cli(bt_env, "token", "--tenant", "acme")
    assert token.returncode == 0, token.stderr
    headers = {"Authorization": f"Bearer {token.stdout.strip()}"}
    with running_server(bt_env) as a, running_server(bt_env) as b:
        yield a, b, headers


async def take(
    urls: tuple[str, str], headers: dict[str, str], name: str, calls: int, body: object = None
) -> list[httpx.Response]:
    """``calls`` ``next`` calls, 80 in flight at once, alternating between the two servers."""

    async def one(client: httpx.AsyncClient, i: int) -> httpx.Response:
        return await client.post(f"/v1/sequences/{name}/next", json=body or {}, headers=headers)

    return await in_lanes(urls, calls, one, lanes=80)


def create(url: str, headers: dict[str, str], **spec: object) -> None:
    r = httpx.post(f"{url}/v1/sequences", json=spec, headers=headers, timeout=30)
    assert r.status_code == 201, r.text


async def test_400_concurrent_strict_nexts_on_two_servers_are_exactly_1_to_400(
    two_servers: tuple[str, str, dict[str, str]],
) -> None:
    a, b, h = two_servers
    create(a, h, name="invoices")
    answers = await take((a, b), h, "invoices", 400)
    assert all(r.status_code == 200 for r in answers), {r.status_code for r in answers}
    assert sorted(r.json()["value"] for r in answers) == list(range(1, 401))


async def test_1000_cached_nexts_on_two_servers_are_unique(
    two_servers: tuple[str, str, dict[str, str]],
) -> None:
    a, b, h = two_servers
    create(a, h, name="tickets", mode="cached")
    answers = await take((a, b), h, "tickets", 1000)
    assert all(r.status_code == 200 for r in answers)
    values = [r.json()["value"] for r in answers]
    assert len(set(values)) == 1000 and min(values) >= 1


async def test_max_50_under_80_concurrent_calls_gives_exactly_1_to_50_and_409s(
    two_servers: tuple[str, str, dict[str, str]],
) -> None:
    a, b, h = two_servers
    create(a, h, name="seats", max=50)
    answers = await take((a, b), h, "seats", 80)
    ok = sorted(r.json()["value"] for r in answers if r.status_code == 200)
    refused = [r for r in answers if r.status_code != 200]
    assert ok == list(range(1, 51))
    assert len(refused) == 30 and all(r.status_code == 409 for r in refused)
    assert all(r.headers["content-type"] == "application/problem+json" for r in refused)


async def test_the_int64_edge_serves_two_refuses_a_batch_whole_then_serves_the_last(
    two_servers: tuple[str, str, dict[str, str]],
) -> None:
    a, b, h = two_servers
    create(a, h, name="edge", start=INT64_MAX - 2)
    async with httpx.AsyncClient(timeout=30, headers=h) as http:
        got = [(await http.post(f"{u}/v1/sequences/edge/next", json={})).json() for u in (a, b)]
        assert [g["value"] for g in got] == [INT64_MAX - 2, INT64_MAX - 1]
        batch = await http.post(f"{a}/v1/sequences/edge/next", json={"count": 5})
        assert batch.status_code == 409, batch.text
        last = await http.post(f"{b}/v1/sequences/edge/next", json={})
        assert last.status_code == 200 and last.json()["value"] == INT64_MAX
        after = await http.post(f"{a}/v1/sequences/edge/next", json={})
        assert after.status_code == 409


def test_strict_continues_after_both_servers_restart(bt_env: dict[str, str]) -> None:
    token = cli(bt_env, "token", "--tenant", "acme").stdout.strip()
    h = {"Authorization": f"Bearer {token}"}
    with running_server(bt_env) as a, running_server(bt_env) as b:
        create(a, h, name="orders")
        for url in (a, b, a):
            httpx.post(f"{url}/v1/sequences/orders/next", headers=h, timeout=30)
    with running_server(bt_env) as a, running_server(bt_env) as b:
        r = httpx.post(f"{b}/v1/sequences/orders/next", headers=h, timeout=30)
        assert r.status_code == 200 and r.json()["value"] == 4
        r = httpx.post(f"{a}/v1/sequences/orders/next", json={"count": 2}, headers=h, timeout=30)
        assert (r.json()["value"], r.json()["last"]) == (5, 6)


def test_onboarding_with_the_cli_and_oauth_tokens_work_on_bigtable(
    bt_env: dict[str, str],
) -> None:
    for _ in range(2):  # tally migrate creates the table; again it changes nothing
        migrated = cli(bt_env, "migrate", "--json")
        assert migrated.returncode == 0, migrated.stderr
        assert json.loads(migrated.stdout)["backend"] == "bigtable"
    per_tenant = cli(bt_env, "migrate", "--tenant", "acme")
    assert per_tenant.returncode == 0, per_tenant.stderr
    assert "Bigtable has none" in per_tenant.stdout and "roles/bigtable.user" in per_tenant.stdout
    created = cli(bt_env, "tenants", "create", "acme", "--name", "Acme", "--json")
    assert created.returncode == 0, created.stderr
    creds = json.loads(created.stdout)
    again = cli(bt_env, "tenants", "create", "acme", "--name", "Acme")
    assert again.returncode != 0 and "\n" not in again.stderr.strip()
    with running_server(bt_env) as url, httpx.Client(base_url=url, timeout=30) as http:
        form = {"grant_type": "client_credentials"}
        r = http.post("/oauth/token", data=form, auth=(creds["client_id"], creds["client_secret"]))
        assert r.status_code == 200, r.text
        h = {"Authorization": f"Bearer {r.json()['access_token']}"}
        r = http.post("/v1/sequences/default/next", headers=h)
        assert r.status_code == 200 and r.json()["value"] == 1
        bad = http.post("/oauth/token", data=form, auth=(creds["client_id"], "wrong"))
        assert bad.status_code == 401
        assert http.get("/readyz").json()["store"] == "bigtable"
