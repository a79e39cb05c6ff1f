"""Auth errors.

TallyError
├── Unauthorized (401, WWW-Authenticate: Bearer)
│   ├── MissingToken          no Authorization: Bearer header
│   └── InvalidToken          anything wrong with the token itself
└── Forbidden (403)
    └── MissingScope          valid token, scope not granted
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
