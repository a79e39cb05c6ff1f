"""Request and response bodies of the tenant registry and its API clients."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from auth.external import check_fetch_url
from auth.schemas import TENANT_SCOPES
from core.openapi import omit_only

# Same pattern as the token's ``tid`` check (auth.tokens) and TALLY_TENANT.
SLUG_PATTERN = r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$"
SLUG_MAX = 32
# ``admin`` prefixes platform-admin client ids; ``platform`` would only confuse;
# ``pooled`` names the pooled instance (its secrets tally/pooled/*, role tally-pooled,
# CD's instance "pooled"). The one list: Terraform's slug validation, tenant.schema.json
# and CD's tenant selector repeat it, and tests/infra/test_tenant_contract.py ties them.
RESERVED_SLUGS = frozenset({"admin", "platform", "pooled"})
COLOR_PATTERN = r"^#[0-9a-fA-F]{6}$"
DEFAULT_COLOR = "#3b5bdb"
_DOMAIN = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_CLAIM = r"^[A-Za-z0-9_.:-]{1,64}$"

TenantStatus = Literal["active", "suspended"]
PlanName = Literal["free", "standard", "enterprise"]


class PlanLimits(BaseModel):
    requests_per_second: int
    max_batch: int


# Named plans live in code: changing a plan's limits is a release, not a data migration.
PLANS: dict[str, PlanLimits] = {
    "free": PlanLimits(requests_per_second=10, max_batch=100),
    "standard": PlanLimits(requests_per_second=500, max_batch=10_000),
    "enterprise": PlanLimits(requests_per_second=5_000, max_batch=100_000),
}


def _slug(v: str) -> str:
    if v in RESERVED_SLUGS:
        raise ValueError(f"'{v}' is reserved")
    return v


def _timezone(v: str) -> str:
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # "America": a directory of zones
        raise ValueError(f"unknown time zone '{v}' (use an IANA name like Europe/Berlin)") from None
    return v


def _domain(v: str) -> str:
    v = v.lower().rstrip(".")
    if not _DOMAIN.match(v):
        raise ValueError(f"'{v}' is not a DNS name like numbers.example.com")
    return v


def _https(v: str) -> str:
    parts = urlsplit(v)
    if parts.scheme != "https" or not parts.hostname or parts.username or parts.password:
        raise ValueError("must be an https:// URL without credentials")
    return v


def _fetchable(v: str) -> str:
    check_fetch_url(v)
    return v


Slug = Annotated[
    str, StringConstraints(pattern=SLUG_PATTERN, max_length=SLUG_MAX), AfterValidator(_slug)
]


def _printable(v: str) -> str:
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in v):
        raise ValueError("must not contain control characters")
    return v


Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(_printable),
]
Color = Annotated[str, StringConstraints(pattern=COLOR_PATTERN)]
HttpsUrl = Annotated[
    str,
    StringConstraints(max_length=2048),
    AfterValidator(_https),
    Field(json_schema_extra={"pattern": "^https://[^/?#@]+"}),
]
Domain = Annotated[
    str, AfterValidator(_domain), Field(json_schema_extra={"pattern": _DOMAIN.pattern})
]
TimeZone = Annotated[str, StringConstraints(max_length=64), AfterValidator(_timezone)]


class Branding(BaseModel):
    """How a branded instance looks; absent fields fall back to the tenant's name/Tally's."""

    model_config = ConfigDict(extra="forbid")

    display_name: Name | None = None
    primary_color: Color | None = None
    logo_url: HttpsUrl | None = None


class IdentityProvider(BaseModel):
    """A tenant's own OAuth/OIDC issuer whose access tokens Tally accepts for it."""

    model_config = ConfigDict(extra="forbid")

    issuer: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    jwks_url: Annotated[str, StringConstraints(max_length=2048), AfterValidator(_fetchable)]
    audience: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    client_claim: Annotated[str, StringConstraints(pattern=_CLAIM)] = Field(
        default="client_id", description="The claim naming the calling client (e.g. azp)."
    )


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slug: Slug
    name: Name
    domain: Domain | None = None
    plan: PlanName = "standard"
    branding: Branding = Field(default_factory=Branding)
    timezone: TimeZone = "UTC"
    identity_provider: IdentityProvider | None = None


class TenantUpdate(BaseModel):
    """Partial update: fields left out stay; ``null`` clears domain or identity provider."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = Field(default=None, json_schema_extra=omit_only)
    domain: Domain | None = None
    plan: PlanName | None = Field(default=None, json_schema_extra=omit_only)
    branding: Branding | None = Field(default=None, json_schema_extra=omit_only)
    timezone: TimeZone | None = Field(default=None, json_schema_extra=omit_only)
    identity_provider: IdentityProvider | None = None

    @field_validator("name", "plan", "timezone", "branding")
    @classmethod
    def _not_null(cls, v: object) -> object:
        if v is None:
            raise ValueError("may be left out, not null")
        return v


class Plan(PlanLimits):
    name: PlanName


class TenantOut(BaseModel):
    slug: str
    name: str
    status: TenantStatus
    plan: Plan
    branding: Branding
    domain: str | None
    timezone: str
    identity_provider: IdentityProvider | None
    created_at: datetime
    updated_at: datetime


class TenantListItem(TenantOut):
    """A tenant as the admin list shows it: with its sequence count and volumes."""

    sequences: int = Field(description="Sequences the tenant has.")
    numbers_today: int = Field(description="Numbers issued since 00:00 UTC.")
    numbers_30d: int = Field(description="Numbers issued in the last 30 UTC days, today included.")


class TenantPage(BaseModel):
    items: list[TenantListItem]
    next_cursor: str | None


Scope = Literal["sequences:read", "sequences:next", "sequences:write"]
_TENANT_SCOPES: tuple[Scope, ...] = ("sequences:read", "sequences:next", "sequences:write")
assert _TENANT_SCOPES == TENANT_SCOPES


class ClientCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)] = (
        "default"
    )
    scopes: list[Scope] = Field(default_factory=lambda: list(_TENANT_SCOPES), min_length=1)


class ClientOut(BaseModel):
    client_id: str
    tenant: str | None = Field(description="null for platform-admin clients")
    name: str
    scopes: list[str]
    status: Literal["active", "revoked"]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class NewClient(BaseModel):
    """A client with its secret: the only time the secret is ever shown."""

    client_id: str
    client_secret: str
    tenant: str | None
    name: str
    scopes: list[str]


class Onboarded(BaseModel):
    """``tenants create``: the tenant, its default sequence and first client (secret once)."""

    tenant: TenantOut
    client_id: str
    client_secret: str
    scopes: list[str]
    default_sequence: str
