"""``tally tenants``, ``tally clients`` and ``tally admin clients``: onboarding from a shell.

Each command opens the store named by the same settings as the server, calls one
``TenantService`` method (the admin API calls the same ones) and closes the store.
Input is validated in full before anything is written.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError

from audit.service import Actor
from core.cli import cannot_open_store, fail, print_table
from core.errors import TallyError
from core.settings import load_settings
from storage import open_store
from tenants.schemas import (
    ClientCreate,
    ClientOut,
    NewClient,
    TenantCreate,
    TenantOut,
    TenantUpdate,
)
from tenants.service import TenantService
from usage.recorder import UsageRecorder
from usage.schemas import Granularity, UsageOut
from usage.service import UsageService

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

tenants_app = typer.Typer(help="Tenants: create, list, show, update, suspend, resume, delete.")
clients_app = typer.Typer(help="A tenant's API clients: create, list, revoke, rotate.")
admin_app = typer.Typer(help="Platform administration.")
admin_clients_app = typer.Typer(help="Platform-admin API clients (scope platform:admin).")
admin_app.add_typer(admin_clients_app, name="clients")
for _app in (tenants_app, clients_app, admin_app, admin_clients_app):
    _app.info.no_args_is_help = True

Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
TenantOpt = Annotated[str, typer.Option("--tenant", help="The tenant's slug.")]

# pydantic field -> the option a user typed, for one-line error messages.
_OPTIONS = {
    "slug": "SLUG",
    "name": "--name",
    "domain": "--domain",
    "plan": "--plan",
    "timezone": "--timezone",
    "branding.primary_color": "--color",
    "branding.logo_url": "--logo-url",
    "branding.display_name": "--display-name",
    "identity_provider.issuer": "--idp-issuer",
    "identity_provider.jwks_url": "--idp-jwks-url",
    "identity_provider.audience": "--idp-audience",
    "identity_provider.client_claim": "--idp-client-claim",
    "scopes": "--scope",
}


def _validate(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"] if not isinstance(p, int))
        option = _OPTIONS.get(where, where or "input")
        message = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] == "string_pattern_mismatch" and where == "slug":
            message = "must be 2-32 of a-z 0-9 '-', starting with a letter"
        elif first["type"] == "string_pattern_mismatch" and option == "--color":
            message = "must be a #RRGGBB colour"
        fail(f"invalid {option}: {message}")


def _operator() -> Actor:
    """The audit actor of a CLI change: the operator's login name (attribution, not proof)."""
    try:
        user = getpass.getuser()
    except Exception:  # no USER/LOGNAME and no passwd entry, e.g. an arbitrary container uid
        user = "unknown"
    return Actor(subject=f"cli:{user}")


def _run(call: Callable[[TenantService], Awaitable[T]]) -> T:
    settings = load_settings()

    async def main() -> T:
        store = open_store(settings)
        try:
            try:
                await store.start()
            except (TallyError, OSError, sqlite3.Error) as exc:
                cannot_open_store(exc)
            service = TenantService(store, own_issuer=settings.jwt_issuer)
            return await call(service)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except TallyError as exc:
        fail(exc.detail)


def _emit(model: BaseModel | list[Any], as_json: bool, human: Callable[[], None]) -> None:
    if as_json:
        if isinstance(model, list):
            typer.echo(json.dumps([m.model_dump(mode="json") for m in model]))
        else:
            typer.echo(model.model_dump_json())
    else:
        human()


def _show_tenant(t: TenantOut) -> None:
    idp = t.identity_provider
    rows = [
        ("slug", t.slug),
        ("name", t.name),
        ("status", t.status),
        ("plan", f"{t.plan.name} ({t.plan.requests_per_second} req/s, batch {t.plan.max_batch})"),
        ("domain", t.domain or "-"),
        ("timezone", t.timezone),
        (
            "branding",
            f"{t.branding.display_name} {t.branding.primary_color} "
            f"{t.branding.logo_url or ''}".rstrip(),
        ),
        ("identity provider", f"{idp.issuer} (aud {idp.audience})" if idp else "-"),
        ("created", t.created_at.isoformat()),
        ("updated", t.updated_at.isoformat()),
    ]
    for key, value in rows:
        typer.echo(f"{key + ':':<19}{value}")


def _show_secret(c: NewClient) -> None:
    typer.echo(f"client_id:     {c.client_id}")
    typer.echo(f"client_secret: {c.client_secret}")
    typer.echo(f"scopes:        {' '.join(c.scopes)}")
    typer.echo("The secret is shown only now; store it in the client's secret manager.")


def _idp(
    issuer: str | None, jwks_url: str | None, audience: str | None, claim: str | None
) -> dict[str, Any] | None:
    given = {"issuer": issuer, "jwks_url": jwks_url, "audience": audience, "client_claim": claim}
    if all(v is None for v in given.values()):
        return None
    missing = [k for k in ("issuer", "jwks_url", "audience") if given[k] is None]
    if missing:
        fail(f"--idp-{missing[0].replace('_', '-')} is required with the other --idp-* options")
    return {k: v for k, v in given.items() if v is not None}


# -- tally tenants ----------------------------------------------------------------------
Name = Annotated[str | None, typer.Option(help="Display name of the business.")]
Domain = Annotated[str | None, typer.Option(help="DNS name of its branded instance.")]
PlanOpt = Annotated[str | None, typer.Option(help="free | standard | enterprise.")]
Color = Annotated[str | None, typer.Option(help="Brand colour, #RRGGBB.")]
Logo = Annotated[str | None, typer.Option("--logo-url", help="https:// URL of the logo.")]
Zone = Annotated[str | None, typer.Option(help="IANA time zone for reset periods.")]
IdpIssuer = Annotated[str | None, typer.Option(help="External IdP: issuer (iss).")]
IdpJwks = Annotated[str | None, typer.Option(help="External IdP: JWKS URL (https).")]
IdpAudience = Annotated[str | None, typer.Option(help="External IdP: required aud.")]
IdpClaim = Annotated[str | None, typer.Option(help="External IdP: claim naming the client.")]


@tenants_app.command("create")
def tenants_create(
    slug: Annotated[str, typer.Argument(help="Tenant id: 2-32 of a-z 0-9 '-'.")],
    name: Annotated[str, typer.Option(help="Display name of the business.")],
    domain: Domain = None,
    plan: Annotated[str, typer.Option(help="free | standard | enterprise.")] = "standard",
    color: Color = None,
    logo_url: Logo = None,
    timezone: Annotated[str, typer.Option(help="IANA time zone.")] = "UTC",
    idp_issuer: IdpIssuer = None,
    idp_jwks_url: IdpJwks = None,
    idp_audience: IdpAudience = None,
    idp_client_claim: IdpClaim = None,
    as_json: Json = False,
) -> None:
    """Create a tenant, its 'default' sequence and first API client (secret shown once)."""
    branding = {"primary_color": color, "logo_url": logo_url}
    spec = _validate(
        TenantCreate,
        {
            "slug": slug,
            "name": name,
            "domain": domain,
            "plan": plan,
            "timezone": timezone,
            "branding": {k: v for k, v in branding.items() if v is not None},
            "identity_provider": _idp(idp_issuer, idp_jwks_url, idp_audience, idp_client_claim),
        },
    )
    done = _run(lambda s: s.onboard(spec, actor=_operator()))

    def human() -> None:
        typer.echo(f"Created tenant {slug} with its 'default' sequence and a first API client.")
        _show_secret(
            NewClient(
                client_id=done.client_id,
                client_secret=done.client_secret,
                tenant=slug,
                name="default",
                scopes=done.scopes,
            )
        )

    _emit(done, as_json, human)


@tenants_app.command("list")
def tenants_list(as_json: Json = False) -> None:
    """List every tenant."""

    async def everything(s: TenantService) -> list[TenantOut]:
        out: list[TenantOut] = []
        while True:
            page = await s.list_tenants(after=out[-1].slug if out else None, limit=500)
            out.extend(page)
            if len(page) < 500:
                return out

    tenants = _run(everything)
    rows = [
        {
            "slug": t.slug,
            "name": t.name,
            "status": t.status,
            "plan": t.plan.name,
            "domain": t.domain,
            "timezone": t.timezone,
        }
        for t in tenants
    ]
    _emit(
        tenants,
        as_json,
        lambda: print_table(["slug", "name", "status", "plan", "domain", "timezone"], rows),
    )


@tenants_app.command("show")
def tenants_show(slug: str, as_json: Json = False) -> None:
    """Show one tenant."""
    tenant = _run(lambda s: s.get(slug))
    _emit(tenant, as_json, lambda: _show_tenant(tenant))


def _instant(option: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        fail(f"invalid {option}: not an ISO 8601 date-time")
    if at.tzinfo is None:
        fail(f"invalid {option}: give a time zone, e.g. 2026-11-01T00:00:00Z")
    return at


@tenants_app.command("usage")
def tenants_usage(
    slug: str,
    granularity: Annotated[
        Granularity, typer.Option(help="UTC hours or UTC days.")
    ] = Granularity.day,
    start: Annotated[
        str | None, typer.Option("--from", help="Start, ISO 8601 with a zone (inclusive).")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="End, ISO 8601 with a zone (exclusive).")
    ] = None,
    sequence: Annotated[str | None, typer.Option(help="One sequence; default all.")] = None,
    as_json: Json = False,
) -> None:
    """Numbers a tenant took over time (what the servers flushed; docs/audit-and-usage.md)."""
    since, until = _instant("--from", start), _instant("--to", end)

    async def series(s: TenantService) -> UsageOut:
        await s.get(slug)  # an unknown tenant is an error, not an empty series
        usage = UsageService(s.store, UsageRecorder(s.store))
        return await usage.series(
            slug, sequence=sequence, granularity=granularity, start=since, end=until
        )

    out = _run(series)
    rows = [
        {"start": p.start.isoformat(), "requests": p.requests, "numbers": p.numbers}
        for p in out.points
    ]

    def human() -> None:
        print_table(["start", "requests", "numbers"], rows)
        typer.echo(f"total: {out.requests} requests, {out.numbers} numbers")

    _emit(out, as_json, human)


@tenants_app.command("update")
def tenants_update(
    slug: str,
    name: Name = None,
    domain: Domain = None,
    plan: PlanOpt = None,
    color: Color = None,
    logo_url: Logo = None,
    display_name: Annotated[str | None, typer.Option(help="Brand display name.")] = None,
    timezone: Zone = None,
    idp_issuer: IdpIssuer = None,
    idp_jwks_url: IdpJwks = None,
    idp_audience: IdpAudience = None,
    idp_client_claim: IdpClaim = None,
    clear_idp: Annotated[bool, typer.Option(help="Remove the external IdP.")] = False,
    clear_domain: Annotated[bool, typer.Option(help="Remove the domain.")] = False,
    as_json: Json = False,
) -> None:
    """Change some of a tenant's settings (options left out stay as they are)."""
    data: dict[str, Any] = {
        k: v
        for k, v in {"name": name, "domain": domain, "plan": plan, "timezone": timezone}.items()
        if v is not None
    }
    branding = {"primary_color": color, "logo_url": logo_url, "display_name": display_name}
    if any(v is not None for v in branding.values()):
        data["branding"] = {k: v for k, v in branding.items() if v is not None}
    idp = _idp(idp_issuer, idp_jwks_url, idp_audience, idp_client_claim)
    if idp is not None and clear_idp:
        fail("--clear-idp cannot be combined with --idp-* options")
    if idp is not None or clear_idp:
        data["identity_provider"] = idp
    if domain is not None and clear_domain:
        fail("--clear-domain cannot be combined with --domain")
    if clear_domain:
        data["domain"] = None
    if not data:
        fail("nothing to update: pass at least one option (see --help)")
    patch = _validate(TenantUpdate, data)
    tenant = _run(lambda s: s.update(slug, patch, actor=_operator()))
    _emit(tenant, as_json, lambda: _show_tenant(tenant))


@tenants_app.command("suspend")
def tenants_suspend(slug: str, as_json: Json = False) -> None:
    """Suspend a tenant: no new tokens; its tokens are refused within the lifecycle bound."""
    tenant = _run(lambda s: s.suspend(slug, actor=_operator()))
    _emit(tenant, as_json, lambda: typer.echo(f"tenant {slug} suspended"))


@tenants_app.command("resume")
def tenants_resume(slug: str, as_json: Json = False) -> None:
    """Lift a tenant's suspension."""
    tenant = _run(lambda s: s.resume(slug, actor=_operator()))
    _emit(tenant, as_json, lambda: typer.echo(f"tenant {slug} active"))


@tenants_app.command("delete")
def tenants_delete(
    slug: str,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: this deletes its numbers.")] = False,
    as_json: Json = False,
) -> None:
    """Delete a suspended tenant with its clients, sequences and counters."""
    if not yes:
        fail(f"deleting {slug} deletes its sequences and counters too; pass --yes to confirm")
    _run(lambda s: s.delete(slug, actor=_operator()))
    if as_json:
        typer.echo(json.dumps({"deleted": slug}))
    else:
        typer.echo(f"tenant {slug} deleted")


# -- tally clients -------------------------------------------------------------------------
def _client_rows(clients: list[ClientOut]) -> list[dict[str, Any]]:
    return [
        {
            "client_id": c.client_id,
            "name": c.name,
            "status": c.status,
            "scopes": " ".join(c.scopes),
            "created_at": c.created_at.isoformat(),
            "last_used_at": c.last_used_at.isoformat() if c.last_used_at else None,
        }
        for c in clients
    ]


def _print_clients(clients: list[ClientOut]) -> None:
    print_table(
        ["client_id", "name", "status", "scopes", "created_at", "last_used_at"],
        _client_rows(clients),
    )


@clients_app.command("create")
def clients_create(
    tenant: TenantOpt,
    name: Annotated[str, typer.Option(help="What the client is for.")] = "default",
    scope: Annotated[
        str, typer.Option(help="Space-separated scopes.")
    ] = "sequences:read sequences:next sequences:write",
    as_json: Json = False,
) -> None:
    """Create an API client for a tenant (its secret is shown once)."""
    spec = _validate(ClientCreate, {"name": name, "scopes": scope.split()})
    created = _run(lambda s: s.create_client(tenant, spec, actor=_operator()))
    _emit(created, as_json, lambda: _show_secret(created))


@clients_app.command("list")
def clients_list(tenant: TenantOpt, as_json: Json = False) -> None:
    """List a tenant's API clients (never their secrets)."""
    clients = _run(lambda s: s.list_clients(tenant))
    _emit(clients, as_json, lambda: _print_clients(clients))


@clients_app.command("revoke")
def clients_revoke(client_id: str, tenant: TenantOpt, as_json: Json = False) -> None:
    """Revoke a client: no new tokens; its tokens are refused within the lifecycle bound."""
    revoked = _run(lambda s: s.revoke_client(tenant, client_id, actor=_operator()))
    _emit(revoked, as_json, lambda: typer.echo(f"client {client_id} revoked"))


@clients_app.command("rotate")
def clients_rotate(client_id: str, tenant: TenantOpt, as_json: Json = False) -> None:
    """Give a client a new secret (shown once); the old secret stops working at once."""
    rotated = _run(lambda s: s.rotate_client(tenant, client_id, actor=_operator()))
    _emit(rotated, as_json, lambda: _show_secret(rotated))


# -- tally admin clients ----------------------------------------------------------------
@admin_clients_app.command("create")
def admin_clients_create(
    name: Annotated[str, typer.Option(help="What the client is for.")] = "admin",
    as_json: Json = False,
) -> None:
    """Create a platform-admin client (scope platform:admin, no tenant; secret shown once)."""
    if not name.strip() or len(name) > 64:
        fail("invalid --name: must be 1-64 characters")
    created = _run(lambda s: s.create_admin_client(name.strip(), actor=_operator()))
    _emit(created, as_json, lambda: _show_secret(created))


@admin_clients_app.command("list")
def admin_clients_list(as_json: Json = False) -> None:
    """List platform-admin clients."""
    clients = _run(lambda s: s.list_clients(""))
    _emit(clients, as_json, lambda: _print_clients(clients))


@admin_clients_app.command("revoke")
def admin_clients_revoke(client_id: str, as_json: Json = False) -> None:
    """Revoke a platform-admin client."""
    revoked = _run(lambda s: s.revoke_client("", client_id, actor=_operator()))
    _emit(revoked, as_json, lambda: typer.echo(f"client {client_id} revoked"))


def provision(
    slug: Annotated[
        str | None, typer.Argument(help="The tenant's slug (none with --pooled).")
    ] = None,
    pooled: Annotated[
        bool,
        typer.Option(
            "--pooled", help="Render the pooled instance's Helm values (needs the outputs)."
        ),
    ] = False,
    out: Annotated[
        Path,
        typer.Option(
            help="Root to write under (terraform/live/tenants/, deploy/tenants/ or deploy/pooled/)."
        ),
    ] = Path("."),
    terraform_outputs: Annotated[
        Path | None,
        typer.Option(help="`terraform output -json` of terraform/live, to merge in."),
    ] = None,
    platform_domain: Annotated[
        str | None, typer.Option(help="Platform DNS zone; default TALLY_PLATFORM_DOMAIN.")
    ] = None,
    image_tag: Annotated[str | None, typer.Option(help="Image tag to deploy.")] = None,
    as_json: Json = False,
) -> None:
    """Render SLUG's provisioning bundle (its Terraform tenant file and Helm values), or
    with --pooled the pooled instance's Helm values."""
    from tenants.provision import render, render_pooled

    if pooled == (slug is not None):
        fail("give SLUG or --pooled, one of them")
    outputs: dict[str, Any] | None = None
    if terraform_outputs is not None:
        try:
            outputs = json.loads(terraform_outputs.read_text())
        except (OSError, ValueError) as exc:
            fail(f"cannot read --terraform-outputs {terraform_outputs}: {exc}")
        if not isinstance(outputs, dict):
            fail(f"--terraform-outputs {terraform_outputs} is not `terraform output -json`")
    try:
        if slug is None:
            if outputs is None:
                fail("--pooled needs --terraform-outputs (its role, hosts and secrets)")
            files = render_pooled(outputs, image_tag=image_tag)
        else:
            domain = platform_domain
            if domain is None:
                domain = load_settings().platform_domain
            tenant = _run(lambda s: s.get(slug))
            files = render(
                tenant, platform_domain=domain or None, outputs=outputs, image_tag=image_tag
            )
    except TallyError as exc:
        fail(exc.detail)
    written = []
    for relative, text in files.items():
        target = out / relative
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.write_text(text)
            tmp.replace(target)
        except OSError as exc:
            fail(f"cannot write {exc.filename or target}: {exc.strerror or exc}")
        written.append(str(target))
    if as_json:
        typer.echo(json.dumps({"tenant": slug, "files": written}))
        return
    for path in written:
        typer.echo(f"wrote {path}")
    if slug is not None:
        typer.echo(
            "next: terraform -chdir=terraform/live apply, then "
            f"helm upgrade --install tally deploy/helm/tally -n tally-{slug} "
            f"-f deploy/tenants/{slug}/values.yaml"
        )
