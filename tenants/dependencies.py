"""FastAPI dependencies of the admin API."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from tenants.schemas import SLUG_MAX, SLUG_PATTERN
from tenants.service import TenantService


def get_tenant_service(request: Request) -> TenantService:
    service: TenantService = request.app.state.tenants
    return service


Tenants = Annotated[TenantService, Depends(get_tenant_service)]
SlugPath = Annotated[
    str, Path(pattern=SLUG_PATTERN, max_length=SLUG_MAX, description="The tenant's slug.")
]
ClientIdPath = Annotated[
    str, Path(pattern=r"^[a-z][a-z0-9-]{0,30}[a-z0-9]\.[0-9a-f]{16}$", description="Client id.")
]
