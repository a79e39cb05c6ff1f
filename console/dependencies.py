"""FastAPI dependencies of the console: its services, the session cookie, and forms
checked for CSRF; and the route class that renders every console error as a page."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlsplit

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute

from console.errors import CsrfRefused, SignInRequired
from console.pages import error_page
from console.service import (
    COOKIE_PATH,
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    Session,
    Sessions,
    same_secret,
)
from core.errors import PayloadTooLarge, TallyError

MAX_FORM_BYTES = 16_384
NO_SUCH_PAGE = "No such page: check the address."


class Form:
    """A urlencoded form body: the last value of a field, or all of them (checkboxes)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs = pairs

    def get(self, name: str, default: str = "") -> str:
        values = self.all(name)
        return values[-1] if values else default

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.pairs if k == name]

    def has(self, name: str) -> bool:
        return any(k == name for k, _ in self.pairs)


async def read_form(request: Request) -> Form:
    """The form body, read no further than ``MAX_FORM_BYTES`` (no multipart: no uploads)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise PayloadTooLarge(f"A console form must be at most {MAX_FORM_BYTES} bytes.")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=64)
    except (UnicodeDecodeError, ValueError):
        pairs = []
    return Form(pairs)


def _same_origin(request: Request) -> bool:
    """No ``Origin``/``Referer`` naming another host (browsers send one on every POST)."""
    host = request.headers.get("host", "")
    for header in ("origin", "referer"):
        value = request.headers.get(header)
        if value:
            return value != "null" and urlsplit(value).netloc == host
    return True


async def get_sessions(request: Request) -> Sessions:
    state = request.app.state
    return Sessions(state.token_issuer, state.verifier, state.tenants)


SessionsDep = Annotated[Sessions, Depends(get_sessions)]


async def current_session(request: Request, sessions: SessionsDep) -> Session:
    """The signed-in session (``SignInRequired`` sends the browser to the sign-in page)."""
    return await sessions.session(request.cookies.get(SESSION_COOKIE))


CurrentSession = Annotated[Session, Depends(current_session)]


async def posted_form(request: Request, session: CurrentSession) -> Form:
    """A state-changing form of a signed-in session: same origin and this session's CSRF
    token, or ``CsrfRefused`` before anything is done."""
    form = await read_form(request)
    if not _same_origin(request):
        raise CsrfRefused()
    if not same_secret(form.get("csrf"), session.csrf):
        raise CsrfRefused()
    return form


async def sign_in_form(request: Request) -> Form:
    """The sign-in form: its CSRF field must match the pre-session cookie (double submit),
    so another site cannot sign a browser in with the attacker's own client."""
    form = await read_form(request)
    if not _same_origin(request):
        raise CsrfRefused()
    if not same_secret(form.get("csrf"), request.cookies.get(SIGN_IN_COOKIE, "")):
        raise CsrfRefused()
    return form


PostedForm = Annotated[Form, Depends(posted_form)]
SignInForm = Annotated[Form, Depends(sign_in_form)]


def sign_in_redirect(reason: str = "") -> Response:
    """Back to the sign-in page, dropping a session cookie that no longer holds."""
    target = "/console/sign-in" + ("?expired=1" if reason else "")
    response = RedirectResponse(target, status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
    return response


def _parameter_problem(error: dict[str, Any]) -> str:
    loc = tuple(error.get("loc", ()))
    name = str(loc[1]) if len(loc) > 1 else "query"
    return f"{name}: {str(error.get('msg', '')).removeprefix('Value error, ')}"


def _invalid_address(request: Request, exc: RequestValidationError) -> Response:
    """A bad path is a page that does not exist (404); a bad query parameter on a page
    that does is a 422 naming the parameter and what it should be."""
    errors = exc.errors()
    query = [e for e in errors if tuple(e.get("loc", ()))[:1] == ("query",)]
    if not errors or len(query) < len(errors):
        return error_page(request, 404, "Not found", NO_SUCH_PAGE)
    detail = "; ".join(_parameter_problem(e) for e in query)
    return error_page(request, 422, "Invalid address", f"Check the address: {detail}.")


class ConsoleRoute(APIRoute):
    """Console errors are pages, not problem+json: sign-in required redirects to the
    sign-in form; anything else renders ``error.html`` with the API's own message."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def console_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired as exc:
                return sign_in_redirect(exc.detail if request.cookies.get(SESSION_COOKIE) else "")
            except TallyError as exc:
                retry = {k: v for k, v in exc.headers.items() if k == "Retry-After"}
                return error_page(request, exc.status, exc.title, exc.detail, retry)
            except RequestValidationError as exc:
                return _invalid_address(request, exc)

        return console_handler
