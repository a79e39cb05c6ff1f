"""FastAPI dependencies of the sequences API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from auth.dependencies import can_next
from sequences.schemas import NAME_PATTERN, NextRequest
from sequences.service import SequenceService


async def get_sequence_service(request: Request) -> SequenceService:
    service: SequenceService = request.app.state.sequences
    return service


Sequences = Annotated[SequenceService, Depends(get_sequence_service)]


@dataclass(frozen=True, slots=True)
class NextCall:
    tenant: str
    service: SequenceService
    count: int


async def next_call(request: Request) -> NextCall:
    """Caller (``sequences:next``), service and ``count`` of ``POST .../next`` in one go.

    The hot path: FastAPI pays a full dependency-resolution pass per dependency and
    per request-body field, so ``next`` takes this one dependency instead of a chain
    of four, and reads its small optional body with one ``model_validate_json``.
    Errors are the same as the declared forms give (401/403, 422 problem+json).
    """
    principal = await can_next(request)
    raw = await request.body()
    count = 1
    if raw.strip() not in (b"", b"null"):
        try:
            count = NextRequest.model_validate_json(raw).count
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_context=False)
            raise RequestValidationError(
                [{**e, "loc": ("body", *e["loc"])} for e in errors]
            ) from None
    return NextCall(principal.tenant, request.app.state.sequences, count)


NextContext = Annotated[NextCall, Depends(next_call)]
NamePath = Annotated[
    str,
    Path(
        pattern=NAME_PATTERN,
        description="1-64 of a-z 0-9 . _ -, starting with a letter or digit.",
    ),
]
