"""HTTP endpoints of the audit trail: a tenant's own, and the platform admin's view."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from audit.dependencies import Audit
from audit.schemas import TENANT_PATTERN, AuditPage, page
from auth.dependencies import CanRead, PlatformAdmin
from core.pagination import AfterQuery, LimitQuery

router = APIRouter(prefix="/v1/audit", tags=["audit"])
admin_router = APIRouter(prefix="/admin/v1/audit", tags=["admin"])


@router.get("", response_model=AuditPage)
async def list_own_audit(
    principal: CanRead, audit: Audit, after: AfterQuery = None, limit: LimitQuery = 100
) -> AuditPage:
    """The caller's tenant's administrative changes, oldest first."""
    return page(await audit.list(principal.tenant, after=after, limit=limit), limit)


@admin_router.get("", response_model=AuditPage)
async def list_tenant_audit(
    _admin: PlatformAdmin,
    audit: Audit,
    tenant: Annotated[
        str,
        Query(
            pattern=f"^$|{TENANT_PATTERN}",
            description="Tenant slug; empty (`?tenant=`): the platform trail (admin clients).",
        ),
    ],
    after: AfterQuery = None,
    limit: LimitQuery = 100,
) -> AuditPage:
    """Any tenant's administrative changes, or the platform's, oldest first (platform admins)."""
    return page(await audit.list(tenant, after=after, limit=limit), limit)
