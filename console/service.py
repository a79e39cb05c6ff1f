"""The console's logic: sessions over the OAuth token service, and page data gathered
from the same service functions the API's handlers call (nothing here touches storage).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass

from auth.errors import InvalidToken, MissingScope
from auth.schemas import TokenPrincipal
from auth.service import TokenIssuer
from auth.tokens import TokenVerifier
from console.errors import SignInRequired, WrongConsole
from sequences.schemas import SequenceOut
from sequences.service import SequenceService
from tenants.service import TenantService
from usage.schemas import Granularity

SESSION_COOKIE = "tally_console"
SIGN_IN_COOKIE = "tally_console_signin"  # the sign-in form's CSRF secret (before a session)
COOKIE_PATH = "/console"
ADMIN_SCOPE = "platform:admin"


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser: the access token from its HttpOnly cookie, verified."""

    token: str
    principal: TokenPrincipal

    @property
    def csrf(self) -> str:
        """This session's CSRF token: keyed by the access token, which no script can read,
        so a page on another origin cannot compute it; no server-side state needed."""
        return hmac.new(self.token.encode(), b"tally-console-csrf", hashlib.sha256).hexdigest()

    @property
    def is_operator(self) -> bool:
        return ADMIN_SCOPE in self.principal.scopes and not self.principal.tenant

    @property
    def tenant(self) -> str:
        return self.principal.tenant

    def require_tenant(self, scope: str = "sequences:read") -> str:
        """The session's tenant, if it is a tenant session holding ``scope``."""
        if not self.principal.tenant:
            raise WrongConsole("This page is for tenant clients; you are signed in as an operator.")
        if scope not in self.principal.scopes:
            raise MissingScope(scope)
        return self.principal.tenant

    def require_operator(self) -> None:
        if not self.is_operator:
            raise WrongConsole("This page is for platform operators (platform:admin clients).")


def same_secret(a: str, b: str) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())


def is_loopback(host: str | None) -> bool:
    """Whether the browser reached us on a loopback name (the one place a cookie may
    go without ``Secure``: plain http on the developer's own machine)."""
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Sessions:
    """Sign in with client credentials (the token endpoint's own service) and check the
    session cookie on every request (signature, expiry, then the tenant's lifecycle)."""

    def __init__(self, issuer: TokenIssuer, verifier: TokenVerifier, tenants: TenantService):
        self.issuer = issuer
        self.verifier = verifier
        self.tenants = tenants

    async def sign_in(self, client_id: str, secret: str, *, source: str) -> tuple[str, int]:
        """An access token and its lifetime; ``OAuthError`` as ``POST /oauth/token`` says."""
        body = await self.issuer.issue(client_id, secret, None, basic=False, source=source)
        return str(body["access_token"]), int(body["expires_in"])

    async def session(self, token: str | None) -> Session:
        if not token:
            raise SignInRequired()
        try:
            principal = self.verifier.verify(token)
        except InvalidToken:
            raise SignInRequired("Your session has expired; sign in again.") from None
        try:
            await self.tenants.admit(principal)
        except InvalidToken as exc:  # suspended tenant, revoked client
            raise SignInRequired(exc.detail) from None
        return Session(token, principal)


# -- page data ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SequenceRow:
    seq: SequenceOut
    headroom: int | None  # numbers left below max in this period; None: no max

    @property
    def low(self) -> bool:
        """Under a tenth of the range left (or none): worth a look."""
        s = self.seq
        if self.headroom is None or s.max is None:
            return False
        total = (s.max - s.start) // s.step + 1
        return self.headroom * 10 < total


def headroom(seq: SequenceOut) -> int | None:
    """How many more numbers fit below ``max`` in the current period (None: unbounded)."""
    if seq.max is None:
        return None
    if seq.next is None:
        return 0
    return max(0, (seq.max - seq.next) // seq.step + 1)


async def sequence_rows(
    sequences: SequenceService, tenant: str, *, after: str | None, limit: int
) -> tuple[list[SequenceRow], str | None]:
    """A page of the tenant's sequences with last, next and headroom (as the API lists them)."""
    seqs = await sequences.list(tenant, after=after, limit=limit)
    items = await sequences.describe_many(tenant, seqs)
    cursor = items[-1].name if len(items) == limit else None
    return [SequenceRow(s, headroom(s)) for s in items], cursor


def granularity_of(value: str | None) -> Granularity:
    return Granularity.hour if value == "hour" else Granularity.day
