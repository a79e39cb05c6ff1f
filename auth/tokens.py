"""Mint and verify access tokens (JWT, ES256, ``typ: at+jwt``, RFC 9068 shape).

Verification pins the algorithm to the key's (never the header's), takes the key
only from our own ring by ``kid`` (``jku``, ``x5u`` and embedded ``jwk`` headers are
ignored), and requires ``exp``, ``iat``, ``iss``, ``aud``, ``sub`` and ``tid``.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import OrderedDict
from typing import Any

import jwt

from auth.errors import InvalidToken
from auth.keys import ALGORITHM, KeyRing
from auth.schemas import TokenPrincipal

TOKEN_TYPE = "at+jwt"  # noqa: S105 - a media type, not a secret
_REQUIRED = ["exp", "iat", "iss", "aud", "sub", "tid"]
_MAX_TOKEN_BYTES = 8192
_TENANT = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")
# Clock skew we tolerate between our hosts; small on purpose.
LEEWAY_SECONDS = 5


def mint(
    ring: KeyRing,
    *,
    issuer: str,
    audience: str,
    subject: str,
    tenant: str,
    scopes: list[str] | tuple[str, ...],
    ttl_seconds: int,
    now: float | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    """Sign an access token with the ring's active key."""
    issued = int(now if now is not None else time.time())
    key = ring.active
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "tid": tenant,
        "scope": " ".join(scopes),
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl_seconds,
        "jti": uuid.uuid4().hex,
        **(extra or {}),
    }
    return jwt.encode(
        claims, key.private, algorithm=ALGORITHM, headers={"kid": key.kid, "typ": TOKEN_TYPE}
    )


class TokenVerifier:
    """Verifies our own tokens; caches results so the hot path skips the signature check.

    A cached principal is used only until the token's ``exp``; the cache is cleared
    whenever the key ring changes (a retired key's tokens stop working at once).
    """

    def __init__(
        self,
        ring: KeyRing,
        *,
        issuer: str,
        audience: str,
        cache_size: int = 10_000,
        reload_interval: float = 1.0,
    ) -> None:
        self.ring = ring
        self.issuer = issuer
        self.audience = audience
        self._cache: OrderedDict[str, TokenPrincipal] = OrderedDict()
        self._cache_size = cache_size
        self._reload_interval = reload_interval
        self._next_reload_check = 0.0
        # Outcomes, for the metrics endpoint.
        self.cache_hits = 0
        self.verified = 0
        self.rejected = 0

    def _maybe_reload(self, now: float) -> bool:
        """Reload the ring if its files changed (checked once per interval); True if so."""
        if now < self._next_reload_check:
            return False
        self._next_reload_check = now + self._reload_interval
        if self.ring.changed_on_disk():
            self.ring = KeyRing.load(self.ring.directory)
            self._cache.clear()
            return True
        return False

    def signing_ring(self) -> KeyRing:
        """The ring as on disk now (reloaded if ``keys.json`` changed): mint with this."""
        self._maybe_reload(time.monotonic())
        return self.ring

    def verify(self, token: str, *, now: float | None = None) -> TokenPrincipal:
        """Return the principal for a valid token or raise ``InvalidToken``."""
        # The cache lookup comes first: a hit costs a dict lookup and two clock reads.
        cached = self._cache.get(token)
        current = time.time() if now is None else now
        if self._maybe_reload(time.monotonic()):
            cached = None  # the key ring changed: everything is verified afresh
        if cached is not None:
            if cached.expires_at > current:
                self.cache_hits += 1
                return cached
            del self._cache[token]
        try:
            principal = self._verify_uncached(token, current)
        except InvalidToken:
            self.rejected += 1
            raise
        self.verified += 1
        if self._cache_size:
            self._cache[token] = principal
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return principal

    def _verify_uncached(self, token: str, now: float) -> TokenPrincipal:
        if len(token) > _MAX_TOKEN_BYTES or token.count(".") != 2:
            raise InvalidToken()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken() from None
        kid = header.get("kid")
        if not isinstance(kid, str) or header.get("alg") != ALGORITHM:
            raise InvalidToken()
        if header.get("typ") != TOKEN_TYPE or "crit" in header:
            raise InvalidToken()
        key = self.ring.verifying_key(kid)
        if key is None:
            raise InvalidToken()
        try:
            claims = jwt.decode(
                token,
                key.public,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": _REQUIRED, "verify_iat": True},
            )
        except jwt.PyJWTError:
            raise InvalidToken() from None
        return principal_from_claims(claims, now)


# A NumericDate Tally accepts: at most the end of the year 9999. JSON numbers have no
# size limit, and PyJWT checks ``exp`` with ``int()``, so a signed ``exp`` of 10**400
# would pass it and then overflow ``float()``.
_LATEST = 253_402_300_799


def current_expiry(exp: object, iat: object, now: float) -> float:
    """``exp`` in seconds once ``exp`` and ``iat`` are checked: numbers (not booleans, not
    beyond the year 9999), issued by now and not yet expired (each with
    ``LEEWAY_SECONDS``). InvalidToken otherwise."""
    expires, issued = _numeric_date(exp), _numeric_date(iat)
    if issued > now + LEEWAY_SECONDS or expires + LEEWAY_SECONDS <= now:
        raise InvalidToken()
    return expires


def _numeric_date(claim: object) -> float:
    if isinstance(claim, bool) or not isinstance(claim, int | float):
        raise InvalidToken()
    if not -_LATEST <= claim <= _LATEST:  # also NaN, which compares false
        raise InvalidToken()
    return float(claim)


def is_tenant_claim(tid: str) -> bool:
    """Whether ``tid`` is a tenant slug a token may name ("" is a platform token)."""
    return not tid or _TENANT.match(tid) is not None


def principal_from_claims(claims: dict[str, Any], now: float) -> TokenPrincipal:
    """Check claim types (not just presence) and build the principal."""
    tid, sub, scope, exp, iat = (
        claims.get("tid"),
        claims.get("sub"),
        claims.get("scope", ""),
        claims.get("exp"),
        claims.get("iat"),
    )
    if not isinstance(tid, str) or not is_tenant_claim(tid):
        raise InvalidToken()
    if not isinstance(sub, str) or not sub or not isinstance(scope, str):
        raise InvalidToken()
    return TokenPrincipal(
        subject=sub,
        tenant=tid,
        scopes=frozenset(scope.split()),
        expires_at=current_expiry(exp, iat, now),
        client_id=str(claims.get("client_id", sub)),
        issuer=str(claims.get("iss", "")),
    )
