"""Every MongoDB driver option comes from TALLY_STORE_URL or settings; the URL wins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings, SettingsError, load_settings
from storage.factory import open_store
from storage.mongo import MongoStore

COLLECTIONS = (
    "sequences",
    "counters",
    "audit",
    "audit_counters",
    "usage",
    "tenants",
    "clients",
    "idempotency",
)


def mongo(url: str, **settings: Any) -> MongoStore:
    store = open_store(Settings(store_url=url, _env_file=None, **settings))  # type: ignore[arg-type]
    assert isinstance(store, MongoStore)
    return store


def collection_concerns(store: MongoStore) -> list[dict[str, Any]]:
    """The write concern of each collection the store writes through (deduplicated)."""
    seen: list[dict[str, Any]] = []
    for name in COLLECTIONS:
        concern = getattr(store, name).write_concern.document
        if concern not in seen:
            seen.append(concern)
    return seen


async def test_by_default_every_collection_writes_majority_journaled() -> None:
    store = mongo("mongodb://db.example:27017")
    try:
        assert collection_concerns(store) == [{"w": "majority", "j": True}]
        assert store._db.client.options.timeout == 5.0  # TALLY_MONGO_TIMEOUT_MS
    finally:
        await store.close()


async def test_the_write_concern_and_timeout_settings_reach_every_collection() -> None:
    store = mongo(
        "mongodb://db.example:27017",
        mongo_write_concern="2",
        mongo_journal=False,
        mongo_timeout_ms=700,
    )
    try:
        assert collection_concerns(store) == [{"w": 2, "j": False}]
        assert store._db.client.options.timeout == 0.7
        assert store._guard is not None and store._guard > 0.7  # the backstop is later
    finally:
        await store.close()


async def test_a_documentdb_url_reaches_the_client_unchanged() -> None:
    url = (
        "mongodb://tally:hunter2@docdb.example:27017/?tls=true&replicaSet=rs0"
        "&readPreference=secondaryPreferred&retryWrites=false&w=majority&wtimeoutMS=5000"
    )
    store = mongo(url)
    try:
        options = store._db.client.options
        assert options.retry_writes is False
        # Exactly the URL's write concern: settings add nothing (no j) when it names one.
        assert collection_concerns(store) == [{"w": "majority", "wtimeout": 5000}]
        assert options.replica_set_name == "rs0"
    finally:
        await store.close()


async def test_url_options_win_over_settings() -> None:
    url = "mongodb://db.example:27017/?w=2&wtimeoutMS=2000&timeoutMS=900&appName=billing"
    store = mongo(url, mongo_write_concern="majority", mongo_timeout_ms=300)
    try:
        assert collection_concerns(store) == [{"w": 2, "wtimeout": 2000}]
        assert store._db.client.options.timeout == 0.9
        assert store._db.client.options.pool_options.metadata["application"] == {"name": "billing"}
        assert store._db.client.options.retry_writes is True  # the driver's default, not forced
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"TALLY_STORE_URL": "mongodb://u:hunter2@db/?w=0"}, "TALLY_STORE_URL"),
        (
            {"TALLY_STORE_URL": "mongodb://u:hunter2@db/", "TALLY_MONGO_WRITE_CONCERN": "0"},
            "TALLY_MONGO_WRITE_CONCERN",
        ),
    ],
)
def test_w0_stops_start_up_with_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    message = str(err.value)
    assert named in message and "w=0" in message and "\n" not in message
    assert "hunter2" not in message


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"TALLY_STORE_URL": "mongodb://u:hunter2@db/?w=1"}, "TALLY_STORE_URL"),
        (
            {"TALLY_STORE_URL": "mongodb://u:hunter2@db/", "TALLY_MONGO_WRITE_CONCERN": "1"},
            "TALLY_MONGO_WRITE_CONCERN",
        ),
    ],
)
def test_w1_is_refused_in_production_saying_why(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert load_settings().store_kind == "mongodb"  # development: allowed
    monkeypatch.setenv("TALLY_ENVIRONMENT", "production")
    monkeypatch.setenv("TALLY_JWT_ISSUER", "https://tally.example.com")
    with pytest.raises(SettingsError) as err:
        load_settings()
    message = str(err.value)
    assert named in message and "failover" in message and "\n" not in message
    assert "hunter2" not in message


def test_w0_stops_tally_serve_with_one_line(tmp_path: Path) -> None:
    from tests.e2e.conftest import cli, server_env

    env = {**server_env(tmp_path), "TALLY_STORE_URL": "mongodb://u:hunter2@db/?w=0"}
    result = cli(env, "serve", "--port", "1")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "TALLY_STORE_URL" in lines[0] and "w=0" in lines[0] and "hunter2" not in lines[0]
