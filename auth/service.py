"""The OAuth 2.0 token endpoint's logic (client credentials) and its failure throttle."""

from __future__ import annotations

import asyncio
import math
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

from auth.errors import ClientAuthFailed, OAuthError
from auth.schemas import SCOPES
from auth.tokens import TokenVerifier, mint
from core.clock import Clock, SystemClock
from storage import ClientRecord

GRANT_TYPE = "client_credentials"


class ClientDirectory(Protocol):
    async def authenticate_client(self, client_id: str, secret: str) -> ClientRecord: ...


class _Budget:
    """At most ``limit`` failures per key within ``window`` seconds, counting the
    attempts still in flight as failures-to-be: a burst gets no more checks than a
    series. Bounded in size (oldest entries dropped)."""

    def __init__(self, clock: Clock, limit: int, window: float, max_entries: int) -> None:
        self.clock = clock
        self.limit = limit
        self.window = window
        self.max_entries = max_entries
        self._failures: OrderedDict[str, tuple[float, int]] = OrderedDict()
        self._inflight: dict[str, int] = {}

    def _current(self, key: str, now: float) -> tuple[float, int]:
        entry = self._failures.get(key)
        if entry is None or entry[0] + self.window <= now:
            return now, 0
        return entry

    def wait(self, key: str) -> int:
        """Seconds until ``key`` may try again (0: now)."""
        now = self.clock.monotonic()
        started, count = self._current(key, now)
        if count >= self.limit:
            return max(1, math.ceil(started + self.window - now))
        if count + self._inflight.get(key, 0) >= self.limit:
            return 1  # the budget is taken by attempts still being checked
        return 0

    def reserve(self, key: str) -> None:
        self._inflight[key] = self._inflight.get(key, 0) + 1

    def release(self, key: str, *, failed: bool) -> None:
        left = self._inflight.pop(key, 1) - 1
        if left:
            self._inflight[key] = left
        if not failed:
            return
        now = self.clock.monotonic()
        started, count = self._current(key, now)
        self._failures.pop(key, None)
        self._failures[key] = (started, count + 1)
        while len(self._failures) > self.max_entries:
            self._failures.popitem(last=False)

    def clear(self, key: str) -> None:
        self._failures.pop(key, None)


class FailureThrottle:
    """Lockout for the token endpoint, checked before any secret is hashed.

    * Per (client id, source address): ``max_failures`` failed attempts within
      ``window`` seconds lock that pair for the rest of the window, right secret or
      not. Keyed by the id the caller sent *and* its address: client ids are not
      secret (every token names its client), so a lockout on the id alone would let
      anyone lock a client out; this way a guesser locks out only itself.
    * Per source address: ``address_max_failures`` failures of any client ids, known
      or not, lock the address. So a flood of made-up ids costs at most that many
      hashes (the comparison against a dummy hash, which keeps unknown ids from
      being told apart by timing), then nothing.

    Attempts being checked count against both budgets until they are decided, so a
    burst of a hundred gets no more checks than a hundred in a row. Per process.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        max_failures: int = 5,
        address_max_failures: int = 20,
        window: float = 60.0,
        max_entries: int = 100_000,
    ) -> None:
        self.clock = clock or SystemClock()
        self.max_failures = max_failures
        self.window = window
        self._pairs = _Budget(self.clock, max_failures, window, max_entries)
        self._addresses = _Budget(self.clock, address_max_failures, window, max_entries)

    def begin(self, client_id: str, source: str) -> int:
        """Reserve an attempt: 0, or the seconds to wait (then nothing is reserved)."""
        pair = f"{client_id}|{source}"
        wait = max(self._pairs.wait(pair), self._addresses.wait(source))
        if not wait:
            self._pairs.reserve(pair)
            self._addresses.reserve(source)
        return wait

    def end(self, client_id: str, source: str, *, failed: bool, succeeded: bool) -> None:
        """Settle a reserved attempt: a failure counts; a success clears the pair's
        (never the address's: one good client must not launder a flood of bad ones)."""
        pair = f"{client_id}|{source}"
        self._pairs.release(pair, failed=failed)
        self._addresses.release(source, failed=failed)
        if succeeded:
            self._pairs.clear(pair)


# Of the process's scrypt slots (tenants.service: 4), one address gets at most this
# many at once, so one source can never take the whole pool.
HASHES_PER_ADDRESS = 1


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
        self._slots: dict[str, tuple[asyncio.Semaphore, int]] = {}

    @asynccontextmanager
    async def _slot(self, source: str) -> AsyncIterator[None]:
        """One of ``source``'s hash slots (dropped again when nobody holds or awaits one)."""
        sem, users = self._slots.get(source) or (asyncio.Semaphore(HASHES_PER_ADDRESS), 0)
        self._slots[source] = (sem, users + 1)
        try:
            async with sem:
                yield
        finally:
            sem, users = self._slots[source]
            if users == 1:
                del self._slots[source]
            else:
                self._slots[source] = (sem, users - 1)

    async def issue(
        self, client_id: str, secret: str, scope: str | None, *, basic: bool, source: str = ""
    ) -> dict[str, Any]:
        """The token response for valid client credentials (RFC 6749 §4.4.3).

        Attempts are throttled (``FailureThrottle``) before any secret is hashed, and
        one source address waits for its own hash slots (``HASHES_PER_ADDRESS``).
        """
        wait = self.throttle.begin(client_id, source)
        if wait:
            # RFC 6749 §5.2 has no code for a lockout; it is a client authentication
            # refused, so invalid_client, with 429 and Retry-After saying when to retry.
            raise OAuthError(
                "invalid_client",
                f"Too many failed attempts for this client; retry in {wait} s.",
                status=429,
                headers={"Retry-After": str(wait)},
            )
        failed = succeeded = False
        try:
            async with self._slot(source):
                client = await self.clients.authenticate_client(client_id, secret)
            succeeded = True
        except ClientAuthFailed as exc:
            failed = exc.counts
            raise invalid_client(exc.reason, basic=basic) from None
        finally:
            self.throttle.end(client_id, source, failed=failed, succeeded=succeeded)
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
