"""Shared fixtures: isolated settings, every store backend, an app with its lifespan."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.app import create_app
from auth.keys import KeyRing
from auth.tokens import mint
from core.clock import FrozenClock
from core.settings import Settings
from storage import Store
from storage.mongo import MongoStore
from storage.sqlite import SQLiteStore

ALL_SCOPES = "sequences:read sequences:next sequences:write"


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No TALLY_* variable from the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("TALLY_"):
            monkeypatch.delenv(name)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        store_url=f"sqlite:///{tmp_path}/tally.db",  # type: ignore[arg-type]
        keys_dir=tmp_path / "keys",
        jwt_issuer="https://tally.test",
        jwt_audience="tally-test",
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture(scope="session")
def bigtable_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One emulator for the session; ``BIGTABLE_EMULATOR_HOST`` points at it."""
    from tests.bigtable_emulator import emulator

    with emulator(tmp_path_factory.mktemp("bigtable")) as host:
        before = os.environ.get("BIGTABLE_EMULATOR_HOST")
        os.environ["BIGTABLE_EMULATOR_HOST"] = host
        try:
            yield host
        finally:
            if before is None:
                os.environ.pop("BIGTABLE_EMULATOR_HOST", None)
            else:
                os.environ["BIGTABLE_EMULATOR_HOST"] = before


def _backends() -> list[Any]:
    params: list[Any] = [
        "sqlite",
        "mongomock",
        pytest.param("bigtable", marks=pytest.mark.bigtable),
    ]
    reason = "MONGODB_URI is not set: real-MongoDB contract run skipped"
    params.append(
        pytest.param(
            "mongodb",
            marks=[
                pytest.mark.mongodb,
                pytest.mark.skipif(not os.environ.get("MONGODB_URI"), reason=reason),
            ],
        )
    )
    return params


async def make_store(kind: str, tmp_path: Path) -> Store:
    """A started store of the given kind, empty."""
    if kind == "bigtable":
        from storage.bigtable import BigtableStore
        from storage.bigtable_rows import BigtableURL

        # A table of its own per test: the emulator keeps every table in memory.
        table_prefix = f"t{uuid.uuid4().hex[:12]}_"
        store: Store = BigtableStore(BigtableURL("tally-test", "tally", None, table_prefix))
    elif kind == "sqlite":
        store = SQLiteStore(tmp_path / "contract.db")
    elif kind == "mongomock":
        from mongomock_motor import AsyncMongoMockClient

        store = MongoStore(AsyncMongoMockClient()["tally"])
    else:
        from pymongo import AsyncMongoClient

        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            os.environ["MONGODB_URI"], tz_aware=True
        )
        db_name = f"tally_test_{os.getpid()}_{tmp_path.name}"[:60]
        await client.drop_database(db_name)
        store = MongoStore(client[db_name], on_close=client.close)
    await store.start()
    return store


@pytest.fixture(params=_backends())
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "bigtable":
        request.getfixturevalue("bigtable_host")
    s = await make_store(request.param, tmp_path)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
async def app(settings: Settings, clock: FrozenClock) -> AsyncIterator[FastAPI]:
    application = create_app(settings, clock=clock)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://tally.test") as c:
        yield c


@pytest.fixture
def ring(app: FastAPI) -> KeyRing:
    r: KeyRing = app.state.verifier.ring
    return r


TokenFactory = Callable[..., str]


def app_token(
    app: FastAPI, tenant: str = "acme", scopes: str = ALL_SCOPES, ttl: int = 300, subject: str = ""
) -> str:
    """A valid token signed with ``app``'s own key ring, for its issuer and audience."""
    settings: Settings = app.state.settings
    return mint(
        app.state.verifier.ring,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        subject=subject or f"test-{tenant}",
        tenant=tenant,
        scopes=scopes.split(),
        ttl_seconds=ttl,
    )


@pytest.fixture
def make_token(app: FastAPI) -> TokenFactory:
    """``make_token(tenant, scopes=..., ttl=...)``: a valid token of the ``app`` fixture."""

    def factory(tenant: str = "acme", scopes: str = ALL_SCOPES, ttl: int = 300) -> str:
        return app_token(app, tenant, scopes, ttl)

    return factory


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def auth_headers(make_token: TokenFactory) -> Iterator[Callable[..., dict[str, str]]]:
    yield lambda tenant="acme", scopes=ALL_SCOPES: bearer(make_token(tenant, scopes))
