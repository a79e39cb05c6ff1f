"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter, Request

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> dict[str, str]:
    """The store answers; 503 problem+json otherwise."""
    await request.app.state.store.ping()
    return {"status": "ready", "store": request.app.state.store.kind}
