"""Suspension and revocation reach tokens already issued, within the documented bound.

"Another process" (the CLI, another replica) is a second ``TenantService`` on the same
store: its changes reach this app's cache only after ``TALLY_STATUS_CACHE_SECONDS``.
The app's clock is frozen, so the bound is shown exactly, without sleeping.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from api.app import create_app
from auth.keys import KeyRing
from core.clock import FrozenClock
from core.settings import Settings
from tenants.schemas import ClientCreate, Onboarded
from tenants.service import TenantService
from tests.conftest import app_token, bearer
from tests.tenants.builders import make_tenant, request_token, token_for


@pytest.fixture
def elsewhere(app: FastAPI, clock: FrozenClock) -> TenantService:
    return TenantService(app.state.store, clock=clock)


@pytest.fixture
async def acme(elsewhere: TenantService) -> Onboarded:
    return await make_tenant(elsewhere, "acme")


async def next_status(client: httpx.AsyncClient, token: str) -> int:
    r = await client.post("/v1/sequences/default/next", headers=bearer(token))
    return r.status_code


async def test_suspension_elsewhere_refuses_existing_tokens_within_the_bound(
    client: httpx.AsyncClient,
    elsewhere: TenantService,
    acme: Onboarded,
    clock: FrozenClock,
    settings: Settings,
) -> None:
    token = await token_for(client, acme)
    assert await next_status(client, token) == 200
    await elsewhere.suspend("acme")
    # New tokens stop at once: the token endpoint reads the store.
    r = await request_token(client, acme.client_id, acme.client_secret)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    # An existing token works at most until the cached status expires ...
    clock.advance(settings.status_cache_seconds - 0.5)
    assert await next_status(client, token) == 200
    clock.advance(0.5)
    r = await client.post("/v1/sequences/default/next", headers=bearer(token))
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="tally", error="invalid_token"'
    assert r.headers["content-type"] == "application/problem+json"
    # ... and a resume comes back the same way.
    await elsewhere.resume("acme")
    clock.advance(settings.status_cache_seconds)
    assert await next_status(client, token) == 200


async def test_suspension_through_this_process_is_immediate(
    client: httpx.AsyncClient, app: FastAPI, acme: Onboarded
) -> None:
    token = await token_for(client, acme)
    assert await next_status(client, token) == 200
    await app.state.tenants.suspend("acme")
    assert await next_status(client, token) == 401


async def test_revocation_elsewhere_refuses_the_clients_tokens_within_the_bound(
    client: httpx.AsyncClient,
    elsewhere: TenantService,
    acme: Onboarded,
    clock: FrozenClock,
    settings: Settings,
) -> None:
    token = await token_for(client, acme)
    second = await elsewhere.create_client("acme", ClientCreate())
    other_token = await token_for(client, second)
    assert await next_status(client, token) == 200
    await elsewhere.revoke_client("acme", acme.client_id)
    r = await request_token(client, acme.client_id, acme.client_secret)
    assert r.status_code == 401
    clock.advance(settings.status_cache_seconds)
    assert await next_status(client, token) == 401
    # The tenant's other client is unaffected.
    assert await next_status(client, other_token) == 200


async def test_production_refuses_unregistered_and_deleted_tenants(
    tmp_path: Path,
) -> None:
    settings = Settings(
        environment="production",
        store_url=f"sqlite:///{tmp_path}/tally.db",  # type: ignore[arg-type]
        keys_dir=tmp_path / "keys",
        jwt_issuer="https://tally.prod.test",
        _env_file=None,  # type: ignore[call-arg]
    )
    KeyRing.load_or_create(settings.keys_dir)  # production never creates keys itself
    clock = FrozenClock()
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            acme = await make_tenant(app.state.tenants, "acme")
            token = await token_for(client, acme)
            assert await next_status(client, token) == 200
            unregistered = app_token(app, "demo", "sequences:next", ttl=60, subject="dev-cli")
            assert await next_status(client, unregistered) == 401
            await app.state.tenants.suspend("acme")
            await app.state.tenants.delete("acme")
            assert await next_status(client, token) == 401


async def test_unregistered_tenants_work_in_development(
    client: httpx.AsyncClient, auth_headers: Callable[..., dict[str, str]]
) -> None:
    r = await client.get("/getCounter", headers=auth_headers("demo"))
    assert r.status_code == 200 and r.text == "1"


async def test_reset_periods_follow_the_tenants_registered_time_zone(
    client: httpx.AsyncClient, app: FastAPI, clock: FrozenClock
) -> None:
    # 12:00 UTC on 1 Jan is already 2 Jan in Kiritimati (UTC+14).
    clock.set(datetime(2026, 1, 1, 12, 0, tzinfo=UTC))
    kiri = await make_tenant(app.state.tenants, "kiri", timezone="Pacific/Kiritimati")
    utc = await make_tenant(app.state.tenants, "utc")
    periods = []
    for creds in (kiri, utc):
        headers = bearer(await token_for(client, creds))
        body = {"name": "daily", "reset": "daily"}
        assert (await client.post("/v1/sequences", json=body, headers=headers)).status_code == 201
        r = await client.post("/v1/sequences/daily/next", headers=headers)
        periods.append(r.json()["period"])
    assert periods == ["2026-01-02", "2026-01-01"]


async def test_development_tokens_with_one_subject_work_for_several_tenants(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings
) -> None:
    for tenant in ["demo", "other", "demo"]:
        token = app_token(app, tenant, "sequences:next", ttl=60, subject="dev-cli")
        r = await client.get("/getCounter", headers=bearer(token))
        assert r.status_code == 200, r.text


async def test_the_lifecycle_check_is_a_cache_hit_on_the_hot_path(
    app: FastAPI, acme: Onboarded, monkeypatch: pytest.MonkeyPatch
) -> None:
    from auth.schemas import TokenPrincipal

    tenants: TenantService = app.state.tenants
    principal = TokenPrincipal(
        subject=acme.client_id,
        tenant="acme",
        scopes=frozenset({"sequences:next"}),
        expires_at=2e9,
        client_id=acme.client_id,
        issuer=tenants.own_issuer,
    )
    await tenants.admit(principal)  # fills the cache

    async def no_store(*args: object) -> None:
        raise AssertionError("the hot path read the store")

    monkeypatch.setattr(tenants.store, "get_tenant", no_store)
    monkeypatch.setattr(tenants.store, "get_client", no_store)
    for _ in range(400):  # below the standard plan's 500 requests per second
        await tenants.admit(principal)


@pytest.mark.parametrize(
    ("environment", "override", "allowed"),
    [
        ("development", None, True),
        ("production", None, False),
        ("production", "allow", True),
        ("development", "refuse", False),
    ],
)
def test_unregistered_tenants_policy_follows_the_environment_unless_set(
    tmp_path: Path, environment: str, override: str | None, allowed: bool
) -> None:
    settings = Settings(
        environment=environment,  # type: ignore[arg-type]
        unregistered_tenants=override,  # type: ignore[arg-type]
        store_url=f"sqlite:///{tmp_path}/t.db",  # type: ignore[arg-type]
        jwt_issuer="https://tally.prod.test",
        _env_file=None,  # type: ignore[call-arg]
    )
    assert settings.allow_unregistered_tenants is allowed
