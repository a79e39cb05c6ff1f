"""Reading the ``Idempotency-Key`` header (no FastAPI parameter: the hot ``next`` reads
it itself, and the other writes need the raw body alongside it)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request, Response

from idempotency.errors import InvalidIdempotencyKey
from idempotency.service import Claim, IdempotencyService

HEADER = "idempotency-key"
MAX_KEY_LENGTH = 255
KEY_PATTERN = rf"^[ -~]{{1,{MAX_KEY_LENGTH}}}$"  # printable ASCII, as idempotency_key checks
# Every idempotent write documents the header alike (``openapi_extra=IDEMPOTENT``);
# api.openapi adds the 400/409/422 it can bring.
IDEMPOTENCY_PARAMETER: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": f"1-{MAX_KEY_LENGTH} printable ASCII characters. A retry with the same key"
    " and body gets the first answer again (header `Idempotent-Replayed: true`) and consumes"
    " nothing; another body with the key is a 422, a retry while the first is running a 409.",
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_KEY_LENGTH,
        "pattern": KEY_PATTERN,
    },
}
IDEMPOTENT: dict[str, Any] = {"parameters": [IDEMPOTENCY_PARAMETER]}


def idempotency_key(request: Request) -> str | None:
    """The request's key, or ``None`` without the header; 400 if it is malformed."""
    values = request.headers.getlist(HEADER)
    if not values:
        return None
    if len(values) > 1:
        raise InvalidIdempotencyKey("Send at most one Idempotency-Key header.")
    key = values[0]
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not all(" " <= c <= "~" for c in key):
        raise InvalidIdempotencyKey(
            f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} printable ASCII characters."
        )
    return key


def fingerprint(request: Request, body: bytes) -> str:
    """What makes two requests "the same": method, path and body (JSON compared as data,
    so a client that re-serialises its retry with other spacing is not refused)."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        canonical = body
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.scope["path"].encode(), canonical):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


async def get_idempotency_service(request: Request) -> IdempotencyService:
    service: IdempotencyService = request.app.state.idempotency
    return service


Idempotency = Annotated[IdempotencyService, Depends(get_idempotency_service)]


async def once(
    request: Request,
    idem: IdempotencyService,
    tenant: str,
    run: Callable[[Claim | None], Awaitable[Response]],
) -> Response:
    """Run a write, under the request's ``Idempotency-Key`` if it has one."""
    key = idempotency_key(request)
    if key is None:
        return await run(None)
    return await idem.guard(tenant, key, fingerprint(request, await request.body()), run)
