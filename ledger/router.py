"""HTTP endpoints of reservations, the ledger and the gap report (tenant from the token;
admins read any tenant's ledger under ``/admin/v1/tenants/{slug}/…``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel

from audit.service import Actor
from auth.dependencies import CanNext, CanRead, PlatformAdmin
from core.limits import BodyLimitedRoute
from core.openapi import errors
from core.pagination import LimitQuery
from core.requestctx import note_numbers
from core.timestamps import Timestamp, timestamp_query
from idempotency.dependencies import IDEMPOTENT, Idempotency, once
from idempotency.service import Claim
from ledger.dependencies import (
    Ledger,
    PeriodQuery,
    ReservationPath,
    StateQuery,
    ValueCursor,
    wants_csv,
)
from ledger.errors import ReservationClosed
from ledger.export import csv_text
from ledger.schemas import (
    CommitRequest,
    EntryOut,
    Gap,
    GapReport,
    LedgerPage,
    ReservationOut,
    ReserveRequest,
    VoidRequest,
)
from ledger.service import LedgerService
from sequences.dependencies import NamePath
from sequences.errors import NotALedger, SequenceExhausted
from tenants.dependencies import SlugPath, Tenants

router = APIRouter(prefix="/v1/sequences", tags=["ledger"], route_class=BodyLimitedRoute)
admin_router = APIRouter(prefix="/admin/v1/tenants/{slug}/sequences", tags=["admin"])

CSV = {"text/csv": {"schema": {"type": "string"}}}
LEDGER_READ: dict[int | str, dict[str, Any]] = {200: {"content": CSV}, **errors(NotALedger)}
FromQuery = Annotated[
    Timestamp | None, timestamp_query("Issued at or after (RFC 3339).", alias="from")
]
ToQuery = Annotated[Timestamp | None, timestamp_query("Issued before (RFC 3339).", alias="to")]


def _json(model: BaseModel, status_code: int = 200) -> Response:
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")


# -- reservations ----------------------------------------------------------------------
@router.post(
    "/{name}/reservations",
    status_code=status.HTTP_201_CREATED,
    response_model=ReservationOut,
    responses=errors(NotALedger, SequenceExhausted),
    openapi_extra=IDEMPOTENT,
)
async def reserve(
    request: Request,
    name: NamePath,
    principal: CanNext,
    service: Ledger,
    idem: Idempotency,
    body: ReserveRequest | None = None,
) -> Response:
    """Reserve the next number (an invoice draft); it expires unless committed in time."""
    spec = body or ReserveRequest()

    async def run(claim: Claim | None) -> Response:
        if claim is not None and claim.allocation is not None:
            entry = await service.recorded(principal.tenant, name, claim.allocation)
        else:
            entry = await service.reserve(
                principal.tenant,
                name,
                ttl_seconds=spec.ttl_seconds,
                reference=spec.reference,
                actor=Actor.of(principal),
                idempotency_key=claim.key if claim else None,
            )
            note_numbers(1)  # for the access line; a replay issues none
        return _json(ReservationOut.of(entry), 201)

    return await once(request, idem, principal.tenant, run)


@router.get(
    "/{name}/reservations/{reservation}",
    response_model=ReservationOut,
    responses=errors(NotALedger),
)
async def get_reservation(
    name: NamePath, reservation: ReservationPath, principal: CanRead, service: Ledger
) -> ReservationOut:
    """A reservation's current state (`expired` from its `expires_at` on)."""
    return ReservationOut.of(await service.get(principal.tenant, name, reservation))


@router.post(
    "/{name}/reservations/{reservation}/commit",
    response_model=ReservationOut,
    responses=errors(NotALedger, ReservationClosed),
    openapi_extra=IDEMPOTENT,
)
async def commit_reservation(
    request: Request,
    name: NamePath,
    reservation: ReservationPath,
    principal: CanNext,
    service: Ledger,
    idem: Idempotency,
    body: CommitRequest | None = None,
) -> Response:
    """Commit the number (the invoice was issued); committing again answers the same."""
    reference = body.reference if body else None

    async def run(_claim: Claim | None) -> Response:
        entry = await service.commit(
            principal.tenant, name, reservation, reference=reference, actor=Actor.of(principal)
        )
        return _json(ReservationOut.of(entry))

    return await once(request, idem, principal.tenant, run)


@router.post(
    "/{name}/reservations/{reservation}/void",
    response_model=ReservationOut,
    responses=errors(NotALedger, ReservationClosed),
    openapi_extra=IDEMPOTENT,
)
async def void_reservation(
    request: Request,
    name: NamePath,
    reservation: ReservationPath,
    body: VoidRequest,
    principal: CanNext,
    service: Ledger,
    idem: Idempotency,
) -> Response:
    """Void the number (the draft was cancelled): never issued again, kept on record."""

    async def run(_claim: Claim | None) -> Response:
        entry = await service.void(
            principal.tenant, name, reservation, reason=body.reason, actor=Actor.of(principal)
        )
        return _json(ReservationOut.of(entry))

    return await once(request, idem, principal.tenant, run)


# -- the ledger and the gap report -----------------------------------------------------
LEDGER_FIELDS = list(EntryOut.model_fields)
GAP_FIELDS = list(Gap.model_fields)


def _csv(rows: list[BaseModel], fields: list[str], headers: dict[str, str]) -> Response:
    body = csv_text(rows, fields)
    return Response(body, media_type="text/csv; charset=utf-8", headers=headers)


async def _ledger(
    request: Request,
    service: LedgerService,
    tenant: str,
    name: str,
    *,
    period: str | None,
    state: str | None,
    since: datetime | None,
    until: datetime | None,
    after: int | None,
    limit: int,
) -> Response:
    entries = await service.entries(
        tenant,
        name,
        period=period,
        states=[state] if state else None,
        since=since,
        until=until,
        after=after,
        limit=limit,
    )
    items = [EntryOut.of(e) for e in entries]
    cursor = str(items[-1].value) if len(items) == limit else None
    if wants_csv(request):
        link = {"Link": f'<{request.url.include_query_params(after=cursor)}>; rel="next"'}
        return _csv(list(items), LEDGER_FIELDS, link if cursor else {})
    return _json(LedgerPage(items=items, next_cursor=cursor))


async def _gaps(
    request: Request, service: LedgerService, tenant: str, name: str, period: str | None
) -> Response:
    report = await service.gaps(tenant, name, period=period)
    if wants_csv(request):
        return _csv(list(report.gaps), GAP_FIELDS, {})
    return _json(report)


@router.get("/{name}/ledger", response_model=LedgerPage, responses=LEDGER_READ)
async def ledger(
    request: Request,
    name: NamePath,
    principal: CanRead,
    service: Ledger,
    period: PeriodQuery = None,
    state: StateQuery = None,
    since: FromQuery = None,
    until: ToQuery = None,
    after: ValueCursor = None,
    limit: LimitQuery = 100,
) -> Response:
    """Every number of a period in order, with its state (`Accept: text/csv` for CSV)."""
    return await _ledger(
        request,
        service,
        principal.tenant,
        name,
        period=period,
        state=state,
        since=since,
        until=until,
        after=after,
        limit=limit,
    )


@router.get("/{name}/gaps", response_model=GapReport, responses=LEDGER_READ)
async def gaps(
    request: Request,
    name: NamePath,
    principal: CanRead,
    service: Ledger,
    period: PeriodQuery = None,
) -> Response:
    """Where every number went: counts per state and each number not committed."""
    return await _gaps(request, service, principal.tenant, name, period)


@admin_router.get("/{name}/ledger", response_model=LedgerPage, responses=LEDGER_READ)
async def tenant_ledger(
    request: Request,
    slug: SlugPath,
    name: NamePath,
    _: PlatformAdmin,
    tenants: Tenants,
    service: Ledger,
    period: PeriodQuery = None,
    state: StateQuery = None,
    since: FromQuery = None,
    until: ToQuery = None,
    after: ValueCursor = None,
    limit: LimitQuery = 100,
) -> Response:
    """Any tenant's ledger, as the tenant sees it (platform admins; 404 if unknown)."""
    await tenants.get(slug)
    return await _ledger(
        request,
        service,
        slug,
        name,
        period=period,
        state=state,
        since=since,
        until=until,
        after=after,
        limit=limit,
    )


@admin_router.get("/{name}/gaps", response_model=GapReport, responses=LEDGER_READ)
async def tenant_gaps(
    request: Request,
    slug: SlugPath,
    name: NamePath,
    _: PlatformAdmin,
    tenants: Tenants,
    service: Ledger,
    period: PeriodQuery = None,
) -> Response:
    """Any tenant's gap report (platform admins; 404 if the tenant is unknown)."""
    await tenants.get(slug)
    return await _gaps(request, service, slug, name, period)
