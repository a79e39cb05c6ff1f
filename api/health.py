"""Liveness and readiness probes (GET, and HEAD for load balancers that send it)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from core.openapi import errors
from storage.errors import StoreUnavailable

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses=errors(StoreUnavailable))
async def readyz(request: Request) -> dict[str, str]:
    """The store answers; 503 problem+json otherwise."""
    await request.app.state.store.ping()
    return {"status": "ready", "store": request.app.state.store.kind}


# HEAD answers like GET without a body; kept out of the schema (one operation per probe).
router.add_api_route("/healthz", healthz, methods=["HEAD"], include_in_schema=False)
router.add_api_route("/readyz", readyz, methods=["HEAD"], include_in_schema=False)
