"""The OAuth 2.0 token endpoint's logic (client credentials) and its failure throttle."""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, Protocol

from auth.errors import ClientAuthFailed, OAuthError
from auth.schemas import SCOPES
from auth.tokens import TokenVerifier, mint
from core.clock import Clock, SystemClock
from storage import ClientRecord

GRANT_TYPE = "client_credentials"


class ClientDirectory(Protocol):
    async def authenticate_client(self, client_id: str, secret: str) -> ClientRecord: ...


class FailureThrottle:
    """Lockout: ``max_failures`` failed attempts within ``window`` seconds lock that key
    (a client id and source address) for the rest of the window, right secret or not.

    Per process, bounded in size (oldest entries dropped); keyed by the client id the
    caller sent, so guessing secrets for one client cannot lock out another.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        max_failures: int = 5,
        window: float = 60.0,
        max_entries: int = 100_000,
    ) -> None:
        self.clock = clock or SystemClock()
        self.max_failures = max_failures
        self.window = window
        self.max_entries = max_entries
        self._failures: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def retry_after(self, key: str) -> int:
        """Seconds until ``key`` may try again (0: now)."""
        entry = self._failures.get(key)
        if entry is None:
            return 0
        started, count = entry
        left = started + self.window - self.clock.monotonic()
        if left <= 0:
            del self._failures[key]
            return 0
        return math.ceil(left) if count >= self.max_failures else 0

    def failed(self, key: str) -> None:
        now = self.clock.monotonic()
        started, count = self._failures.pop(key, (now, 0))
        if started + self.window <= now:
            started, count = now, 0
        self._failures[key] = (started, count + 1)
        while len(self._failures) > self.max_entries:
            self._failures.popitem(last=False)

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)


def invalid_client(description: str, *, basic: bool) -> OAuthError:
    # RFC 6749 §5.2: 401, with a Basic challenge when the client used (or may use) it.
    return OAuthError(
        "invalid_client",
        description,
        status=401,
        headers={"WWW-Authenticate": 'Basic realm="tally", charset="UTF-8"'} if basic else {},
    )


class TokenIssuer:
    """Authenticate a client, narrow its scopes, and mint an access token."""

    def __init__(
        self,
        clients: ClientDirectory,
        verifier: TokenVerifier,
        *,
        issuer: str,
        audience: str,
        ttl_seconds: int,
        throttle: FailureThrottle,
    ) -> None:
        self.clients = clients
        self.verifier = verifier
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds
        self.throttle = throttle

    async def issue(
        self, client_id: str, secret: str, scope: str | None, *, basic: bool, source: str = ""
    ) -> dict[str, Any]:
        """The token response for valid client credentials (RFC 6749 §4.4.3).

        Failures are throttled per (client id, source address): client ids are not
        secret (every token names its client), so a lockout keyed on the id alone would
        let anyone lock a client out; this way a guesser locks out only itself.
        """
        key = f"{client_id}|{source}"
        wait = self.throttle.retry_after(key)
        if wait:
            raise OAuthError(
                "temporarily_unavailable",
                f"Too many failed attempts for this client; retry in {wait} s.",
                status=429,
                headers={"Retry-After": str(wait)},
            )
        try:
            client = await self.clients.authenticate_client(client_id, secret)
        except ClientAuthFailed as exc:
            if exc.counts:
                self.throttle.failed(key)
            raise invalid_client(exc.reason, basic=basic) from None
        self.throttle.succeeded(key)
        granted = narrow(client.scopes, scope)
        token = mint(
            self.verifier.signing_ring(),
            issuer=self.issuer,
            audience=self.audience,
            subject=client.client_id,
            tenant=client.tenant,
            scopes=granted,
            ttl_seconds=self.ttl_seconds,
            extra={"client_id": client.client_id},
        )
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.ttl_seconds,
            "scope": " ".join(granted),
        }


def narrow(allowed: tuple[str, ...], requested: str | None) -> list[str]:
    """The requested scopes if the client holds them all; all of its scopes if none asked."""
    if requested is None or not requested.strip():
        return list(allowed)
    wanted = requested.split(" ")
    if any(not s or s not in SCOPES for s in wanted):
        raise OAuthError("invalid_scope", "Unknown or malformed scope.")
    if not set(wanted) <= set(allowed):
        raise OAuthError("invalid_scope", "The client may not request that scope.")
    return [s for s in allowed if s in wanted]
