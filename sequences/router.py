"""HTTP endpoints of the sequences API; the tenant always comes from the token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from fastapi.responses import PlainTextResponse

from auth.dependencies import CanNext, CanRead, CanWrite
from core.errors import Unprocessable
from sequences.dependencies import NamePath, NextContext, Sequences
from sequences.schemas import NextOut, NextRequest, SequenceCreate, SequenceOut, SequencePage
from sequences.service import next_out

router = APIRouter(prefix="/v1/sequences", tags=["sequences"])
seed_router = APIRouter(tags=["compatibility"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=SequenceOut)
async def create_sequence(
    spec: SequenceCreate, principal: CanWrite, service: Sequences
) -> SequenceOut:
    """Create a sequence for the caller's tenant."""
    await service.create(principal.tenant, spec)
    return await service.describe(principal.tenant, spec.name)


@router.get("", response_model=SequencePage)
async def list_sequences(
    principal: CanRead,
    service: Sequences,
    after: Annotated[
        str | None, Query(max_length=64, description="Cursor from a previous page.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> SequencePage:
    """List the tenant's sequences by name, a page at a time."""
    seqs = await service.list(principal.tenant, after=after, limit=limit)
    items = [await service.describe(principal.tenant, s.name) for s in seqs]
    cursor = items[-1].name if len(items) == limit else None
    return SequencePage(items=items, next_cursor=cursor)


@router.get("/{name}", response_model=SequenceOut)
async def get_sequence(name: NamePath, principal: CanRead, service: Sequences) -> SequenceOut:
    """Settings, the last number issued and the next one (nothing is consumed)."""
    return await service.describe(principal.tenant, name)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_sequence(name: NamePath, principal: CanWrite, service: Sequences) -> Response:
    """Delete a sequence and its counters."""
    await service.delete(principal.tenant, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{name}/next",
    response_model=NextOut,
    # NextContext reads the body itself (see there); document it as FastAPI would.
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": NextRequest.model_json_schema()}},
        }
    },
)
async def next_numbers(name: NamePath, call: NextContext) -> Response:
    """Take the next number, or a contiguous range of `count` numbers."""
    service, tenant, count = call.service, call.tenant, call.count
    if count > service.max_batch:
        raise Unprocessable(f"count must be at most {service.max_batch}.")
    seq = await service.get(tenant, name)
    alloc = await service.next(tenant, name, count)
    # The hot path: serialise once, skipping FastAPI's re-validation of the response
    # model and jsonable_encoder (response_model above still documents the shape).
    return Response(next_out(seq, alloc).model_dump_json(), media_type="application/json")


@seed_router.get("/getCounter", response_class=PlainTextResponse)
async def get_counter(principal: CanNext, service: Sequences) -> PlainTextResponse:
    """The next number of the tenant's `default` sequence, as plain text (seed API)."""
    alloc = await service.next_default(principal.tenant)
    return PlainTextResponse(str(alloc.first))
