"""The tenant registry, API clients, and the per-request lifecycle check.

The CLI (``tenants/cli.py``) and the admin API (``tenants/router.py``) call the same
methods of ``TenantService``.

Every administrative change is recorded in the affected tenant's audit trail
(``audit.service``); platform-admin clients in the platform trail (tenant ``""``).
Entries describe tenant config and client name/scopes/status, never a client's
secret or its hash. Deleting a tenant keeps its trail: audit history outlives it.

Lifecycle bound: every authenticated request checks its tenant's status (and its
client's, for tokens from ``/oauth/token``) against a per-process cache whose entries
live ``status_ttl`` seconds (``TALLY_STATUS_CACHE_SECONDS``, default 10, at most 60).
A suspension or revocation made anywhere therefore takes effect everywhere within
that bound; one made through this process takes effect at once. The check is a dict
lookup and a clock comparison; the store is read once per tenant/client per TTL.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from audit.service import SYSTEM, Actor, AuditLog
from auth.errors import ClientAuthFailed, InvalidToken
from auth.external import ExternalIssuer
from auth.schemas import TokenPrincipal
from core.clock import Clock, SystemClock
from core.singleflight import SingleFlight
from sequences.errors import SequenceExists
from sequences.schemas import SequenceCreate
from sequences.service import DEFAULT_SEQUENCE, SequenceService
from storage import PLATFORM, AlreadyExists, AuditEntry, ClientRecord, Store, TenantRecord
from tenants.errors import (
    ClientNotFound,
    ClientRevoked,
    DomainTaken,
    IssuerTaken,
    TenantExists,
    TenantNotFound,
    TenantNotSuspended,
)
from tenants.ratelimit import TenantRateLimiter
from tenants.schemas import (
    DEFAULT_COLOR,
    PLANS,
    Branding,
    ClientCreate,
    ClientOut,
    IdentityProvider,
    NewClient,
    Onboarded,
    Plan,
    TenantCreate,
    TenantOut,
    TenantUpdate,
)

T = TypeVar("T")
UTC_ZONE = ZoneInfo("UTC")
_FOREVER = float("inf")
ADMIN_PREFIX = "admin"
# '<tenant slug>.<16 hex>' or 'admin.<16 hex>': the owner is readable from the id, so
# looking a client up is tenant-scoped like every other storage call.
_CLIENT_ID = re.compile(r"^([a-z][a-z0-9-]{0,30}[a-z0-9])\.([0-9a-f]{16})$")
_UPDATE_RETRIES = 8

# -- secrets -----------------------------------------------------------------------
# scrypt (stdlib, memory-hard): N=2^15, r=8, p=1 is 32 MiB and ~70 ms per check. The
# parameters are stored with each hash, so they can be raised without breaking old ones.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**15, 8, 1
_MAXMEM = 128 * 1024 * 1024
# At most this many scrypt runs at once per process: bounds memory (32 MiB each) and
# CPU however many token requests arrive together.
_CONCURRENT_HASHES = 4
_VERIFIED_CACHE = 10_000  # clients whose verified secret a process remembers


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_secret(secret: str) -> str:
    """``scrypt$N$r$p$salt$hash`` with a fresh 16-byte salt."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(
        secret.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, maxmem=_MAXMEM, dklen=32
    )
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_secret(secret: str, encoded: str) -> bool:
    """Constant-time check of ``secret`` against a ``hash_secret`` value."""
    try:
        scheme, n, r, p, salt, digest = encoded.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        actual = hashlib.scrypt(
            secret.encode()[:1024],
            salt=_unb64(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=_MAXMEM,
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


# Unknown client ids pay the same scrypt as known ones, against this hash: no timing
# oracle for ids. Precomputed (of a random secret nobody kept), so the first unknown
# id does not pay a second scrypt to make it.
_DUMMY_HASH = "scrypt$32768$8$1$5bRExtQ6CCumXMTuqoh9YQ$3IWn0CUFf6aZY4b6k5-1hiBp6BzyXp9veInjNpZ5IsY"


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def owner_of(client_id: str) -> str | None:
    """The tenant a client id belongs to (``PLATFORM`` for admin clients); None if malformed."""
    match = _CLIENT_ID.match(client_id)
    if match is None:
        return None
    prefix = match.group(1)
    return PLATFORM if prefix == ADMIN_PREFIX else prefix


def _new_client_id(tenant: str) -> str:
    return f"{tenant or ADMIN_PREFIX}.{secrets.token_hex(8)}"


# -- records <-> schemas ---------------------------------------------------------------
def to_out(record: TenantRecord) -> TenantOut:
    c = record.config
    branding = Branding.model_validate(c.get("branding") or {})
    effective = Branding(
        display_name=branding.display_name or c["name"],
        primary_color=branding.primary_color or DEFAULT_COLOR,
        logo_url=branding.logo_url,
    )
    idp = c.get("identity_provider")
    plan = c.get("plan", "standard")
    return TenantOut(
        slug=record.slug,
        name=c["name"],
        status=c.get("status", "active"),
        plan=Plan(name=plan, **PLANS[plan].model_dump()),
        branding=effective,
        domain=c.get("domain"),
        timezone=c.get("timezone", "UTC"),
        identity_provider=IdentityProvider.model_validate(idp) if idp else None,
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


def client_out(record: ClientRecord) -> ClientOut:
    return ClientOut(
        client_id=record.client_id,
        tenant=record.tenant or None,
        name=record.name,
        scopes=list(record.scopes),
        status="revoked" if record.revoked_at else "active",
        created_at=record.created_at,
        last_used_at=record.last_used_at,
        revoked_at=record.revoked_at,
    )


# -- the audit trail ----------------------------------------------------------------------
def _tenant_target(slug: str) -> str:
    return f"tenants/{slug}"


def _client_target(client_id: str) -> str:
    return f"clients/{client_id}"


def _client_view(record: ClientRecord) -> dict[str, Any]:
    """What the trail says about a client: never its secret or secret hash."""
    status = "revoked" if record.revoked_at else "active"
    return {"name": record.name, "scopes": list(record.scopes), "status": status}


class _HeldBack(AuditLog):
    """Holds entries until ``release``, so an onboarding that is undone leaves no trail."""

    def __init__(self, log: AuditLog) -> None:
        super().__init__(log.store, clock=log.clock)
        self._log = log
        self._held: list[tuple[AuditEntry, Actor]] = []

    async def record(
        self,
        tenant: str,
        actor: Actor,
        action: str,
        target: str,
        *,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> AuditEntry:
        entry = self.entry(tenant, actor, action, target, before=before, after=after)
        self._held.append((entry, actor))
        return entry

    async def release(self) -> None:
        """Write the held entries, in order, to the real trail."""
        for e, actor in self._held:
            await self._log.record(
                e.tenant, actor, e.action, e.target, before=e.before, after=e.after
            )


@dataclass(frozen=True, slots=True)
class _TenantState:
    active: bool
    zone: ZoneInfo
    requests_per_second: int = 0
    max_batch: int = 0


class TenantService:
    def __init__(
        self,
        store: Store,
        *,
        clock: Clock | None = None,
        own_issuer: str = "",
        status_ttl: float = 10.0,
        allow_unregistered: bool = True,
        only_tenant: str = "",
        audit: AuditLog | None = None,
    ) -> None:
        self.store = store
        # A siloed instance (TALLY_TENANT) serves one tenant and refuses every other.
        self.only_tenant = only_tenant
        self.clock = clock or SystemClock()
        self.audit = audit or AuditLog(store, clock=self.clock)
        self.own_issuer = own_issuer
        self.status_ttl = status_ttl
        self.allow_unregistered = allow_unregistered
        self._tenants: dict[str, tuple[float, _TenantState | None]] = {}
        # client id -> (expires, active, owning tenant or None: not a registered client)
        self._clients: dict[str, tuple[float, bool, str | None]] = {}
        self._issuers: tuple[float, dict[str, ExternalIssuer]] = (float("-inf"), {})
        self._inflight = SingleFlight()
        self._hashing = asyncio.Semaphore(_CONCURRENT_HASHES)
        # secret hash -> HMAC of the secret that matched it, under a key of this process
        # only (never stored, never logged); a rotated secret has a new hash, so misses.
        self._verified: dict[str, bytes] = {}
        self._digest_key = os.urandom(32)
        self._limiter = TenantRateLimiter()

    async def _hash(self, secret: str) -> str:
        async with self._hashing:
            return await asyncio.to_thread(hash_secret, secret)

    async def _verify(self, secret: str, encoded: str | None) -> bool:
        """Check ``secret``; with no hash, spend the same time and say no.

        A secret this process has already verified against this very hash is known by
        its keyed digest and costs no scrypt: a returning client is never queued behind
        a flood of guesses. Only a right secret is fast; a wrong one, for any id, pays
        the full check, so timing still tells nothing about which ids exist.
        """
        if encoded is not None:
            known = self._verified.get(encoded)
            if known is not None and hmac.compare_digest(known, self._digest(secret)):
                return True
        async with self._hashing:
            valid = await asyncio.to_thread(
                lambda: verify_secret(secret, encoded or _DUMMY_HASH) and encoded is not None
            )
        if valid and encoded is not None:
            self._verified.pop(encoded, None)
            self._verified[encoded] = self._digest(secret)
            while len(self._verified) > _VERIFIED_CACHE:
                self._verified.pop(next(iter(self._verified)))
        return valid

    def _digest(self, secret: str) -> bytes:
        return hmac.digest(self._digest_key, secret.encode(), "sha256")

    # -- registry --------------------------------------------------------------------
    async def create(self, spec: TenantCreate, *, actor: Actor = SYSTEM) -> TenantOut:
        """Record a new tenant (no sequence, no client); 409 if the slug is taken."""
        record = await self._insert(spec)
        await self.audit.record(
            spec.slug,
            actor,
            "tenant.created",
            _tenant_target(spec.slug),
            before=None,
            after=record.config,
        )
        return to_out(record)

    async def _insert(self, spec: TenantCreate) -> TenantRecord:
        if spec.identity_provider is not None:
            await self._check_issuer(spec.slug, spec.identity_provider)
        if spec.domain is not None:
            await self._check_domain(spec.slug, spec.domain)
        now = self.clock.now()
        config = spec.model_dump(mode="json", exclude={"slug"}) | {"status": "active"}
        record = TenantRecord(slug=spec.slug, config=config, created_at=now, updated_at=now)
        try:
            await self.store.create_tenant(spec.slug, record)
        except AlreadyExists:
            raise TenantExists(spec.slug) from None
        self._invalidate(spec.slug)
        return record

    async def onboard(
        self, spec: TenantCreate, client: ClientCreate | None = None, *, actor: Actor = SYSTEM
    ) -> Onboarded:
        """Create the tenant, its ``default`` sequence and its first client, or none of them."""
        # The trail gets the three entries only once all three changes stand.
        held = _HeldBack(self.audit)
        record = await self._insert(spec)
        await held.record(
            spec.slug,
            actor,
            "tenant.created",
            _tenant_target(spec.slug),
            before=None,
            after=record.config,
        )
        sequences = SequenceService(self.store, clock=self.clock, audit=held)
        made_default = False
        try:
            # The tenant may already have a `default` sequence (it used Tally before it
            # was registered, with TALLY_UNREGISTERED_TENANTS=allow): keep that one.
            with contextlib.suppress(SequenceExists):
                await sequences.create(
                    spec.slug, SequenceCreate(name=DEFAULT_SEQUENCE), actor=actor
                )
                made_default = True
            wanted = client or ClientCreate()
            first = await self._new_client(
                spec.slug, wanted.name, tuple(wanted.scopes), actor=actor, log=held
            )
            # Inside the try: a trail that cannot be written undoes the onboarding too,
            # or a tenant would stand whose first client's secret nobody was shown.
            await held.release()
        except BaseException:
            # Undo only what this call made; numbers issued before are never touched.
            if made_default:
                await self.store.delete_sequence(spec.slug, DEFAULT_SEQUENCE)
            await self.store.delete_tenant(spec.slug, with_data=False)
            self._invalidate(spec.slug)
            raise
        return Onboarded(
            tenant=to_out(record),
            client_id=first.client_id,
            client_secret=first.client_secret,
            scopes=first.scopes,
            default_sequence=DEFAULT_SEQUENCE,
        )

    async def _record(self, slug: str) -> TenantRecord:
        record = await self.store.get_tenant(slug)
        if record is None:
            raise TenantNotFound(slug)
        return record

    async def get(self, slug: str) -> TenantOut:
        """One tenant; 404 if unknown."""
        return to_out(await self._record(slug))

    async def list_tenants(self, *, after: str | None = None, limit: int = 100) -> list[TenantOut]:
        """Tenants by slug, a page at a time."""
        return [to_out(r) for r in await self.store.list_tenants(after=after, limit=limit)]

    async def _change(
        self, slug: str, change: Callable[[dict[str, Any]], None], *, actor: Actor, action: str
    ) -> TenantOut:
        # Optimistic concurrency: re-read and re-apply if another writer got in first.
        for _ in range(_UPDATE_RETRIES):
            record = await self._record(slug)
            config = dict(record.config)
            change(config)
            if config == record.config:
                # Nothing to change, nothing to record (as for sequences).
                self._invalidate(slug)
                return to_out(record)
            updated = TenantRecord(
                slug=slug,
                config=config,
                created_at=record.created_at,
                updated_at=self.clock.now(),
                revision=record.revision + 1,
            )
            if await self.store.update_tenant(slug, updated, expected_revision=record.revision):
                self._invalidate(slug)
                await self.audit.record(
                    slug, actor, action, _tenant_target(slug), before=record.config, after=config
                )
                return to_out(updated)
        raise TenantExists(slug)  # pragma: no cover - only under pathological contention

    async def update(self, slug: str, patch: TenantUpdate, *, actor: Actor = SYSTEM) -> TenantOut:
        """Change some settings; branding fields merge, ``identity_provider: null`` clears."""
        fields = patch.model_dump(mode="json", exclude_unset=True)
        if patch.identity_provider is not None:
            await self._check_issuer(slug, patch.identity_provider)
        if patch.domain is not None:
            await self._check_domain(slug, patch.domain)

        def apply(config: dict[str, Any]) -> None:
            for key, value in fields.items():
                if key == "branding":
                    merged = dict(config.get("branding") or {})
                    merged.update({k: v for k, v in value.items() if v is not None})
                    config["branding"] = merged
                else:
                    config[key] = value

        return await self._change(slug, apply, actor=actor, action="tenant.updated")

    async def suspend(self, slug: str, *, actor: Actor = SYSTEM) -> TenantOut:
        """No new tokens; existing ones refused within the lifecycle bound."""
        return await self._change(
            slug, lambda c: c.update(status="suspended"), actor=actor, action="tenant.suspended"
        )

    async def resume(self, slug: str, *, actor: Actor = SYSTEM) -> TenantOut:
        """Undo a suspension."""
        return await self._change(
            slug, lambda c: c.update(status="active"), actor=actor, action="tenant.resumed"
        )

    async def delete(self, slug: str, *, actor: Actor = SYSTEM) -> None:
        """Delete a suspended tenant with its clients, sequences and counters (not its trail)."""
        record = await self._record(slug)
        if record.config.get("status") != "suspended":
            raise TenantNotSuspended(f"Suspend tenant '{slug}' before deleting it.")
        deleted = await self.store.delete_tenant(slug)
        self._invalidate(slug)
        if deleted:  # else a concurrent delete won, and recorded itself
            await self.audit.record(
                slug,
                actor,
                "tenant.deleted",
                _tenant_target(slug),
                before=record.config,
                after=None,
            )

    async def _check_issuer(self, slug: str, idp: IdentityProvider) -> None:
        if self.own_issuer and idp.issuer == self.own_issuer:
            raise IssuerTaken("That issuer is Tally's own; register the tenant's provider.")
        for issuer, registered in (await self._load_issuers()).items():
            if issuer == idp.issuer and registered.tenant != slug:
                raise IssuerTaken(f"Issuer '{issuer}' is registered for another tenant.")

    async def _check_domain(self, slug: str, domain: str) -> None:
        # A branded instance's DNS name and certificate belong to one tenant.
        after: str | None = None
        while True:
            page = await self.store.list_tenants(after=after, limit=500)
            for record in page:
                if record.slug != slug and record.config.get("domain") == domain:
                    raise DomainTaken(domain)
            if len(page) < 500:
                return
            after = page[-1].slug

    # -- clients -----------------------------------------------------------------------
    async def create_client(
        self, slug: str, spec: ClientCreate, *, actor: Actor = SYSTEM
    ) -> NewClient:
        """A new client for a tenant; its secret is in the answer and nowhere else."""
        await self._record(slug)
        return await self._new_client(
            slug, spec.name, tuple(spec.scopes), actor=actor, log=self.audit
        )

    async def create_admin_client(self, name: str = "admin", *, actor: Actor = SYSTEM) -> NewClient:
        """A platform-admin client: scope ``platform:admin``, no tenant."""
        return await self._new_client(
            PLATFORM, name, ("platform:admin",), actor=actor, log=self.audit
        )

    async def _new_client(
        self, tenant: str, name: str, scopes: tuple[str, ...], *, actor: Actor, log: AuditLog
    ) -> NewClient:
        secret = new_secret()
        record = ClientRecord(
            client_id=_new_client_id(tenant),
            tenant=tenant,
            name=name,
            secret_hash=await self._hash(secret),
            scopes=scopes,
            created_at=self.clock.now(),
        )
        await self.store.create_client(tenant, record)
        await log.record(
            tenant,
            actor,
            "client.created",
            _client_target(record.client_id),
            before=None,
            after=_client_view(record),
        )
        return NewClient(
            client_id=record.client_id,
            client_secret=secret,
            tenant=tenant or None,
            name=name,
            scopes=list(scopes),
        )

    async def list_clients(self, slug: str) -> list[ClientOut]:
        """A tenant's clients (``""`` lists platform-admin clients); never their secrets."""
        if slug:
            await self._record(slug)
        return [client_out(c) for c in await self.store.list_clients(slug)]

    async def _client(self, slug: str, client_id: str) -> ClientRecord:
        if slug:
            await self._record(slug)
        record = await self.store.get_client(slug, client_id)
        if record is None:
            raise ClientNotFound(client_id, slug)
        return record

    async def revoke_client(self, slug: str, client_id: str, *, actor: Actor = SYSTEM) -> ClientOut:
        """Revoke a client: no new tokens, its tokens refused within the lifecycle bound."""
        before = await self._client(slug, client_id)
        if not await self.store.revoke_client(slug, client_id, self.clock.now()):
            raise ClientRevoked(client_id)
        self._clients.pop(client_id, None)
        after = await self._client(slug, client_id)
        await self.audit.record(
            slug,
            actor,
            "client.revoked",
            _client_target(client_id),
            before=_client_view(before),
            after=_client_view(after),
        )
        return client_out(after)

    async def rotate_client(self, slug: str, client_id: str, *, actor: Actor = SYSTEM) -> NewClient:
        """A new secret for a client; the old one stops working at once."""
        record = await self._client(slug, client_id)
        secret = new_secret()
        hashed = await self._hash(secret)
        if not await self.store.set_client_secret(slug, client_id, hashed):
            raise ClientRevoked(client_id)
        # The secret is all that changed, and the trail never holds a secret or its hash.
        await self.audit.record(
            slug, actor, "client.rotated", _client_target(client_id), before=None, after=None
        )
        return NewClient(
            client_id=client_id,
            client_secret=secret,
            tenant=slug or None,
            name=record.name,
            scopes=list(record.scopes),
        )

    async def authenticate_client(self, client_id: str, secret: str) -> ClientRecord:
        """The client these credentials prove, if it may get a token now."""
        owner = owner_of(client_id)
        if owner is None:  # not even shaped like a client id: no need to hash anything
            raise ClientAuthFailed("Client authentication failed.")
        record = await self.store.get_client(owner, client_id)
        valid = await self._verify(secret, record.secret_hash if record is not None else None)
        if record is None or not valid:
            raise ClientAuthFailed("Client authentication failed.")
        if record.revoked_at is not None:
            raise ClientAuthFailed("Client authentication failed.", counts=False)
        if self.only_tenant and record.tenant not in ("", self.only_tenant):
            raise ClientAuthFailed("Client authentication failed.", counts=False)
        if record.tenant:
            tenant = await self.store.get_tenant(record.tenant)
            if tenant is None or tenant.config.get("status") != "active":
                raise ClientAuthFailed("The client's tenant is suspended.", counts=False)
        await self.store.touch_client(record.tenant, client_id, self.clock.now())
        return record

    # -- the hot path ----------------------------------------------------------------------
    async def admit(self, principal: TokenPrincipal) -> None:
        """Refuse a verified token whose tenant is suspended/unknown or whose client is revoked."""
        now = self.clock.monotonic()
        if self.only_tenant and principal.tenant and principal.tenant != self.only_tenant:
            raise InvalidToken(f"This instance serves only tenant '{self.only_tenant}'.")
        if principal.tenant:
            state = await self._state(principal.tenant, now)
            if state is None:
                if not self.allow_unregistered:
                    raise InvalidToken("The token's tenant is not registered.")
            elif not state.active:
                raise InvalidToken("The tenant is suspended.")
            else:
                self._limiter.take(principal.tenant, state.requests_per_second, now)
        if principal.issuer != self.own_issuer:
            return  # an external provider's client: the provider manages it
        cached = self._clients.get(principal.client_id)
        if cached is not None and cached[0] > now:
            active, owner = cached[1], cached[2]
        else:
            owner = owner_of(principal.client_id)
            if owner is None:
                # Not a registered client's id (a `tally token` development token).
                self._clients[principal.client_id] = (_FOREVER, True, None)
                return
            active = await self._client_active(owner, principal.client_id)
        if owner is not None and owner != principal.tenant:
            raise InvalidToken()
        if not active:
            raise InvalidToken("The client is revoked.")

    async def _state(self, tenant: str, now: float | None = None) -> _TenantState | None:
        """The tenant's cached state (None: unregistered), reloaded once its TTL is past."""
        entry = self._tenants.get(tenant)
        current = self.clock.monotonic() if now is None else now
        if entry is not None and entry[0] > current:
            return entry[1]
        return await self._tenant_state(tenant)

    async def max_batch_of(self, tenant: str) -> int | None:
        """The tenant's plan's largest ``count``; None for unregistered tenants."""
        state = await self._state(tenant)
        return state.max_batch if state is not None else None

    async def timezone_of(self, tenant: str) -> ZoneInfo:
        """The tenant's time zone for reset periods; UTC for unregistered tenants."""
        state = await self._state(tenant)
        return state.zone if state is not None else UTC_ZONE

    async def external_issuer(self, issuer: str) -> ExternalIssuer | None:
        """The registration of an external token issuer (for ``auth.external``)."""
        expires, issuers = self._issuers
        if expires <= self.clock.monotonic():
            issuers = await self._load_issuers()
        return issuers.get(issuer)

    async def _once(self, key: str, load: Callable[[], Awaitable[T]]) -> T:
        # Concurrent misses for one key share one store read.
        return await self._inflight.do(key, load)

    async def _tenant_state(self, slug: str) -> _TenantState | None:
        async def load() -> _TenantState | None:
            record = await self.store.get_tenant(slug)
            state = None
            if record is not None:
                limits = PLANS[record.config.get("plan", "standard")]
                state = _TenantState(
                    active=record.config.get("status") == "active",
                    zone=ZoneInfo(record.config.get("timezone", "UTC")),
                    requests_per_second=limits.requests_per_second,
                    max_batch=limits.max_batch,
                )
            self._tenants[slug] = (self.clock.monotonic() + self.status_ttl, state)
            return state

        return await self._once(f"t:{slug}", load)

    async def _client_active(self, owner: str, client_id: str) -> bool:
        async def load() -> bool:
            record = await self.store.get_client(owner, client_id)
            active = record is not None and record.revoked_at is None
            expires = self.clock.monotonic() + self.status_ttl
            self._clients[client_id] = (expires, active, owner)
            return active

        return await self._once(f"c:{client_id}", load)

    async def _load_issuers(self) -> dict[str, ExternalIssuer]:
        async def load() -> dict[str, ExternalIssuer]:
            issuers: dict[str, ExternalIssuer] = {}
            after: str | None = None
            while True:
                page = await self.store.list_tenants(after=after, limit=500)
                for record in page:
                    idp = record.config.get("identity_provider")
                    if idp:
                        issuers[idp["issuer"]] = ExternalIssuer(
                            tenant=record.slug,
                            issuer=idp["issuer"],
                            jwks_url=idp["jwks_url"],
                            audience=idp["audience"],
                            client_claim=idp.get("client_claim", "client_id"),
                        )
                if len(page) < 500:
                    break
                after = page[-1].slug
            self._issuers = (self.clock.monotonic() + self.status_ttl, issuers)
            return issuers

        return await self._once("issuers", load)

    def _invalidate(self, slug: str) -> None:
        self._tenants.pop(slug, None)
        self._issuers = (float("-inf"), self._issuers[1])
