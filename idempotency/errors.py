"""Idempotency errors.

TallyError
├── BadRequest (400)
│   └── InvalidIdempotencyKey     not 1-255 printable ASCII characters, or sent twice
├── Conflict (409)
│   └── RequestInFlight           the first request with this key is still running
└── Unprocessable (422)
    └── IdempotencyKeyReused      the key was used for another path or another body
"""

from __future__ import annotations

from core.errors import BadRequest, Conflict, Unprocessable


class InvalidIdempotencyKey(BadRequest):
    type = "invalid-idempotency-key"
    title = "Invalid Idempotency-Key"


class RequestInFlight(Conflict):
    type = "idempotency-in-flight"
    title = "Request in flight"

    def __init__(self) -> None:
        super().__init__(
            "A request with this Idempotency-Key is still being processed; retry shortly.",
            headers={"Retry-After": "1"},
        )


class IdempotencyKeyReused(Unprocessable):
    type = "idempotency-key-reused"
    title = "Idempotency-Key reused"

    def __init__(self) -> None:
        super().__init__(
            "This Idempotency-Key was used for a different request (another path or body);"
            " use a new key for a new request."
        )
