"""The ``tally`` command: serve the API, and the operator commands of each package."""

from __future__ import annotations

from typing import Annotated

import typer

from api.settings import SettingsError, load_settings
from auth import cli as auth_cli
from core.cli import fail
from tenants import cli as tenants_cli

app = typer.Typer(
    help="Tally: unique, durable, per-tenant sequence numbers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("token")(auth_cli.token)
app.add_typer(auth_cli.keys_app, name="keys")
app.add_typer(tenants_cli.tenants_app, name="tenants")
app.add_typer(tenants_cli.clients_app, name="clients")
app.add_typer(tenants_cli.admin_app, name="admin")
app.command("provision")(tenants_cli.provision)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8080,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes.")] = 1,
) -> None:
    """Serve the HTTP API with uvicorn."""
    import uvicorn

    from api.app import load_keys
    from api.logs import uvicorn_log_config
    from auth.keys import KeyRingError

    settings = load_settings()
    try:
        # Made here, before workers fork, so they all load the same key.
        load_keys(settings)
    except KeyRingError as exc:
        fail(str(exc))
    if settings.store_kind == "sqlite":
        from storage.sqlite import path_from_url

        path_from_url(settings.store_url.get_secret_value()).parent.mkdir(
            parents=True, exist_ok=True
        )
    typer.echo(
        f"Tally on http://{host}:{port} (store: {settings.store_kind}).\n"
        "Get a development token:\n"
        "  .venv/bin/tally token --tenant demo\n"
        'then: curl -H "Authorization: Bearer $TOKEN" -X POST '
        f"http://{host}:{port}/v1/sequences -H 'content-type: application/json' "
        '-d \'{"name": "invoices"}\'',
        err=True,
    )
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=False,
        log_config=uvicorn_log_config(),
        server_header=False,
        log_level="info",
    )


def main() -> None:
    """Console-script entry: turn a bad setting into one line, not a traceback."""
    try:
        app()
    except SettingsError as exc:
        typer.echo(f"tally: {exc}", err=True)
        raise SystemExit(2) from None
