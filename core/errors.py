"""The one error base class; every domain error derives from it.

    TallyError                      (status, problem type, title)
    ├── BadRequest                  400
    ├── Unauthorized                401  + WWW-Authenticate: Bearer
    ├── Forbidden                   403
    ├── NotFound                    404
    ├── RequestTimeout              408  + Connection: close
    ├── Conflict                    409
    ├── PayloadTooLarge             413
    ├── UnsupportedMediaType        415
    ├── Unprocessable               422
    ├── TooManyRequests             429  + Retry-After
    └── Unavailable                 503  + Retry-After

Domain packages subclass these (``sequences.errors.SequenceNotFound`` is a
``NotFound``) and never raise ``HTTPException``; ``api.problems`` renders every one
of them, and FastAPI's own validation errors, as RFC 9457 problem+json.
"""

from __future__ import annotations

from typing import Any, ClassVar


class TallyError(Exception):
    """Base class: carries what the problem+json answer needs."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = headers or {}
        self.extra = extra or {}


class BadRequest(TallyError):
    status = 400
    type = "bad-request"
    title = "Bad request"


class Unauthorized(TallyError):
    status = 401
    type = "unauthorized"
    title = "Authentication required"

    def __init__(self, detail: str | None = None, *, error: str | None = "invalid_token") -> None:
        # RFC 6750 §3: no error code when no credentials were sent; never echo the token.
        challenge = 'Bearer realm="tally"'
        if error:
            challenge += f', error="{error}"'
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class Forbidden(TallyError):
    status = 403
    type = "forbidden"
    title = "Forbidden"


class NotFound(TallyError):
    status = 404
    type = "not-found"
    title = "Not found"


class RequestTimeout(TallyError):
    status = 408
    type = "request-timeout"
    title = "Request timeout"

    def __init__(self, seconds: float) -> None:
        # The rest of the body may still be on its way: this connection is done.
        super().__init__(
            f"The request body did not arrive within {seconds:g} s.",
            headers={"Connection": "close"},
        )


class Conflict(TallyError):
    status = 409
    type = "conflict"
    title = "Conflict"


class PayloadTooLarge(TallyError):
    status = 413
    type = "payload-too-large"
    title = "Payload too large"


class UnsupportedMediaType(TallyError):
    status = 415
    type = "unsupported-media-type"
    title = "Unsupported media type"


class Unprocessable(TallyError):
    status = 422
    type = "validation-error"
    title = "Invalid request"


class TooManyRequests(TallyError):
    status = 429
    type = "rate-limited"
    title = "Too many requests"

    def __init__(self, detail: str | None = None, *, retry_after: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))})


class Unavailable(TallyError):
    status = 503
    type = "store-unavailable"
    title = "Service unavailable"

    def __init__(self, detail: str | None = None, *, retry_after: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))})
