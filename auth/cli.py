"""``tally token`` and ``tally keys``: development tokens and signing-key rotation."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from auth.keys import KeyRing, KeyRingError
from auth.schemas import SCOPES, TENANT_SCOPES
from auth.tokens import is_tenant_claim, mint
from core.cli import fail, print_table
from core.settings import load_settings

keys_app = typer.Typer(help="Signing keys: generate, list, rotate, retire.", no_args_is_help=True)


def token(
    tenant: Annotated[str, typer.Option(help="Tenant slug (the token's tid claim).")],
    scope: Annotated[str, typer.Option(help="Space-separated scopes.")] = " ".join(TENANT_SCOPES),
    ttl: Annotated[int | None, typer.Option(help="Lifetime in seconds.")] = None,
    subject: Annotated[str, typer.Option(help="The token's sub claim.")] = "dev-cli",
    as_json: Annotated[bool, typer.Option("--json", help="Print a token response.")] = False,
) -> None:
    """Print a signed development token (and nothing else) for TENANT."""
    settings = load_settings()
    if not is_tenant_claim(tenant):
        # Every server would refuse the token (401): say so now, not at the first call.
        fail(f"invalid --tenant {tenant!r}: a slug of 2-32 characters a-z, 0-9 and -")
    scopes = scope.split()
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        fail(f"unknown scope(s): {', '.join(unknown)} (known: {', '.join(SCOPES)})")
    try:
        ring = (
            KeyRing.load_or_create(settings.keys_dir)
            if settings.auto_create_keys
            else KeyRing.load(settings.keys_dir)
        )
    except KeyRingError as exc:
        fail(str(exc))
    lifetime = ttl if ttl is not None else settings.token_ttl_seconds
    if lifetime < 1 or lifetime > 86_400:
        fail("--ttl must be between 1 and 86400 seconds")
    signed = mint(
        ring,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        subject=subject,
        tenant=tenant,
        scopes=scopes,
        ttl_seconds=lifetime,
    )
    if as_json:
        # The shape of an OAuth token response, so scripts can treat both alike.
        body = {
            "access_token": signed,
            "token_type": "Bearer",
            "expires_in": lifetime,
            "scope": " ".join(scopes),
        }
        typer.echo(json.dumps(body))
    else:
        typer.echo(signed)


def _ring() -> KeyRing:
    settings = load_settings()
    try:
        return KeyRing.load(settings.keys_dir)
    except KeyRingError as exc:
        fail(str(exc))


@keys_app.command("generate")
def keys_generate(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Create a key published in the JWKS but not yet signing ('next')."""
    settings = load_settings()
    try:
        if not (settings.keys_dir / "keys.json").exists():
            ring = KeyRing.load_or_create(settings.keys_dir)
            kid = ring.active.kid
        else:
            kid = KeyRing.load(settings.keys_dir).generate()
    except KeyRingError as exc:
        fail(str(exc))
    typer.echo(json.dumps({"kid": kid}) if as_json else f"generated key {kid}")


@keys_app.command("list")
def keys_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List keys and their status (never the key material)."""
    rows = [{"kid": k.kid, "status": k.status, "created_at": k.created_at} for k in _ring().keys]
    if as_json:
        typer.echo(json.dumps(rows))
    else:
        print_table(["kid", "status", "created_at"], rows)


@keys_app.command("rotate")
def keys_rotate(
    force: Annotated[
        bool, typer.Option(help="Skip the wait for JWKS caches (a new key signs at once).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Make the 'next' key sign; the old one ('previous') keeps verifying until retired.

    Refused until the 'next' key has been published for a JWKS cache lifetime (61 s).
    """
    try:
        kid = _ring().rotate(force=force)
    except KeyRingError as exc:
        fail(str(exc))
    typer.echo(json.dumps({"active": kid}) if as_json else f"key {kid} is now active")


@keys_app.command("retire")
def keys_retire(kid: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Unpublish a key and delete its file; tokens it signed are rejected from then on."""
    try:
        _ring().retire(kid)
    except KeyRingError as exc:
        fail(str(exc))
    typer.echo(json.dumps({"retired": kid}) if as_json else f"key {kid} retired")
