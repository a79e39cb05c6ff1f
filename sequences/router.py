"""HTTP endpoints of the sequences API; the tenant always comes from the token."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import PlainTextResponse
from starlette.datastructures import State

from audit.service import Actor
from auth.dependencies import CanRead, CanWrite, PlatformAdmin, authenticates_itself, can_next
from auth.schemas import TokenPrincipal
from core.errors import Unprocessable
from core.limits import BodyLimitedRoute
from core.openapi import errors
from core.pagination import AfterQuery, LimitQuery
from core.requestctx import note_numbers
from idempotency.dependencies import (
    IDEMPOTENCY_PARAMETER,
    IDEMPOTENT,
    Idempotency,
    fingerprint,
    idempotency_key,
    once,
)
from idempotency.service import Claim, IdempotencyService
from sequences.dependencies import NAME_DESCRIPTION, NamePath, NextCall, Sequences, next_call
from sequences.errors import (
    CounterMoved,
    LedgerKept,
    NotALedger,
    SequenceExhausted,
    SequenceExists,
)
from sequences.schemas import (
    NAME_MAX,
    NAME_PATTERN,
    AdvanceRequest,
    NextOut,
    SequenceCreate,
    SequenceOut,
    SequencePage,
    SequencePatch,
)
from sequences.service import SequenceService, next_json, recorded_allocation
from tenants.dependencies import SlugPath, Tenants

router = APIRouter(prefix="/v1/sequences", tags=["sequences"], route_class=BodyLimitedRoute)
seed_router = APIRouter(tags=["compatibility"])
admin_router = APIRouter(prefix="/admin/v1/tenants/{slug}/sequences", tags=["admin"])


# First: routes match in order, and this is the hot one.
@router.post(
    "/{name}/next",
    response_model=NextOut,
    responses=errors(SequenceExhausted, NotALedger),
    # next_call reads the name and body itself (see there); document them as FastAPI would
    # (api.openapi adds NextRequest to the components, with this instance's batch limit).
    openapi_extra={
        "parameters": [
            {
                "name": "name",
                "in": "path",
                "required": True,
                "description": NAME_DESCRIPTION,
                "schema": {"type": "string", "pattern": NAME_PATTERN, "maxLength": NAME_MAX},
            },
            IDEMPOTENCY_PARAMETER,
        ],
        "requestBody": {
            "required": False,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/NextRequest"}}
            },
        },
    },
)
@authenticates_itself(can_next)
async def next_numbers(request: Request) -> Response:
    """Take the next number, or a contiguous range of `count` numbers."""
    call = await next_call(request)
    key = idempotency_key(request)
    if key is None:
        return _json(await issue(request.app.state, call, None))
    idem: IdempotencyService = request.app.state.idempotency

    async def take(claim: Claim | None) -> Response:
        return _json(await issue(request.app.state, call, claim))

    return await idem.guard(call.tenant, key, fingerprint(request, call.body), take)


def _json(body: bytes) -> Response:
    # The hot path: serialised once, skipping FastAPI's re-validation of the response
    # model and jsonable_encoder (response_model above still documents the shape).
    return Response(body, media_type="application/json")


async def issue(state: State, call: NextCall, claim: Claim | None) -> bytes:
    """The numbers of one ``next`` call, as its JSON answer (also the fast path's)."""
    service, tenant, name, count = call.service, call.tenant, call.name, call.count
    if count > 1:  # one number is within every limit: skip the lookups on the hot path
        limit = service.max_batch
        plan_limit = await state.tenants.max_batch_of(tenant)
        if plan_limit is not None and plan_limit < limit:
            limit = plan_limit  # the tenant's plan caps batches below the instance's maximum
        if count > limit:
            raise Unprocessable(f"count must be at most {limit}.")
    seq = await service.get(tenant, name)
    if claim is not None and claim.allocation is not None:
        # An earlier attempt with this key took its numbers, then its process stopped.
        alloc = recorded_allocation(claim.allocation)
    else:
        alloc = await service.next(
            tenant,
            name,
            count,
            actor=Actor(call.subject, call.client_id),
            reference=call.reference,
            idempotency_key=claim.key if claim else None,
        )
    note_numbers(alloc.count)
    return next_json(seq, alloc)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=SequenceOut,
    responses=errors(SequenceExists),
    openapi_extra=IDEMPOTENT,
)
async def create_sequence(
    request: Request,
    spec: SequenceCreate,
    principal: CanWrite,
    service: Sequences,
    idem: Idempotency,
) -> Response:
    """Create a sequence for the caller's tenant."""

    async def create(_claim: Claim | None = None) -> Response:
        await service.create(principal.tenant, spec, actor=Actor.of(principal))
        out = await service.describe(principal.tenant, spec.name)
        return Response(out.model_dump_json(), status_code=201, media_type="application/json")

    return await once(request, idem, principal.tenant, create)


@router.get("", response_model=SequencePage)
async def list_sequences(
    principal: CanRead, service: Sequences, after: AfterQuery = None, limit: LimitQuery = 100
) -> SequencePage:
    """List the tenant's sequences by name, a page at a time."""
    return await _page(service, principal.tenant, after, limit)


async def _page(
    service: SequenceService, tenant: str, after: str | None, limit: int
) -> SequencePage:
    seqs = await service.list(tenant, after=after, limit=limit)
    items = await service.describe_many(tenant, seqs)
    cursor = items[-1].name if len(items) == limit else None
    return SequencePage(items=items, next_cursor=cursor)


@router.get("/{name}", response_model=SequenceOut)
async def get_sequence(name: NamePath, principal: CanRead, service: Sequences) -> SequenceOut:
    """Settings, the last number issued and the next one (nothing is consumed)."""
    return await service.describe(principal.tenant, name)


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(LedgerKept),
    openapi_extra=IDEMPOTENT,
)
async def delete_sequence(
    request: Request, name: NamePath, principal: CanWrite, service: Sequences, idem: Idempotency
) -> Response:
    """Delete a sequence and its counters."""

    async def delete(_claim: Claim | None = None) -> Response:
        await service.delete(principal.tenant, name, actor=Actor.of(principal))
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return await once(request, idem, principal.tenant, delete)


@router.patch(
    "/{name}", response_model=SequenceOut, responses=errors(CounterMoved), openapi_extra=IDEMPOTENT
)
async def update_sequence(
    request: Request,
    name: NamePath,
    patch: SequencePatch,
    principal: CanWrite,
    service: Sequences,
    idem: Idempotency,
) -> Response:
    """Change format, bounds, step or cycle; numbers already issued are never reissued."""

    async def update(_claim: Claim | None = None) -> Response:
        out = await service.update(principal.tenant, name, patch, actor=Actor.of(principal))
        return Response(out.model_dump_json(), media_type="application/json")

    return await once(request, idem, principal.tenant, update)


@router.post(
    "/{name}/advance",
    response_model=SequenceOut,
    responses=errors(CounterMoved),
    openapi_extra=IDEMPOTENT,
)
async def advance_sequence(
    request: Request,
    name: NamePath,
    body: AdvanceRequest,
    principal: CanWrite,
    service: Sequences,
    idem: Idempotency,
) -> Response:
    """Move the counter forward: the next number issued will be `to` (never backwards)."""

    async def advance(_claim: Claim | None = None) -> Response:
        out = await service.advance(principal.tenant, name, body.to, actor=Actor.of(principal))
        return Response(out.model_dump_json(), media_type="application/json")

    return await once(request, idem, principal.tenant, advance)


@seed_router.get(
    "/getCounter",
    response_class=PlainTextResponse,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string", "pattern": "^-?[0-9]+$"}}}},
        **errors(SequenceExhausted),
    },
)
@authenticates_itself(can_next)
async def seed_counter(request: Request) -> Response:
    """The next number of the tenant's `default` sequence, as plain text (seed API)."""
    # Like next_numbers, it reads the caller itself (no declared dependencies); the fast
    # path (api.fastpath) runs the same two steps, can_next's and seed_number.
    principal = await can_next(request)
    return PlainTextResponse(await seed_number(request.app.state, principal))


async def seed_number(state: State, principal: TokenPrincipal) -> str:
    """The seed API's answer for a caller already authorised (also the fast path's)."""
    service: SequenceService = state.sequences
    alloc = await service.next_default(principal.tenant)
    note_numbers(alloc.count)
    return str(alloc.first)


@admin_router.get("", response_model=SequencePage)
async def list_tenant_sequences(
    slug: SlugPath,
    _: PlatformAdmin,
    tenants: Tenants,
    service: Sequences,
    after: AfterQuery = None,
    limit: LimitQuery = 100,
) -> SequencePage:
    """Any tenant's sequences, as the tenant sees them (platform admins; 404 if unknown)."""
    await tenants.get(slug)
    return await _page(service, slug, after, limit)
