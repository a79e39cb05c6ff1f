"""``/console``: sign in and out, the role's home page, and the console's assets.

The pages themselves are in ``tenant_pages`` (a tenant's client) and
``operator_pages`` (a platform-admin client), included here.
"""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from auth.errors import OAuthError
from console import assets, ledger_pages, operator_pages, tenant_pages
from console.branding import brand_of
from console.dependencies import (
    ConsoleRoute,
    CurrentSession,
    PostedForm,
    SessionsDep,
    SignInForm,
    sign_in_redirect,
)
from console.errors import SignInRequired
from console.pages import render
from console.service import COOKIE_PATH, SESSION_COOKIE, SIGN_IN_COOKIE, is_loopback

router = APIRouter(prefix="/console", include_in_schema=False, route_class=ConsoleRoute)
SIGN_IN_FORM_SECONDS = 3600


def _secure(request: Request) -> bool:
    """``Secure`` everywhere but plain http on loopback in development."""
    if request.app.state.settings.environment == "production":
        return True
    return not is_loopback(request.url.hostname)


def _sign_in_page(
    request: Request,
    *,
    status_code: int = 200,
    error: str = "",
    notice: str = "",
    client_id: str = "",
) -> Response:
    token = secrets.token_urlsafe(32)
    response = render(
        request,
        "sign_in.html",
        status_code=status_code,
        csrf=token,
        error=error,
        notice=notice,
        client_id=client_id,
        ttl_minutes=max(1, request.app.state.settings.token_ttl_seconds // 60),
    )
    response.set_cookie(
        SIGN_IN_COOKIE,
        token,
        max_age=SIGN_IN_FORM_SECONDS,
        path=COOKIE_PATH,
        httponly=True,
        secure=_secure(request),
        samesite="strict",
    )
    return response


@router.get("/sign-in")
async def sign_in_page(request: Request, sessions: SessionsDep) -> Response:
    """The sign-in form (client ID and secret)."""
    try:
        await sessions.session(request.cookies.get(SESSION_COOKIE))
        return RedirectResponse("/console", status_code=303)
    except SignInRequired:
        pass
    notice = ""
    if request.query_params.get("expired"):
        notice = "Your session has ended; sign in again."
    elif request.query_params.get("signed_out"):
        notice = "You are signed out."
    return _sign_in_page(request, notice=notice)


@router.post("/sign-in")
async def sign_in(request: Request, form: SignInForm, sessions: SessionsDep) -> Response:
    """Exchange client credentials for an access token, kept in an HttpOnly cookie."""
    client_id = form.get("client_id").strip()
    try:
        token, ttl = await sessions.sign_in(
            client_id,
            form.get("client_secret"),
            source=request.client.host if request.client else "",
        )
    except OAuthError as exc:
        return _sign_in_page(
            request, status_code=exc.status, error=exc.description, client_id=client_id
        )
    response = RedirectResponse("/console", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=ttl,  # the token's own lifetime: the session ends when it does
        path=COOKIE_PATH,
        httponly=True,
        secure=_secure(request),
        samesite="strict",
    )
    response.delete_cookie(SIGN_IN_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
    return response


@router.post("/sign-out")
async def sign_out(_form: PostedForm) -> Response:
    """Forget the session cookie."""
    response = sign_in_redirect()
    response.headers["location"] = "/console/sign-in?signed_out=1"
    return response


@router.get("")
async def home(session: CurrentSession) -> Response:
    """The signed-in role's first page."""
    target = "/console/tenants" if session.is_operator else "/console/sequences"
    return RedirectResponse(target, status_code=303)


@router.get("/brand.css")
async def brand_css(request: Request) -> Response:
    """The instance's colours as CSS variables (a stylesheet: the CSP allows no inline style)."""
    css = brand_of(request.app.state.settings).stylesheet
    return Response(
        css, media_type="text/css; charset=utf-8", headers={"Cache-Control": "no-cache"}
    )


@router.get("/static/{name}")
async def static(request: Request, name: str) -> Response:
    """The console's own scripts, styles and icons."""
    return assets.serve(request, assets.CONSOLE, name)


router.include_router(tenant_pages.router)
router.include_router(ledger_pages.router)
router.include_router(operator_pages.router)
