"""Tenants' own identity providers: verify their access tokens against their JWKS.

Which tenant a token acts for is decided by the *registration* (issuer -> tenant), never
by a claim in the token. Keys come only from the JWKS URL registered for that issuer,
fetched over HTTPS (plain HTTP only to a loopback address, for tests and sidecars);
the token's ``jku``, ``x5u``, ``x5c`` and ``jwk`` headers are never looked at. The
algorithm is pinned by the key type (RSA -> RS256, EC P-256 -> ES256), not by the
token's header.

JWKS documents are cached for ``ttl`` seconds. A token with a ``kid`` the cache does
not know triggers at most one refetch per ``cooldown`` per JWKS URL, so a flood of
made-up ``kid``s cannot turn Tally into a request amplifier; when the provider is down,
keys already in the cache keep verifying.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt

from auth.errors import InvalidToken
from auth.schemas import TENANT_SCOPES, TokenPrincipal
from auth.tokens import LEEWAY_SECONDS, current_expiry
from core.clock import Clock, SystemClock

log = logging.getLogger("tally.auth.external")

_MAX_TOKEN_BYTES = 8192
_MAX_JWKS_BYTES = 256 * 1024
# Public members only: a JWK carrying private parts is trimmed to its public key.
_PUBLIC = {"RSA": ("kty", "n", "e"), "EC": ("kty", "crv", "x", "y")}
_ALG_FOR = {"RSA": "RS256", "EC": "ES256"}
_TYPES = {None, "jwt", "at+jwt", "application/at+jwt"}


@dataclass(frozen=True, slots=True)
class ExternalIssuer:
    """What the registry says about one external issuer."""

    tenant: str
    issuer: str
    jwks_url: str
    audience: str
    client_claim: str = "client_id"


IssuerLookup = Callable[[str], Awaitable[ExternalIssuer | None]]


def check_fetch_url(url: str) -> None:
    """Raise ``ValueError`` unless ``url`` is https, or http to a loopback address."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.username or parts.password or not host:
        raise ValueError("must be an absolute URL without credentials")
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and _is_loopback(host):
        return
    raise ValueError("must be https:// (plain http only to a loopback address)")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class PinnedKey:
    kid: str
    algorithm: str
    key: Any


def parse_jwks(document: Any) -> dict[str, PinnedKey]:
    """Signing keys by ``kid``; keys we cannot pin to RS256/ES256 are skipped."""
    keys: dict[str, PinnedKey] = {}
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError("not a JWKS document")
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        kid, kty = entry.get("kid"), entry.get("kty")
        if not isinstance(kid, str) or kty not in _ALG_FOR or kid in keys:
            continue
        if entry.get("use", "sig") != "sig":
            continue
        alg = _ALG_FOR[kty]
        if entry.get("alg", alg) != alg or (kty == "EC" and entry.get("crv") != "P-256"):
            continue
        public = {k: entry[k] for k in _PUBLIC[kty] if k in entry}
        try:
            keys[kid] = PinnedKey(kid, alg, jwt.PyJWK(public, algorithm=alg).key)
        except (jwt.PyJWTError, ValueError, TypeError):
            continue
    return keys


@dataclass(slots=True)
class _Jwks:
    keys: dict[str, PinnedKey] = field(default_factory=dict)
    fetched_at: float = float("-inf")
    attempted_at: float = float("-inf")


class JwksCache:
    """JWKS documents by URL; refetched when stale or, once per cooldown, for a new kid."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        ttl: float = 3600.0,
        cooldown: float = 60.0,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.clock = clock or SystemClock()
        self.ttl = ttl
        self.cooldown = cooldown
        self._timeout = timeout
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._entries: dict[str, _Jwks] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.fetches = 0  # for tests and metrics

    async def key(self, url: str, kid: str) -> PinnedKey | None:
        entry = self._entries.get(url)
        now = self.clock.monotonic()
        if entry is not None and kid in entry.keys and now - entry.fetched_at < self.ttl:
            return entry.keys[kid]
        lock = self._locks.setdefault(url, asyncio.Lock())
        async with lock:
            entry = self._entries.setdefault(url, _Jwks())
            now = self.clock.monotonic()
            stale = now - entry.fetched_at >= self.ttl
            if (stale or kid not in entry.keys) and now - entry.attempted_at >= self.cooldown:
                entry.attempted_at = now
                await self._refresh(url, entry, now)
        return entry.keys.get(kid)

    async def _refresh(self, url: str, entry: _Jwks, now: float) -> None:
        try:
            check_fetch_url(url)
            if self._client is None:
                self._client = httpx.AsyncClient(
                    timeout=self._timeout, follow_redirects=False, transport=self._transport
                )
            self.fetches += 1
            response = await self._client.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            if len(response.content) > _MAX_JWKS_BYTES:
                raise ValueError("JWKS document too large")
            keys = parse_jwks(json.loads(response.content))
        except (httpx.HTTPError, ValueError) as exc:
            # Keep what we have: a provider outage must not log its tenant out.
            log.warning("JWKS fetch from %s failed: %s", url, exc)
            return
        entry.keys = keys
        entry.fetched_at = now

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class ExternalVerifier:
    """Verify a token from a registered external issuer; the tenant is the registration's."""

    def __init__(
        self, jwks: JwksCache, lookup: IssuerLookup, *, own_issuer: str, cache_size: int = 10_000
    ) -> None:
        self.jwks = jwks
        self.lookup = lookup
        self.own_issuer = own_issuer
        # A verified token, and the registration it was verified under.
        self._cache: OrderedDict[str, tuple[TokenPrincipal, ExternalIssuer]] = OrderedDict()
        self._cache_size = cache_size

    async def verify(self, token: str, *, now: float | None = None) -> TokenPrincipal:
        current = time.time() if now is None else now
        cached = self._cache.get(token)
        if cached is not None:
            principal, registered = cached
            # Still registered as it was (the lookup is the registry's cached view, as
            # fresh as a suspension): a provider cleared, moved to another tenant, or
            # gone with its tenant takes its tokens with it, not only new ones.
            if principal.expires_at > current and await self.lookup(principal.issuer) == registered:
                return principal
            del self._cache[token]
        principal, registered = await self._verify_uncached(token, current)
        if self._cache_size:
            self._cache[token] = (principal, registered)
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return principal

    async def _verify_uncached(
        self, token: str, now: float
    ) -> tuple[TokenPrincipal, ExternalIssuer]:
        if len(token) > _MAX_TOKEN_BYTES or token.count(".") != 2:
            raise InvalidToken()
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise InvalidToken() from None
        issuer = unverified.get("iss")
        if not isinstance(issuer, str) or issuer == self.own_issuer:
            raise InvalidToken()
        registered = await self.lookup(issuer)
        if registered is None or registered.issuer != issuer:
            raise InvalidToken()
        kid, typ = header.get("kid"), header.get("typ")
        if not isinstance(kid, str) or not kid or len(kid) > 256 or "crit" in header:
            raise InvalidToken()
        if typ is not None and not isinstance(typ, str):
            raise InvalidToken()
        if (typ.lower() if typ else None) not in _TYPES:
            raise InvalidToken()
        key = await self.jwks.key(registered.jwks_url, kid)
        if key is None or header.get("alg") != key.algorithm:
            raise InvalidToken()
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm],
                audience=registered.audience,
                issuer=registered.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )
        except jwt.PyJWTError:
            raise InvalidToken() from None
        return _principal(claims, registered, now), registered


def _principal(claims: dict[str, Any], registered: ExternalIssuer, now: float) -> TokenPrincipal:
    expires_at = current_expiry(claims.get("exp"), claims.get("iat"), now)
    client = claims.get(registered.client_claim)
    if not isinstance(client, str) or not client:
        raise InvalidToken()
    raw = claims.get("scope", claims.get("scp", ""))
    if isinstance(raw, str):
        granted = raw.split()
    elif isinstance(raw, list) and all(isinstance(s, str) for s in raw):
        granted = raw
    else:
        raise InvalidToken()
    # An external provider can grant tenant scopes only, never platform:admin.
    scopes = frozenset(s for s in granted if s in TENANT_SCOPES)
    sub = claims.get("sub")
    return TokenPrincipal(
        subject=sub if isinstance(sub, str) and sub else client,
        tenant=registered.tenant,
        scopes=scopes,
        expires_at=expires_at,
        client_id=client,
        issuer=registered.issuer,
    )
