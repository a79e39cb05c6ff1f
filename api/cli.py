"""The ``tally`` command: serve the API, and the operator commands of each package."""

from __future__ import annotations

import asyncio
import errno
import sqlite3
from pathlib import Path
from typing import Annotated

import typer

from auth import cli as auth_cli
from core.cli import cannot_open_store, fail
from core.settings import Settings, SettingsError, load_settings
from ops import cli as ops_cli
from storage import StoreUnavailable, open_store
from storage.sqlite import path_from_url
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
app.command("migrate")(ops_cli.migrate)
app.command("smoke")(ops_cli.smoke)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8080,
    workers: Annotated[int, typer.Option(help="Worker processes.", min=1)] = 1,
    factory: Annotated[
        str,
        typer.Option(
            "--app",
            hidden=True,
            help="Another ASGI app factory to serve the same way (make bench's yardsticks).",
        ),
    ] = "api.app:create_app",
    interface: Annotated[
        str,
        typer.Option(
            hidden=True,
            help="asgi, or rsgi for an --app that speaks granian's RSGI (make bench's rsgi-limit).",
        ),
    ] = "asgi",
    reload: Annotated[
        bool, typer.Option(help="Restart on source changes (development, `make dev`).")
    ] = False,
    reload_dir: Annotated[
        list[Path] | None,
        typer.Option(help="Directories --reload watches (default: the project's packages)."),
    ] = None,
) -> None:
    """Serve the HTTP API with granian (see api.server for why, and its edge limits)."""
    if reload and workers != 1:
        fail("--reload serves one process: drop --workers", 2)
    import logging.config

    from api.app import load_keys
    from api.logs import log_format, logging_config
    from api.server import TALLY_APP, check_can_listen, server
    from auth.keys import KeyRingError

    if interface not in ("asgi", "rsgi") or (interface == "rsgi" and factory == TALLY_APP):
        fail("--interface is asgi or rsgi, for another --app (Tally itself is always on RSGI)", 2)

    settings = load_settings()
    log_config = logging_config(settings)
    logging.config.dictConfig(log_config)
    try:
        # Made here, before workers fork, so they all load the same key.
        load_keys(settings)
    except (KeyRingError, OSError) as exc:
        fail(f"cannot use the signing keys in TALLY_KEYS_DIR ({settings.keys_dir}): {exc}", 2)
    try:
        asyncio.run(_check_store(settings))
    except (StoreUnavailable, OSError, sqlite3.Error) as exc:
        cannot_open_store(exc)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"  # IPv6 in brackets
    # Last before granian, whose own failure to bind is a Rust panic and a traceback.
    try:
        check_can_listen(host, port)
    except ValueError:
        fail(f"--host must be an IP address such as 127.0.0.1 or 0.0.0.0, not {host!r}", 2)
    except OSError as exc:
        hint = _BIND_HINTS.get(exc.errno or 0, "")
        fail(f"cannot listen on {address}: {exc.strerror or exc}{hint}", 2)
    if log_format(settings) == "text":
        typer.echo(
            f"Tally on http://{address} (store: {settings.store_kind}).\n"
            "Get a development token:\n"
            "  .venv/bin/tally token --tenant demo\n"
            'then: curl -H "Authorization: Bearer $TOKEN" -X POST '
            f"http://{address}/v1/sequences -H 'content-type: application/json' "
            '-d \'{"name": "invoices"}\'',
            err=True,
        )
    else:  # a log platform reads stdout: one JSON object per line, nothing else
        logging.getLogger("tally").info("serving on %s, store %s", address, settings.store_kind)
    # SIGTERM: stop accepting, finish the requests in flight, then the lifespan's
    # shutdown (the usage recorder's last flush) in every worker. The same logging
    # config again in each worker; api.access writes the access lines, not granian.
    server(
        settings,
        host=host,
        port=port,
        workers=workers,
        log_config=log_config,
        app=factory,
        rsgi=interface == "rsgi",
        reload_paths=(reload_dir or _source_dirs()) if reload else None,
    ).serve()


_BIND_HINTS = {
    errno.EADDRINUSE: " (another process listens there: stop it or choose another --port)",
    errno.EACCES: " (ports below 1024 need root or CAP_NET_BIND_SERVICE: choose another --port)",
    errno.EADDRNOTAVAIL: " (no interface of this machine has that address: check --host)",
}


def _source_dirs() -> list[Path]:
    """The directories of this project's packages (what a code change touches)."""
    root = Path(__file__).resolve().parents[1]
    return sorted(p.parent for p in root.glob("*/__init__.py") if p.parent.name != "tests")


async def _check_store(settings: Settings) -> None:
    """Open, prepare and ping the store once, so a bad one is one line, not a traceback."""
    if settings.store_kind == "sqlite":
        path_from_url(settings.store_url.get_secret_value()).parent.mkdir(
            parents=True, exist_ok=True
        )
    store = open_store(settings)
    try:
        await store.start()
        await store.ping()
    finally:
        await store.close()


def main() -> None:
    """Console-script entry: turn a bad setting into one line, not a traceback."""
    try:
        app()
    except SettingsError as exc:
        typer.echo(f"tally: {exc}", err=True)
        raise SystemExit(2) from None
