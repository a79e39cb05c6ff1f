"""Tally as an OAuth 2.0 authorization server: the token endpoint and discovery documents."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from auth.dependencies import ClientCredentials, get_verifier
from auth.errors import OAuthError
from auth.keys import JWKS_MAX_AGE_SECONDS
from auth.schemas import SCOPES
from auth.service import TokenIssuer
from auth.tokens import TokenVerifier
from core.errors import RequestTimeout
from core.openapi import errors
from core.settings import Settings
from storage.errors import StoreUnavailable

router = APIRouter(tags=["oauth"])
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class TokenResponse(BaseModel):
    access_token: str
    token_type: str
    expires_in: int
    scope: str


def get_token_issuer(request: Request) -> TokenIssuer:
    issuer: TokenIssuer = request.app.state.token_issuer
    return issuer


Issuer = Annotated[TokenIssuer, Depends(get_token_issuer)]
Verifier = Annotated[TokenVerifier, Depends(get_verifier)]


async def app_settings(request: Request) -> Settings:
    """The settings the running app was created with (not ``get_settings()``'s)."""
    settings: Settings = request.app.state.settings
    return settings


def _oauth_error(description: str, codes: list[str], **headers: Any) -> dict[str, Any]:
    """An RFC 6749 §5.2 error response with the ``error`` codes this status carries."""
    return {
        "description": description,
        "headers": {"Cache-Control": {"schema": {"type": "string", "const": "no-store"}}} | headers,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["error", "error_description"],
                    "properties": {
                        "error": {"type": "string", "enum": codes},
                        "error_description": {"type": "string"},
                    },
                }
            }
        },
    }


# What token_request and TokenIssuer.issue raise, by status (auth.errors.OAuthError).
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _oauth_error(
        "RFC 6749 §5.2: a malformed request (parameters in the query string, a form that"
        " is not application/x-www-form-urlencoded or too large, a repeated parameter),"
        " a grant type other than client_credentials, or a scope the client may not have.",
        ["invalid_request", "unsupported_grant_type", "invalid_scope"],
    ),
    401: _oauth_error(
        "Client authentication failed (RFC 6749 §5.2 invalid_client); with HTTP Basic the"
        " answer carries `WWW-Authenticate: Basic`.",
        ["invalid_client"],
        **{"WWW-Authenticate": {"schema": {"type": "string"}}},
    ),
    429: _oauth_error(
        "Locked out after TALLY_OAUTH_MAX_FAILURES failed authentications of this client"
        " from this address (or TALLY_OAUTH_ADDRESS_MAX_FAILURES of any clients) within"
        " TALLY_OAUTH_LOCKOUT_SECONDS: invalid_client, with Retry-After in seconds.",
        ["invalid_client"],
        **{"Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 1}}},
    ),
    **errors(RequestTimeout, StoreUnavailable),
}


# The form is parsed by ``auth.dependencies.token_request``; describe it for OpenAPI.
_FORM_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["grant_type"],
                    "properties": {
                        "grant_type": {"type": "string", "enum": ["client_credentials"]},
                        "scope": {"type": "string", "description": "Space-separated subset."},
                        "client_id": {"type": "string", "description": "client_secret_post"},
                        "client_secret": {"type": "string", "description": "client_secret_post"},
                    },
                }
            }
        },
    }
}


@router.post(
    "/oauth/token", response_model=TokenResponse, responses=_ERRORS, openapi_extra=_FORM_BODY
)
async def token(request: Request, credentials: ClientCredentials, issuer: Issuer) -> JSONResponse:
    """OAuth 2.0 client credentials grant: a form body, client_secret_basic or _post."""
    body = await issuer.issue(
        credentials.client_id,
        credentials.client_secret,
        credentials.scope,
        basic=credentials.basic,
        source=request.client.host if request.client else "",
    )
    return JSONResponse(body, headers=_NO_STORE)


@router.get("/.well-known/jwks.json")
async def jwks(verifier: Verifier) -> JSONResponse:
    """The public keys that verify Tally's access tokens (never private parts)."""
    return JSONResponse(
        verifier.signing_ring().jwks(),
        headers={"Cache-Control": f"public, max-age={JWKS_MAX_AGE_SECONDS}"},
    )


@router.get("/.well-known/oauth-authorization-server")
async def metadata(settings: Annotated[Settings, Depends(app_settings)]) -> dict[str, Any]:
    """RFC 8414 authorization server metadata."""
    base = settings.jwt_issuer.rstrip("/")
    return {
        "issuer": settings.jwt_issuer,
        "token_endpoint": f"{base}/oauth/token",
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": list(SCOPES),
        # No authorization endpoint: machine clients only.
        "response_types_supported": [],
    }


async def oauth_error(request: Request, exc: Exception) -> JSONResponse:
    """Render ``OAuthError`` the RFC 6749 way (not problem+json): clients expect it."""
    assert isinstance(exc, OAuthError)
    return JSONResponse(
        {"error": exc.error, "error_description": exc.description},
        status_code=exc.status,
        headers={**_NO_STORE, **exc.headers},
    )
