"""FastAPI dependencies: who is calling, and may they do this?"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qsl, unquote_plus

from fastapi import Depends, Request
from starlette.datastructures import State
from starlette.requests import ClientDisconnect

from auth.errors import InvalidToken, MissingScope, MissingToken, OAuthError
from auth.external import ExternalVerifier
from auth.schemas import TokenPrincipal
from auth.service import invalid_client
from auth.tokens import TokenVerifier
from core.limits import body_deadline
from core.requestctx import note_caller

# The tenant registry's lifecycle check (tenants.service.TenantService.admit).
Admit = Callable[[TokenPrincipal], Awaitable[None]]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Requirement:
    """What a route's caller must hold, for the OpenAPI document (``api.openapi``)."""

    scope: str | None  # None: any valid token
    tenant_bound: bool  # a tenant's token (its plan's rate limit applies), not an admin's


# The auth dependencies below, and the endpoints that call one themselves, by callable.
REQUIREMENTS: dict[Callable[..., Any], Requirement] = {}


def authenticates_itself(check: Callable[..., Any]) -> Callable[[F], F]:
    """Mark an endpoint that calls the dependency ``check`` itself (the hot path declares
    no dependencies), so its operation documents the same scope and errors."""

    def mark(endpoint: F) -> F:
        REQUIREMENTS[endpoint] = REQUIREMENTS[check]
        return endpoint

    return mark


# Hot-path notes. Every dependency here is ``async def``: FastAPI runs a plain ``def``
# dependency in a worker thread, a thread hop per dependency per request. And the
# tenant-scoped checks call ``authenticate`` directly rather than through a chain of
# sub-dependencies: each level costs FastAPI a full ``solve_dependencies`` pass.
async def get_verifier(request: Request) -> TokenVerifier:
    verifier: TokenVerifier = request.app.state.verifier
    return verifier


async def authenticate(request: Request) -> TokenPrincipal:
    """The caller's verified token; 401 if missing, invalid, or its tenant/client is not."""
    return await bearer(request.app.state, request.headers.getlist("authorization"))


async def bearer(state: State, headers: list[str]) -> TokenPrincipal:
    """``authenticate`` from the app's state and the request's Authorization headers
    (the fast path, ``api.fastpath``, reads them from the ASGI scope: no ``Request``)."""
    verifier: TokenVerifier = state.verifier
    if not headers:
        raise MissingToken()
    if len(headers) > 1:  # which one would a proxy or a log have looked at?
        raise InvalidToken("Send exactly one Authorization header.")
    header = headers[0]
    if not header.isascii() or "\x7f" in header:
        # A token is ASCII (RFC 6750). Bytes beyond it reach the app decoded as latin-1
        # on ASGI, and as api.rsgi.UNREADABLE (DEL) on RSGI, which cannot give them:
        # either way the same answer, an invalid token, whichever server carried it.
        # (Other control characters never pass the server's parser; str.isprintable
        # would cost 1.2 µs a request on a 570-character header, these two 0.08.)
        raise InvalidToken("The Authorization header must be printable ASCII.")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise MissingToken()
    try:
        principal = verifier.verify(token.strip())
    except InvalidToken:
        # Not one of ours: maybe from a tenant's registered identity provider.
        external: ExternalVerifier | None = getattr(state, "external", None)
        if external is None:
            raise
        principal = await external.verify(token.strip())
    note_caller(principal.tenant, principal.client_id)
    admit: Admit | None = getattr(state, "admit", None)
    if admit is not None:
        await admit(principal)
    return principal


Principal = Annotated[TokenPrincipal, Depends(authenticate)]
REQUIREMENTS[authenticate] = Requirement(None, tenant_bound=False)


def _has_scope(principal: TokenPrincipal, scope: str) -> TokenPrincipal:
    if scope not in principal.scopes:
        raise MissingScope(scope)
    return principal


def require(scope: str) -> Callable[[TokenPrincipal], Awaitable[TokenPrincipal]]:
    """A dependency that passes the principal through if it holds ``scope`` (else 403)."""

    async def check(principal: Principal) -> TokenPrincipal:
        return _has_scope(principal, scope)

    check.__name__ = f"require_{scope.replace(':', '_')}"
    REQUIREMENTS[check] = Requirement(scope, tenant_bound=False)
    return check


def tenant_of(principal: TokenPrincipal) -> str:
    """The tenant a tenant-scoped call acts for; admin tokens carry none."""
    if not principal.tenant:
        raise InvalidToken("This token is not bound to a tenant.")
    return principal.tenant


def tenant_scoped(principal: TokenPrincipal, scope: str) -> TokenPrincipal:
    """``principal`` if it holds ``scope`` (else 403) and is bound to a tenant (else 401)."""
    _has_scope(principal, scope)
    tenant_of(principal)
    return principal


def _tenant_scoped(scope: str) -> Callable[[Request], Awaitable[TokenPrincipal]]:
    async def check(request: Request) -> TokenPrincipal:
        return tenant_scoped(await authenticate(request), scope)

    check.__name__ = f"tenant_{scope.replace(':', '_')}"
    REQUIREMENTS[check] = Requirement(scope, tenant_bound=True)
    return check


CanRead = Annotated[TokenPrincipal, Depends(_tenant_scoped("sequences:read"))]
can_next = _tenant_scoped("sequences:next")
CanNext = Annotated[TokenPrincipal, Depends(can_next)]
CanWrite = Annotated[TokenPrincipal, Depends(_tenant_scoped("sequences:write"))]


async def _platform_admin(principal: Principal) -> TokenPrincipal:
    _has_scope(principal, "platform:admin")
    if principal.tenant:
        # Platform administration is never done with a tenant-bound token.
        raise MissingScope("platform:admin")
    return principal


PlatformAdmin = Annotated[TokenPrincipal, Depends(_platform_admin)]
REQUIREMENTS[_platform_admin] = Requirement("platform:admin", tenant_bound=False)


# -- POST /oauth/token ---------------------------------------------------------------
_FORM = "application/x-www-form-urlencoded"
_MAX_FORM_BYTES = 8192


@dataclass(frozen=True, slots=True)
class TokenRequest:
    client_id: str
    client_secret: str
    scope: str | None
    basic: bool


def _invalid_request(description: str) -> OAuthError:
    return OAuthError("invalid_request", description)


def _invalid_client(description: str) -> OAuthError:
    return invalid_client(description, basic=True)


async def token_request(request: Request) -> TokenRequest:
    """Parse a client-credentials request (RFC 6749 §4.4.2, §2.3.1); OAuth errors otherwise."""
    if request.url.query:
        # Secrets in a URL end up in logs and proxies: refuse before reading anything.
        raise _invalid_request("Send parameters in the form body, never in the query string.")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != _FORM:
        raise _invalid_request(f"Content-Type must be {_FORM}.")
    body = b""
    deadline = body_deadline(request)
    until = deadline.start()
    more = True
    while more:  # read no more than the cap, whatever is sent, and for no longer
        message = await deadline.receive(request.receive, until)
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        body += message.get("body", b"")
        more = message.get("more_body", False)
        if len(body) > _MAX_FORM_BYTES:
            raise _invalid_request("The form body is too large.")
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(
            text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=32
        )
    except (UnicodeDecodeError, ValueError):
        raise _invalid_request("Malformed form body.") from None
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            raise _invalid_request(f"Parameter '{key}' is repeated.")
        params[key] = value
    grant = params.get("grant_type")
    if not grant:
        raise _invalid_request("grant_type is required.")
    if grant != "client_credentials":
        raise OAuthError("unsupported_grant_type", "Only client_credentials is supported.")
    headers = request.headers.getlist("authorization")
    if len(headers) > 1:  # which one would a proxy or a log have looked at?
        raise _invalid_request("Send at most one Authorization header.")
    header = headers[0] if headers else None
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            raise _invalid_client("Authenticate with HTTP Basic or client_secret_post.")
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            raise _invalid_client("Malformed Basic credentials.") from None
        raw_id, sep, raw_secret = decoded.partition(":")
        if not sep:
            raise _invalid_client("Malformed Basic credentials.")
        client_id, secret = unquote_plus(raw_id), unquote_plus(raw_secret)
        if "client_secret" in params:
            raise _invalid_request("Use one client authentication method, not two.")
        if params.get("client_id", client_id) != client_id:
            raise _invalid_request("client_id does not match the Basic credentials.")
        basic = True
    else:
        client_id, secret = params.get("client_id", ""), params.get("client_secret", "")
        basic = False
    if not client_id or not secret:
        raise _invalid_client("Client authentication is required.")
    if len(client_id) > 128 or len(secret) > 512:
        raise _invalid_client("Client authentication failed.")
    scope = params.get("scope")
    return TokenRequest(client_id, secret, scope if scope else None, basic)


ClientCredentials = Annotated[TokenRequest, Depends(token_request)]
