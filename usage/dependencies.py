"""FastAPI dependencies of the usage and overview endpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from usage.overview import OverviewService


async def get_overview(request: Request) -> OverviewService:
    service: OverviewService = request.app.state.overview
    return service


Overview = Annotated[OverviewService, Depends(get_overview)]
