"""Plain builder functions for tenant/OAuth tests (no factory classes)."""

from __future__ import annotations

import base64
from typing import Any

import httpx

from tenants.schemas import ClientCreate, Onboarded, TenantCreate
from tenants.service import TenantService


async def make_tenant(service: TenantService, slug: str = "acme", **overrides: Any) -> Onboarded:
    """Onboard a tenant the way ``tally tenants create`` does."""
    client = overrides.pop("client", None)
    spec = TenantCreate.model_validate({"slug": slug, "name": slug.title(), **overrides})
    return await service.onboard(spec, ClientCreate.model_validate(client) if client else None)


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


async def request_token(
    client: httpx.AsyncClient, client_id: str, secret: str, **form: str
) -> httpx.Response:
    return await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", **form},
        headers=basic(client_id, secret),
    )


async def token_for(client: httpx.AsyncClient, creds: Any, **form: str) -> str:
    """An access token for onboarded credentials (anything with client_id/client_secret)."""
    r = await request_token(client, creds.client_id, creds.client_secret, **form)
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token
