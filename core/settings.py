"""Tally's one settings class; the server and the CLI both read it.

Every field comes from a ``TALLY_*`` environment variable (or ``.env``). A bad value
stops start-up with one line naming the variable (see ``load_settings``).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, parse_qsl, urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_ISSUER = "http://127.0.0.1:8080"
_SLUG = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")
_BIGTABLE = re.compile(r"^bigtable://[a-z][a-z0-9.:-]*[a-z0-9]/[a-z][a-z0-9_-]*[a-z0-9](\?[^#]*)?$")
_TABLE_PREFIX = re.compile(r"^[A-Za-z0-9_.-]{0,40}$")
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")

_W0 = "w=0 is refused: an unacknowledged write could issue a number that was never stored"
_W1 = (
    "w=1 is refused in production: a failover can roll back an increment the primary"
    " acknowledged and issue its numbers again; use w=majority"
)


def mongo_url_options(url: str) -> dict[str, str]:
    """The options a ``mongodb://`` URL names, by lower-case name (no DNS lookup)."""
    if not url.startswith(("mongodb://", "mongodb+srv://")):
        return {}
    return {k.lower(): v for k, v in parse_qsl(urlsplit(url).query, keep_blank_values=True)}


def bigtable_url_parts(url: str) -> tuple[str, str, str | None, str]:
    """Project, instance, app profile and table prefix a ``bigtable://`` URL names."""
    parts = urlsplit(url)
    if parts.scheme != "bigtable":
        raise ValueError("a Bigtable URL starts with bigtable://")
    project, instance = parts.netloc, parts.path.strip("/")
    if not project or not instance or "/" in instance:
        raise ValueError("must be bigtable://PROJECT/INSTANCE")
    query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=False)
    unknown = set(query) - {"app_profile", "table_prefix"}
    if unknown:
        raise ValueError(f"unknown Bigtable URL option(s): {', '.join(sorted(unknown))}")
    profile = query.get("app_profile", [""])[-1] or None
    prefix = query.get("table_prefix", [""])[-1]
    if not _TABLE_PREFIX.match(prefix):
        raise ValueError("table_prefix may hold letters, digits, '_', '-', '.' (40 at most)")
    return project, instance, profile, prefix


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TALLY_", env_file=".env", extra="ignore", frozen=True
    )

    environment: Literal["development", "production"] = "development"
    store_url: SecretStr = Field(
        default=SecretStr("sqlite:///./data/tally.db"),
        description="sqlite:///path selects SQLite; mongodb:// or mongodb+srv:// selects MongoDB;"
        " bigtable://PROJECT/INSTANCE[?app_profile=...&table_prefix=...] selects Cloud Bigtable.",
    )
    mongo_database: str = "tally"
    mongo_write_concern: str = Field(
        default="majority", description="w= for every write: 'majority' or a number."
    )
    mongo_journal: bool = True
    mongo_timeout_ms: int = Field(
        default=5000,
        ge=100,
        le=120_000,
        description="Bound of every MongoDB call (the driver's timeoutMS; also server"
        " selection and connect): past it the request gets 503. The URL's own wins.",
    )
    bigtable_timeout_ms: int = Field(
        default=5000,
        ge=100,
        le=120_000,
        description="Deadline of every Bigtable call; a passed one answers 503.",
    )

    jwt_issuer: str = DEV_ISSUER
    jwt_audience: str = "tally"
    keys_dir: Path = Field(
        default=Path("./data/keys"),
        description="Directory of PEM signing keys (a mounted secret in production).",
    )
    token_ttl_seconds: int = Field(default=900, ge=30, le=86_400)
    token_cache_size: int = Field(default=10_000, ge=0, le=1_000_000)
    max_batch: int = Field(default=100_000, ge=1, le=10_000_000)
    max_body_bytes: int = Field(
        default=65_536, ge=1024, le=10_485_760, description="Largest request body accepted."
    )
    sqlite_busy_timeout_ms: int = Field(default=10_000, ge=0)
    coalesce: bool = Field(
        default=True, description="Merge concurrent strict allocations into one store write."
    )
    group_commit: bool = Field(
        default=True,
        description="Commit the strict allocations of every counter pending in a process"
        " together (one transaction, one fsync on SQLite).",
    )
    # The HTTP edge (tally serve's server, granian): what one hostile client can hold.
    http_max_header_bytes: int = Field(
        default=16_384,
        ge=8192,
        le=1_048_576,
        description="Largest request head (request line and headers); bigger is a 431.",
    )
    http_header_timeout_seconds: float = Field(
        default=10.0,
        ge=1,
        le=60,
        description="Deadline for a request head, counted from when the server waits for"
        " one: a new connection, or an idle keep-alive one (so also the idle timeout).",
    )
    http_body_timeout_seconds: float = Field(
        default=10.0,
        ge=0.5,
        le=300,
        description="Deadline for receiving a request body once its handler reads it; 408.",
    )
    http_max_connections: int = Field(
        default=512,
        ge=1,
        le=65_536,
        description="Open connections per worker process; more wait in the listen backlog.",
    )
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Serve Prometheus metrics on this port (its own listener); unset: off."
        " With `tally serve --workers N`, each worker takes the first free one of this port"
        " and the N - 1 after it.",
    )
    metrics_host: str = Field(default="127.0.0.1", description="Interface of the metrics port.")
    fast_path: bool = Field(
        default=True,
        description="Dispatch POST /v1/sequences/{name}/next before FastAPI's router"
        " (same endpoint and error handlers; see api.fastpath).",
    )
    log_format: Literal["json", "text"] | None = Field(
        default=None,
        description="json (one object per line) or text; default json in production,"
        " text in development.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = Field(default=True, description="One access line per request (api.access).")
    access_log_flush_ms: int | None = Field(
        default=None,
        ge=0,
        le=10_000,
        description="A finished request's access line and request-histogram observation"
        " wait up to this long to be settled with others (one write per batch; a 5xx at"
        " once); 0 settles each at once. Default 50 in production, 0 in development.",
    )
    headroom_scan_seconds: float = Field(
        default=300.0,
        ge=5,
        le=86_400,
        description="With metrics on: how often the sequences near exhaustion are counted.",
    )
    usage_flush_seconds: float = Field(
        default=10.0,
        ge=0.1,
        le=300,
        description="How often each process adds its usage counts to the store.",
    )
    idempotency_ttl_seconds: int = Field(
        default=86_400,
        ge=60,
        le=30 * 86_400,
        description="How long an Idempotency-Key and its response are kept (at least).",
    )
    # Cached-mode blocks: sized between min and max, aiming to last about target seconds.
    cached_block_min: int = Field(default=100, ge=1, le=10_000_000)
    cached_block_max: int = Field(default=1_000_000, ge=1, le=100_000_000)
    cached_block_target_seconds: float = Field(default=2.0, gt=0, le=3600)

    # A siloed (branded) instance serves one tenant; empty means pooled.
    tenant: str = ""
    brand_name: str = "Tally"
    brand_color: str = "#3b5bdb"
    brand_logo_url: str = ""
    public_url: str = ""
    # The platform's DNS zone (tenants get <slug>.<platform_domain>); used by `tally provision`.
    platform_domain: str = ""

    # Tenants, OAuth clients and tenants' own identity providers (tenants/, auth/).
    status_cache_seconds: float = Field(
        default=10.0,
        ge=0,
        le=60,
        description="Lifecycle bound: a suspension or revocation is enforced within this.",
    )
    unregistered_tenants: Literal["allow", "refuse"] | None = Field(
        default=None,
        description="Tokens for tenants not in the registry; default allow in development,"
        " refuse in production.",
    )
    oauth_max_failures: int = Field(default=5, ge=1, le=1000)
    oauth_address_max_failures: int = Field(
        default=20,
        ge=1,
        le=100_000,
        description="Failed client authentications (any client ids) per source address"
        " and window before that address is locked out.",
    )
    oauth_lockout_seconds: int = Field(default=60, ge=1, le=3600)
    jwks_cache_seconds: int = Field(default=3600, ge=60, le=86_400)
    jwks_refetch_cooldown_seconds: float = Field(default=60.0, ge=1, le=3600)

    @field_validator("store_url")
    @classmethod
    def _known_scheme(cls, v: SecretStr) -> SecretStr:
        url = v.get_secret_value()
        if not url.startswith(("sqlite:///", "mongodb://", "mongodb+srv://", "bigtable://")):
            raise ValueError(
                "must start with sqlite:///, mongodb://, mongodb+srv:// or bigtable://"
            )
        if url.startswith("bigtable://") and not _BIGTABLE.match(url):
            raise ValueError(
                "must be bigtable://PROJECT/INSTANCE[?app_profile=...&table_prefix=...]"
            )
        if url.startswith("bigtable://"):
            bigtable_url_parts(url)  # its options, as the store will read them
        if mongo_url_options(url).get("w") == "0":
            raise ValueError(_W0)  # names the option only: the URL may hold a password
        return v

    @field_validator("tenant")
    @classmethod
    def _tenant_slug(cls, v: str) -> str:
        if v and not _SLUG.match(v):
            raise ValueError("must be a tenant slug (lowercase letters, digits, '-')")
        return v

    @field_validator("brand_color")
    @classmethod
    def _color(cls, v: str) -> str:
        if not _COLOR.match(v):
            raise ValueError("must be a #RRGGBB colour")
        return v

    @field_validator("brand_logo_url")
    @classmethod
    def _logo(cls, v: str) -> str:
        if v and not v.startswith("https://"):
            raise ValueError("must be an https:// URL")
        return v

    @field_validator("mongo_write_concern")
    @classmethod
    def _write_concern(cls, v: str) -> str:
        if v != "majority" and not v.isdigit():
            raise ValueError("must be 'majority' or a number of nodes")
        if v.isdigit() and int(v) == 0:
            raise ValueError(_W0)
        return v

    @model_validator(mode="after")
    def _enforce_production_settings(self) -> Settings:
        """Refuse development defaults when running in production."""
        if self.environment != "production":
            return self
        if self.jwt_issuer == DEV_ISSUER:
            raise ValueError("TALLY_JWT_ISSUER must be set to the public URL in production")
        if self.store_url.get_secret_value().startswith("sqlite:///./data"):
            raise ValueError("TALLY_STORE_URL must be set explicitly in production")
        if self.store_kind == "mongodb":
            in_url = mongo_url_options(self.store_url.get_secret_value()).get("w")
            if in_url == "1":
                raise ValueError(f"TALLY_STORE_URL: {_W1}")
            setting = self.mongo_write_concern
            if in_url is None and setting.isdigit() and int(setting) == 1:
                raise ValueError(f"TALLY_MONGO_WRITE_CONCERN: {_W1}")
        return self

    @property
    def store_kind(self) -> Literal["sqlite", "mongodb", "bigtable"]:
        url = self.store_url.get_secret_value()
        if url.startswith("sqlite"):
            return "sqlite"
        return "bigtable" if url.startswith("bigtable://") else "mongodb"

    @property
    def access_log_flush_seconds(self) -> float:
        if self.access_log_flush_ms is not None:
            return self.access_log_flush_ms / 1000
        return 0.05 if self.environment == "production" else 0.0

    @property
    def auto_create_keys(self) -> bool:
        """Development creates a signing key on first start; production never does."""
        return self.environment == "development"

    @property
    def allow_unregistered_tenants(self) -> bool:
        if self.unregistered_tenants is not None:
            return self.unregistered_tenants == "allow"
        return self.environment == "development"


class SettingsError(Exception):
    """A setting is invalid; the message is one line naming it."""


def load_settings() -> Settings:
    """Read settings from the environment, turning validation errors into one line."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = "_".join(str(p) for p in first["loc"]).upper()
        name = f" TALLY_{loc}" if loc else ""  # a model-level message names its settings
        msg = str(first["msg"]).removeprefix("Value error, ")
        raise SettingsError(f"invalid setting{name}: {msg}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings (CLI, ``create_app()`` without arguments).

    Routes read the app's own copy (``request.app.state.settings``) rather than
    overriding this dependency: any ``app.dependency_overrides`` entry makes FastAPI
    re-inspect every dependency on every request.
    """
    return load_settings()
