"""``tally migrate`` and ``tally smoke``: thin shells over ops.migrate and ops.smoke."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Annotated

import typer
from pymongo.errors import OperationFailure

from core.cli import cannot_open_store, fail
from core.settings import Settings, load_settings
from ops import migrate as migration
from ops import smoke as smoke_check
from storage import StoreUnavailable, open_store
from storage.admin import open_admin
from storage.sqlite import path_from_url

Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _password(path: Path | None) -> str:
    if path is None:
        fail("--password-file is required to create an instance's database user")
    try:
        password = path.read_text().rstrip("\r\n")
    except OSError as exc:
        fail(f"cannot read --password-file: {exc.strerror}")
    if not password:
        fail("--password-file is empty")
    return password


async def _migrate(
    settings: Settings, database: str, user: str | None, password: str | None
) -> migration.MigrateResult:
    if settings.store_kind == "sqlite":
        path_from_url(settings.store_url.get_secret_value()).parent.mkdir(
            parents=True, exist_ok=True
        )
    settings = settings.model_copy(update={"mongo_database": database})
    admin = open_admin(settings, database=database)
    try:
        user_info = None
        if user is not None and admin.kind == "mongodb":  # SQLite and Bigtable have no users
            assert password is not None
            user_info = await migration.ensure_user(admin, user, password, database)
        store = open_store(settings)
        try:
            result = await migration.migrate(store, admin, database=database)
        finally:
            await store.close()
        result.user = user_info
        return result
    finally:
        await admin.close()


def migrate(
    tenant: Annotated[
        str | None,
        typer.Option(help="Also create/update this tenant's database user (admin credentials)."),
    ] = None,
    pooled: Annotated[
        bool, typer.Option("--pooled", help="Also create/update the pooled instance's user.")
    ] = False,
    password_file: Annotated[
        Path | None,
        typer.Option(help="File holding the instance user's password (from its secret)."),
    ] = None,
    as_json: Json = False,
) -> None:
    """Create tables and indexes, apply data migrations, and (platform) an instance's user.

    Idempotent, and safe to run twice at once. Without --tenant/--pooled it works on the
    database the settings name, with whatever credentials TALLY_STORE_URL holds.
    """
    settings = load_settings()
    if tenant is not None and pooled:
        fail("give --tenant or --pooled, not both")
    user: str | None = None
    database = settings.mongo_database
    if tenant is not None:
        if not migration.valid_slug(tenant):
            fail(f"--tenant {tenant!r} is not a tenant slug")
        user, database = migration.tenant_user(tenant), migration.tenant_database(tenant)
    elif pooled:
        user = migration.POOLED_USER
    password = None
    if user is not None and settings.store_kind == "mongodb":  # SQLite, Bigtable: no users
        password = _password(password_file)
    try:
        result = asyncio.run(_migrate(settings, database, user, password))
    except StoreUnavailable as exc:
        fail(f"cannot reach the store named by TALLY_STORE_URL: {exc.detail}", 2)
    except OperationFailure as exc:
        # e.g. not authorised: the message names the command, never the password.
        fail(f"the store refused: {exc.details.get('errmsg') if exc.details else exc}", 2)
    except (OSError, sqlite3.Error) as exc:
        cannot_open_store(exc)
    if as_json:
        typer.echo(json.dumps(result.as_dict(), sort_keys=True))
        return
    applied = ", ".join(result.applied) or "none pending"
    count = sum(len(v) for v in result.indexes.values())
    typer.echo(
        f"migrated {result.backend} database {result.database}: data migrations {applied};"
        f" {count} indexes"
    )
    if result.user:
        typer.echo(
            f"user {result.user['name']} {result.user['outcome']}: readWrite on"
            f" {result.user['database']} only"
        )
    elif user is not None and result.backend == "bigtable":
        typer.echo(
            "no database user: Bigtable has none (grant the instance's service account"
            " roles/bigtable.user by IAM)"
        )
    elif user is not None:
        typer.echo("no database user: SQLite has none (protect the file instead)")


def smoke(
    url: Annotated[
        str, typer.Option(help="Base URL of the instance, e.g. https://acme.tally.example.com.")
    ],
    client_id: Annotated[str, typer.Option(help="An API client of a tenant served there.")],
    client_secret: Annotated[
        str,
        typer.Option(
            envvar="TALLY_SMOKE_CLIENT_SECRET",
            help="Its secret (or the env var, which keeps it out of the process list).",
        ),
    ],
    sequence: Annotated[
        str, typer.Option(help="The dedicated smoke sequence.")
    ] = smoke_check.SMOKE_SEQUENCE,
    timeout: Annotated[float, typer.Option(help="Seconds per request.")] = 10.0,
    as_json: Json = False,
) -> None:
    """Check a deployed instance: healthz, readyz, a token, a number above the last one."""
    try:
        result = asyncio.run(
            smoke_check.smoke(
                url, client_id, client_secret, sequence=sequence, request_timeout=timeout
            )
        )
    except smoke_check.SmokeFailed as exc:
        fail(f"smoke failed: {exc}")
    if as_json:
        typer.echo(json.dumps(result.as_dict(), sort_keys=True))
    else:
        typer.echo(
            f"smoke ok: {result.url} healthz, readyz, token, {result.sequence}"
            f" {result.value} > {result.last if result.last is not None else 'nothing yet'}"
        )
