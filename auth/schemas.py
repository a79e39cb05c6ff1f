"""What a verified token says about its bearer."""

from __future__ import annotations

from dataclasses import dataclass

SCOPES: tuple[str, ...] = (
    "sequences:read",
    "sequences:next",
    "sequences:write",
    "platform:admin",
)
TENANT_SCOPES: tuple[str, ...] = SCOPES[:3]


@dataclass(frozen=True, slots=True)
class TokenPrincipal:
    """The verified caller: tenant from ``tid`` (empty for platform admins)."""

    subject: str
    tenant: str
    scopes: frozenset[str]
    expires_at: float
    client_id: str = ""
    issuer: str = ""

    def has(self, scope: str) -> bool:
        return scope in self.scopes
