"""The admin API (``/admin/v1``, platform-admin tokens only): tenants and their clients.

Here, and only here, a tenant is named in the path: the caller administers the
platform and acts for no tenant of its own.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from audit.service import Actor
from auth.dependencies import PlatformAdmin
from core.limits import BodyLimitedRoute
from core.openapi import errors
from core.pagination import LimitQuery
from tenants.dependencies import ClientIdPath, SlugPath, Tenants
from tenants.errors import ClientRevoked, DomainTaken, IssuerTaken, TenantExists
from tenants.schemas import (
    ClientCreate,
    ClientOut,
    NewClient,
    Onboarded,
    TenantCreate,
    TenantOut,
    TenantPage,
    TenantUpdate,
)
from usage.dependencies import Overview

router = APIRouter(prefix="/admin/v1", tags=["admin"], route_class=BodyLimitedRoute)


@router.get("/tenants", response_model=TenantPage)
async def list_tenants(
    _: PlatformAdmin,
    tenants: Tenants,
    overview: Overview,
    after: Annotated[str | None, Query(max_length=32, description="Cursor.")] = None,
    limit: LimitQuery = 100,
) -> TenantPage:
    """Tenants by slug, a page at a time, with sequence counts and numbers today / 30 days."""
    page = await tenants.list_tenants(after=after, limit=limit)
    items = await overview.list_items(page)
    return TenantPage(items=items, next_cursor=page[-1].slug if len(page) == limit else None)


@router.post(
    "/tenants",
    status_code=status.HTTP_201_CREATED,
    response_model=Onboarded,
    responses=errors(TenantExists, DomainTaken, IssuerTaken),
)
async def create_tenant(spec: TenantCreate, admin: PlatformAdmin, tenants: Tenants) -> Onboarded:
    """Onboard a tenant: record, `default` sequence and first client (secret shown once)."""
    return await tenants.onboard(spec, actor=Actor.of(admin))


@router.get("/tenants/{slug}", response_model=TenantOut)
async def get_tenant(slug: SlugPath, _: PlatformAdmin, tenants: Tenants) -> TenantOut:
    """One tenant."""
    return await tenants.get(slug)


@router.patch(
    "/tenants/{slug}", response_model=TenantOut, responses=errors(DomainTaken, IssuerTaken)
)
async def update_tenant(
    slug: SlugPath, patch: TenantUpdate, admin: PlatformAdmin, tenants: Tenants
) -> TenantOut:
    """Change some of a tenant's settings."""
    return await tenants.update(slug, patch, actor=Actor.of(admin))


@router.post("/tenants/{slug}/suspend", response_model=TenantOut)
async def suspend_tenant(slug: SlugPath, admin: PlatformAdmin, tenants: Tenants) -> TenantOut:
    """Suspend: no new tokens, existing tokens refused within the lifecycle bound."""
    return await tenants.suspend(slug, actor=Actor.of(admin))


@router.post("/tenants/{slug}/resume", response_model=TenantOut)
async def resume_tenant(slug: SlugPath, admin: PlatformAdmin, tenants: Tenants) -> TenantOut:
    """Lift a suspension."""
    return await tenants.resume(slug, actor=Actor.of(admin))


@router.get("/tenants/{slug}/clients", response_model=list[ClientOut])
async def list_clients(slug: SlugPath, _: PlatformAdmin, tenants: Tenants) -> list[ClientOut]:
    """A tenant's API clients (never their secrets)."""
    return await tenants.list_clients(slug)


@router.post(
    "/tenants/{slug}/clients", status_code=status.HTTP_201_CREATED, response_model=NewClient
)
async def create_client(
    slug: SlugPath, admin: PlatformAdmin, tenants: Tenants, spec: ClientCreate | None = None
) -> NewClient:
    """A new API client for the tenant; the secret is in this answer only."""
    return await tenants.create_client(slug, spec or ClientCreate(), actor=Actor.of(admin))


@router.post(
    "/tenants/{slug}/clients/{client_id}/revoke",
    response_model=ClientOut,
    responses=errors(ClientRevoked),
)
async def revoke_client(
    slug: SlugPath, client_id: ClientIdPath, admin: PlatformAdmin, tenants: Tenants
) -> ClientOut:
    """Revoke a client: no new tokens, its tokens refused within the lifecycle bound."""
    return await tenants.revoke_client(slug, client_id, actor=Actor.of(admin))
