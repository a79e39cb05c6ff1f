"""Auth errors.

TallyError
├── Unauthorized (401, WWW-Authenticate: Bearer)
│   ├── MissingToken          no Authorization: Bearer header
│   └── InvalidToken          anything wrong with the token itself
└── Forbidden (403)
    └── MissingScope          valid token, scope not granted
OAuthError                    POST /oauth/token only: RFC 6749 JSON, not problem+json
ClientAuthFailed              client credentials refused (mapped to OAuthError invalid_client)
"""

from __future__ import annotations

from core.errors import Forbidden, Unauthorized


class MissingToken(Unauthorized):
    type = "missing-token"
    title = "Bearer token required"

    def __init__(self) -> None:
        super().__init__("Send 'Authorization: Bearer <token>'.", error=None)


class InvalidToken(Unauthorized):
    type = "invalid-token"
    title = "Invalid token"

    def __init__(self, detail: str = "The access token is invalid or expired.") -> None:
        super().__init__(detail, error="invalid_token")


class MissingScope(Forbidden):
    type = "insufficient-scope"
    title = "Insufficient scope"

    def __init__(self, scope: str) -> None:
        super().__init__(f"This operation needs the '{scope}' scope.")
        self.headers["WWW-Authenticate"] = (
            f'Bearer realm="tally", error="insufficient_scope", scope="{scope}"'
        )


class OAuthError(Exception):
    """An RFC 6749 §5.2 error from ``POST /oauth/token``.

    Deliberately not a ``TallyError``: OAuth clients everywhere parse
    ``{"error", "error_description"}`` as ``application/json`` from the token endpoint,
    so this one endpoint answers in that shape instead of problem+json.
    """

    def __init__(
        self,
        error: str,
        description: str,
        *,
        status: int = 400,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.headers = headers or {}


class ClientAuthFailed(Exception):
    """Client authentication failed; ``counts`` says whether it looks like guessing."""

    def __init__(self, reason: str, *, counts: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.counts = counts
