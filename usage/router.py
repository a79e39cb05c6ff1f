"""HTTP endpoints of usage over time: a tenant's own, and the platform admin's view."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from auth.dependencies import CanRead, PlatformAdmin
from core.timestamps import Timestamp, timestamp_query
from sequences.schemas import NAME_PATTERN
from tenants.dependencies import SlugPath, Tenants
from usage.dependencies import Overview
from usage.schemas import Granularity, OverviewOut, UsageOut
from usage.service import UsageService

router = APIRouter(prefix="/v1/usage", tags=["usage"])
admin_router = APIRouter(prefix="/admin/v1/tenants/{slug}/usage", tags=["admin"])
overview_router = APIRouter(prefix="/admin/v1", tags=["admin"])


async def get_usage(request: Request) -> UsageService:
    service: UsageService = request.app.state.usage
    return service


Usage = Annotated[UsageService, Depends(get_usage)]
SequenceQuery = Annotated[
    str | None, Query(pattern=NAME_PATTERN, description="One sequence; omitted: all of them.")
]
GranularityQuery = Annotated[Granularity, Query(description="UTC hours or UTC days.")]
FromQuery = Annotated[
    Timestamp | None,
    timestamp_query(
        "Start (inclusive; default: 24 hours or 30 days back), RFC 3339.", alias="from"
    ),
]
ToQuery = Annotated[
    Timestamp | None,
    timestamp_query("End (exclusive; default: the current bucket's end), RFC 3339."),
]


@dataclass(frozen=True, slots=True)
class UsageQuery:
    sequence: str | None
    granularity: Granularity
    start: datetime | None
    end: datetime | None


async def usage_query(
    sequence: SequenceQuery = None,
    granularity: GranularityQuery = Granularity.day,
    start: FromQuery = None,
    to: ToQuery = None,
) -> UsageQuery:
    return UsageQuery(sequence, granularity, start, to)


Query_ = Annotated[UsageQuery, Depends(usage_query)]


@router.get("", response_model=UsageOut)
async def own_usage(principal: CanRead, usage: Usage, q: Query_) -> UsageOut:
    """Numbers the caller's tenant took over time, per hour or day, every bucket listed."""
    return await usage.series(principal.tenant, **asdict(q))


@admin_router.get("", response_model=UsageOut)
async def tenant_usage(
    slug: SlugPath, _: PlatformAdmin, tenants: Tenants, usage: Usage, q: Query_
) -> UsageOut:
    """Any tenant's usage over time (platform admins; 404 for an unknown tenant)."""
    await tenants.get(slug)
    return await usage.series(slug, **asdict(q))


@overview_router.get("/overview", response_model=OverviewOut)
async def overview(
    _: PlatformAdmin,
    service: Overview,
    top: Annotated[int, Query(ge=1, le=100, description="How many top tenants.")] = 10,
) -> OverviewOut:
    """Tenants by status, numbers issued today and in 30 days, top tenants, sequences near max."""
    return await service.overview(top=top)
