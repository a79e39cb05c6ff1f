"""FastAPI dependencies: who is calling, and may they do this?"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from auth.errors import InvalidToken, MissingScope, MissingToken
from auth.schemas import TokenPrincipal
from auth.tokens import TokenVerifier


# Hot-path notes. Every dependency here is ``async def``: FastAPI runs a plain ``def``
# dependency in a worker thread, a thread hop per dependency per request. And the
# tenant-scoped checks call ``authenticate`` directly rather than through a chain of
# sub-dependencies: each level costs FastAPI a full ``solve_dependencies`` pass.
async def get_verifier(request: Request) -> TokenVerifier:
    verifier: TokenVerifier = request.app.state.verifier
    return verifier


async def authenticate(request: Request) -> TokenPrincipal:
    """The caller's verified token; 401 if missing or invalid."""
    verifier = await get_verifier(request)
    header = request.headers.get("authorization")
    if not header:
        raise MissingToken()
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise MissingToken()
    return verifier.verify(token.strip())


Principal = Annotated[TokenPrincipal, Depends(authenticate)]


def _has_scope(principal: TokenPrincipal, scope: str) -> TokenPrincipal:
    if scope not in principal.scopes:
        raise MissingScope(scope)
    return principal


def require(scope: str) -> Callable[[TokenPrincipal], Awaitable[TokenPrincipal]]:
    """A dependency that passes the principal through if it holds ``scope`` (else 403)."""

    async def check(principal: Principal) -> TokenPrincipal:
        return _has_scope(principal, scope)

    check.__name__ = f"require_{scope.replace(':', '_')}"
    return check


def tenant_of(principal: TokenPrincipal) -> str:
    """The tenant a tenant-scoped call acts for; admin tokens carry none."""
    if not principal.tenant:
        raise InvalidToken("This token is not bound to a tenant.")
    return principal.tenant


def _tenant_scoped(scope: str) -> Callable[[Request], Awaitable[TokenPrincipal]]:
    async def check(request: Request) -> TokenPrincipal:
        principal = _has_scope(await authenticate(request), scope)
        tenant_of(principal)
        return principal

    check.__name__ = f"tenant_{scope.replace(':', '_')}"
    return check


CanRead = Annotated[TokenPrincipal, Depends(_tenant_scoped("sequences:read"))]
can_next = _tenant_scoped("sequences:next")
CanNext = Annotated[TokenPrincipal, Depends(can_next)]
CanWrite = Annotated[TokenPrincipal, Depends(_tenant_scoped("sequences:write"))]
PlatformAdmin = Annotated[TokenPrincipal, Depends(require("platform:admin"))]
