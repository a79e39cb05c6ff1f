"""FastAPI dependencies of the sequences API."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import State
from starlette.requests import ClientDisconnect
from starlette.types import Receive

from auth.dependencies import can_next
from auth.schemas import TokenPrincipal
from core.errors import PayloadTooLarge, UnsupportedMediaType
from core.limits import JSON_ONLY, BodyDeadline, is_json
from sequences.schemas import NAME_MAX, NAME_PATTERN, NextRequest
from sequences.service import SequenceService


async def get_sequence_service(request: Request) -> SequenceService:
    service: SequenceService = request.app.state.sequences
    return service


Sequences = Annotated[SequenceService, Depends(get_sequence_service)]


_NAME = re.compile(NAME_PATTERN)
MAX_NEXT_BODY = 4096
NAME_DESCRIPTION = "1-64 of a-z 0-9 . _ -, starting with a letter or digit."


async def _body(deadline: BodyDeadline, receive: Receive) -> bytes:
    """The request body; a small one arrives in one ASGI message (Starlette's
    ``request.body()`` costs a stream generator and a weakref set on top)."""
    until = deadline.start()
    message = await deadline.receive(receive, until)
    chunks = [message.get("body", b"")]
    size = len(chunks[0])
    while True:
        if size > MAX_NEXT_BODY:  # `{"count": n}` is a few bytes; never buffer megabytes
            raise PayloadTooLarge(f"The body of next must be at most {MAX_NEXT_BODY} bytes.")
        if not message.get("more_body"):
            break
        message = await deadline.receive(receive, until)
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
    if message["type"] == "http.disconnect":
        raise ClientDisconnect()
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


@dataclass(frozen=True, slots=True)
class NextCall:
    tenant: str
    service: SequenceService
    name: str
    count: int
    body: bytes  # as received (an Idempotency-Key fingerprints it)
    subject: str  # the caller, for ledger entries
    client_id: str
    reference: str | None = None


async def next_call(request: Request) -> NextCall:
    """Caller (``sequences:next``), name and ``count`` of ``POST .../next``, in one go.

    The hot path. FastAPI spends a full resolution pass (query string, cookies, cache
    keys) on every dependency level and validates each declared parameter through
    pydantic, so ``next`` declares none and this reads everything once, with the
    same outcomes as the declared forms: 401/403 first, then 422 problem+json for a
    bad name or body. ``next_numbers``' ``openapi_extra`` documents what it reads.
    """
    principal = await can_next(request)
    return await read_next(
        request.app.state,
        principal,
        request.path_params["name"],
        request.headers.get("content-type"),
        request.receive,
    )


async def read_next(
    state: State, principal: TokenPrincipal, name: str, content_type: str | None, receive: Receive
) -> NextCall:
    """``next_call`` once the caller is known, from what a request carries (the fast
    path, ``api.fastpath``, passes them straight from the ASGI scope)."""
    if not _NAME.fullmatch(name):
        raise RequestValidationError(
            [
                {
                    "type": "string_pattern_mismatch",
                    "loc": ("path", "name"),
                    "msg": f"String should match pattern '{NAME_PATTERN}'",
                    "input": name,
                }
            ]
        )
    raw = await _body(state.body_deadline, receive)
    count, reference = 1, None
    if raw.strip():  # no body, or only blanks: one number; `null` is no object: a 422
        if not is_json(content_type):
            raise UnsupportedMediaType(JSON_ONLY)
        try:
            parsed = NextRequest.model_validate_json(raw)
            count, reference = parsed.count, parsed.reference
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_context=False)
            raise RequestValidationError(
                [{**e, "loc": ("body", *e["loc"])} for e in errors]
            ) from None
    return NextCall(
        principal.tenant,
        state.sequences,
        name,
        count,
        raw,
        principal.subject,
        principal.client_id,
        reference,
    )


NamePath = Annotated[
    str,
    Path(pattern=NAME_PATTERN, max_length=NAME_MAX, description=NAME_DESCRIPTION),
]
