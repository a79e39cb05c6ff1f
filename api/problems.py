"""One renderer for every error: RFC 9457 ``application/problem+json`` (under ``/console``,
the console's HTML error page for an address the router has no route for)."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import Match

from console.dependencies import NO_SUCH_PAGE
from console.pages import error_page, is_console
from core.errors import TallyError
from core.openapi import PROBLEM_JSON, TYPE_BASE

log = logging.getLogger("tally.errors")


def problem(
    status: int,
    type_: str,
    title: str,
    detail: str,
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + type_,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


async def _tally_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TallyError)
    if exc.status >= 500:
        log.warning("%s %s -> %s: %s", request.method, request.url.path, exc.status, exc.detail)
    return problem(
        exc.status,
        exc.type,
        exc.title,
        exc.detail,
        instance=_instance(request),
        headers=exc.headers,
        **exc.extra,
    )


def _instance(request: Request) -> str:
    # The path as a URI reference (RFC 9457 §3.1.5): Starlette hands it over decoded,
    # so a name like %C2%84 would come back as a raw control character.
    return quote(request.url.path, safe="/:@!$&'()*+,;=~")


def _where(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": _where(tuple(e.get("loc", ()))), "message": str(e.get("msg", ""))}
        for e in exc.errors()
    ]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    return problem(
        422,
        "validation-error",
        "Invalid request",
        detail,
        instance=_instance(request),
        errors=errors,
    )


_TITLES = {
    400: ("bad-request", "Bad request"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    408: ("request-timeout", "Request timeout"),
    413: ("payload-too-large", "Payload too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
}


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    type_, title = _TITLES.get(exc.status_code, ("http-error", "HTTP error"))
    detail = exc.detail if isinstance(exc.detail, str) else title
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"No route for {request.method} {request.url.path}."
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Starlette names only the methods of the first route that matched the path;
        # FastAPI makes one route per operation, so collect them all.
        allowed = _methods_of(request)
        headers["Allow"] = ", ".join(allowed)
        detail = f"{request.url.path} allows {', '.join(allowed)}."
    if is_console(request.url.path):
        # A console address the router has no page for: a page, like the console's own.
        if exc.status_code == 404:
            detail = NO_SUCH_PAGE
        elif exc.status_code == 405:
            detail = "This address only takes the console's own forms; use its buttons."
        return error_page(request, exc.status_code, title, detail, headers)
    return problem(
        exc.status_code,
        type_,
        title,
        detail,
        instance=_instance(request),
        headers=headers,
    )


def _methods_of(request: Request) -> list[str]:
    # Asks the router itself, method by method (FastAPI nests included routers in
    # wrappers of its own, so walking the route list would depend on its version).
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(r.matches({**request.scope, "method": method})[0] is Match.FULL for r in routes)
    ]


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


async def _disconnected(request: Request, exc: Exception) -> Response:
    # The client stopped sending mid-body: nothing was done. Not an error of Tally's,
    # so no traceback. A client gone altogether reads nothing (the server drops the
    # answer); one that only shut its sending side gets the answer of any refusal.
    log.debug("client disconnected during %s %s", request.method, request.url.path)
    return problem(
        400,
        "bad-request",
        "Bad request",
        "The request body ended before its declared length; nothing was done.",
        instance=_instance(request),
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Never leak a stack trace; the log has it for the operator.
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(500, "internal-error", "Internal error", "An unexpected error occurred.")


def install(app: FastAPI) -> None:
    app.add_exception_handler(TallyError, _tally_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ClientDisconnect, _disconnected)
    app.add_exception_handler(Exception, _unexpected)
