"""The admin API: platform-admin tokens only, the same service calls as the CLI."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import TokenFactory, bearer
from tests.tenants.builders import request_token, token_for


@pytest.fixture
async def admin(client: httpx.AsyncClient, app: FastAPI) -> dict[str, str]:
    """Headers of a platform-admin token obtained the real way: an admin client."""
    creds = await app.state.tenants.create_admin_client("ops")
    return bearer(await token_for(client, creds))


async def test_onboard_list_show_update_suspend_resume_over_http(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    body = {"slug": "acme", "name": "Acme", "branding": {"primary_color": "#ff8800"}}
    r = await client.post("/admin/v1/tenants", json=body, headers=admin)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["tenant"]["slug"] == "acme" and created["client_secret"]
    assert created["tenant"]["branding"]["primary_color"] == "#ff8800"
    token = await token_for(client, SimpleNamespace(**created))
    assert (await client.post("/v1/sequences/default/next", headers=bearer(token))).json()[
        "value"
    ] == 1

    r = await client.get("/admin/v1/tenants", headers=admin)
    assert [t["slug"] for t in r.json()["items"]] == ["acme"]
    r = await client.patch("/admin/v1/tenants/acme", json={"timezone": "Asia/Tokyo"}, headers=admin)
    assert r.status_code == 200 and r.json()["timezone"] == "Asia/Tokyo"
    r = await client.post("/admin/v1/tenants/acme/suspend", headers=admin)
    assert r.json()["status"] == "suspended"
    assert (await client.get("/admin/v1/tenants/acme", headers=admin)).json()["status"] == (
        "suspended"
    )
    r = await client.post("/admin/v1/tenants/acme/resume", headers=admin)
    assert r.json()["status"] == "active"


async def test_clients_create_list_revoke_over_http(
    client: httpx.AsyncClient, app: FastAPI, admin: dict[str, str]
) -> None:
    await client.post("/admin/v1/tenants", json={"slug": "acme", "name": "Acme"}, headers=admin)
    r = await client.post(
        "/admin/v1/tenants/acme/clients",
        json={"name": "billing", "scopes": ["sequences:next"]},
        headers=admin,
    )
    assert r.status_code == 201 and r.json()["scopes"] == ["sequences:next"]
    new = r.json()
    listed = (await client.get("/admin/v1/tenants/acme/clients", headers=admin)).json()
    assert sorted(c["name"] for c in listed) == ["billing", "default"]
    assert all("secret" not in key for c in listed for key in c)
    r = await client.post(
        f"/admin/v1/tenants/acme/clients/{new['client_id']}/revoke", headers=admin
    )
    assert r.status_code == 200 and r.json()["status"] == "revoked"
    r = await request_token(client, new["client_id"], new["client_secret"])
    assert r.status_code == 401


async def test_admin_api_bad_input_is_problem_json(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    cases = [
        {"slug": "Acme", "name": "x"},
        {"slug": "acme", "name": "x", "timezone": "Mars/Olympus"},
        {"slug": "acme", "name": "x", "timezone": "America"},  # a directory of zones
        {"slug": "acme", "name": "x", "branding": {"primary_color": "red"}},
        {"slug": "acme", "name": "x", "branding": {"logo_url": "http://insecure/logo.png"}},
        {"slug": "acme", "name": "x", "plan": "platinum"},
        {"slug": "acme", "name": "x", "tid": "globex"},
        {"slug": "admin", "name": "x"},
        {"slug": "pooled", "name": "x"},
    ]
    for body in cases:
        r = await client.post("/admin/v1/tenants", json=body, headers=admin)
        assert r.status_code == 422, body
        assert r.headers["content-type"] == "application/problem+json"
    assert (await client.get("/admin/v1/tenants", headers=admin)).json()["items"] == []
    await client.post("/admin/v1/tenants", json={"slug": "acme", "name": "x"}, headers=admin)
    r = await client.post("/admin/v1/tenants", json={"slug": "acme", "name": "y"}, headers=admin)
    assert r.status_code == 409 and r.json()["type"].endswith("/tenant-exists")
    r = await client.get("/admin/v1/tenants/nope", headers=admin)
    assert r.status_code == 404 and r.json()["type"].endswith("/tenant-not-found")


async def test_tenant_tokens_cannot_use_the_admin_api(
    client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    for scopes in ["sequences:read sequences:write", "platform:admin sequences:read"]:
        r = await client.get("/admin/v1/tenants", headers=bearer(make_token("acme", scopes)))
        assert r.status_code == 403
    assert (await client.get("/admin/v1/tenants")).status_code == 401


async def test_admin_tokens_cannot_take_numbers(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    r = await client.post("/v1/sequences/default/next", headers=admin)
    assert r.status_code in (401, 403)


async def test_revoked_admin_client_loses_access(client: httpx.AsyncClient, app: FastAPI) -> None:
    creds = await app.state.tenants.create_admin_client("ops")
    headers = bearer(await token_for(client, creds))
    assert (await client.get("/admin/v1/tenants", headers=headers)).status_code == 200
    await app.state.tenants.revoke_client("", creds.client_id)
    assert (await client.get("/admin/v1/tenants", headers=headers)).status_code == 401
