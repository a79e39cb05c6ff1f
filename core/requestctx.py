"""What the access log needs to know about the request being served.

``api.access.AccessLog`` opens one ``RequestInfo`` per HTTP request and keeps it in a
context variable; authentication fills in the tenant and client, the ``next`` routes
the numbers they issued, and every log line written while it is open carries its
request id. The domains write here (core) so that none of them imports ``api/``.
"""

from __future__ import annotations

from contextvars import ContextVar


class RequestInfo:
    __slots__ = ("client_id", "numbers", "request_id", "tenant")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.tenant = ""
        self.client_id = ""
        self.numbers = 0


CURRENT: ContextVar[RequestInfo | None] = ContextVar("tally_request", default=None)


def note_caller(tenant: str, client_id: str) -> None:
    """Record who the request was authenticated as (never the credential itself)."""
    info = CURRENT.get()
    if info is not None:
        info.tenant = tenant
        info.client_id = client_id


def note_numbers(count: int) -> None:
    """Record how many numbers this request issued."""
    info = CURRENT.get()
    if info is not None:
        info.numbers += count


def current_request_id() -> str | None:
    info = CURRENT.get()
    return info.request_id if info is not None else None
