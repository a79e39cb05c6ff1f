"""`tally migrate`: indexes, data migrations and instance users; idempotent, concurrent-safe."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from mongomock_motor import AsyncMongoMockClient

from ops.migrate import POOLED_USER, ensure_user, migrate, tenant_database, tenant_user
from ops.migrations import Migration
from storage import Store
from storage.admin import DatabaseUser, MongoAdmin, SQLiteAdmin, UsersNotSupported
from storage.mongo import MongoStore
from storage.sqlite import SQLiteStore
from tests.e2e.conftest import TALLY, server_env
from tests.ops.doubles import FakeUsersDatabase


def counting_migration(counter: list[int], mid: str = "0001-test") -> Migration:
    async def apply(store: Store) -> None:
        counter.append(1)
        await asyncio.sleep(0)

    return Migration(id=mid, description="counts its runs", apply=apply)


def mongomock_pair(client: Any, database: str = "tally_acme") -> tuple[Store, MongoAdmin]:
    return MongoStore(client[database]), MongoAdmin(client[database], USERS)


USERS = FakeUsersDatabase()


@pytest.fixture(params=["sqlite", "mongomock"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """(make_store, make_admin) over one shared database, as two processes would see it."""
    if request.param == "sqlite":
        path = tmp_path / "tally.db"
        return (lambda: SQLiteStore(path)), (lambda: SQLiteAdmin(path))
    client = AsyncMongoMockClient()
    return (lambda: MongoStore(client["tally"])), (lambda: MongoAdmin(client["tally"], USERS))


async def run_once(backend: Any, migrations: list[Migration]) -> Any:
    make_store, make_admin = backend
    store, admin = make_store(), make_admin()
    try:
        return await migrate(store, admin, database="tally", migrations=migrations)
    finally:
        await store.close()
        await admin.close()


async def test_migrate_twice_leaves_the_same_indexes_and_applies_each_migration_once(
    backend: Any,
) -> None:
    runs: list[int] = []
    first = await run_once(backend, [counting_migration(runs)])
    second = await run_once(backend, [counting_migration(runs)])
    assert first.applied == ["0001-test"] and second.applied == []
    assert runs == [1]
    assert first.indexes == second.indexes
    # The store's own indexes are there (what Store.start creates on every backend).
    flat = [name for names in first.indexes.values() for name in names]
    assert any("seq" in name or "sequence" in name for name in flat), first.indexes


async def test_two_concurrent_migrates_both_succeed_and_agree(backend: Any) -> None:
    runs: list[int] = []
    results = await asyncio.gather(
        run_once(backend, [counting_migration(runs)]),
        run_once(backend, [counting_migration(runs)]),
    )
    assert results[0].indexes == results[1].indexes
    # Both may apply an idempotent migration; it is recorded once and never again.
    assert 1 <= len(runs) <= 2
    again = await run_once(backend, [counting_migration(runs)])
    assert again.applied == [] and again.indexes == results[0].indexes
    assert again.migrations == ["0001-test"]


async def test_a_new_migration_runs_after_the_recorded_ones(backend: Any) -> None:
    runs: list[int] = []
    later: list[int] = []
    await run_once(backend, [counting_migration(runs)])
    result = await run_once(
        backend, [counting_migration(runs), counting_migration(later, "0002-later")]
    )
    assert result.applied == ["0002-later"] and runs == [1] and later == [1]


async def test_tenant_user_gets_readwrite_on_its_own_database_only() -> None:
    users = FakeUsersDatabase()
    client = AsyncMongoMockClient()
    admin = MongoAdmin(client[tenant_database("acme")], users)
    outcomes = await asyncio.gather(
        ensure_user(admin, tenant_user("acme"), "pw-1", tenant_database("acme")),
        ensure_user(admin, tenant_user("acme"), "pw-1", tenant_database("acme")),
    )
    assert sorted(o["outcome"] for o in outcomes) == ["created", "updated"]
    again = await ensure_user(admin, tenant_user("acme"), "pw-1", tenant_database("acme"))
    assert again["outcome"] == "updated"
    got = await admin.get_user("tally-acme")
    assert got == DatabaseUser(
        name="tally-acme", database="tally_acme", roles=(("readWrite", "tally_acme"),)
    )
    assert users.users["tally-acme"]["pwd"] == "pw-1"
    assert await admin.get_user("tally-globex") is None


async def test_rerun_rotates_the_password_and_strips_any_other_role() -> None:
    users = FakeUsersDatabase()
    users.users["tally-acme"] = {
        "pwd": "old",
        "roles": [{"role": "readWrite", "db": "tally_globex"}, {"role": "root", "db": "admin"}],
    }
    admin = MongoAdmin(AsyncMongoMockClient()["tally_acme"], users)
    await ensure_user(admin, "tally-acme", "new", "tally_acme")
    assert users.users["tally-acme"] == {
        "pwd": "new",
        "roles": [{"role": "readWrite", "db": "tally_acme"}],
    }


async def test_pooled_and_tenant_users_never_share_a_name() -> None:
    assert POOLED_USER not in {tenant_user(s) for s in ("pooled", "tally-pooled", "ab")}
    assert tenant_database("big-co") == "tally_big_co"


async def test_sqlite_has_no_users(tmp_path: Path) -> None:
    admin = SQLiteAdmin(tmp_path / "tally.db")
    with pytest.raises(UsersNotSupported):
        await admin.ensure_user("tally-acme", "pw", "tally_acme")


def cli(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(TALLY), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_cli_migrate_twice_and_twice_at_once_on_a_sqlite_file(tmp_path: Path) -> None:
    env = server_env(tmp_path)
    outputs = []
    for _ in range(2):
        out, err = cli(env, "migrate", "--json").communicate(timeout=60)
        assert not err, err
        outputs.append(json.loads(out))
    concurrent = [cli(env, "migrate", "--tenant", "acme", "--json") for _ in range(2)]
    for proc in concurrent:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        outputs.append(json.loads(out))
    assert all(o["indexes"] == outputs[0]["indexes"] for o in outputs), outputs
    assert all(o["backend"] == "sqlite" and o["user"] is None for o in outputs)
    assert "counters" in outputs[0]["indexes"]


def test_cli_migrate_human_output_and_one_line_errors(tmp_path: Path) -> None:
    env = server_env(tmp_path)
    out, err = cli(env, "migrate", "--tenant", "acme").communicate(timeout=60)
    assert "migrated sqlite database" in out and "SQLite has none" in out, (out, err)
    proc = cli(env, "migrate", "--tenant", "Not_A_Slug")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and err.strip().count("\n") == 0 and "not a tenant slug" in err
    mongo = {**env, "TALLY_STORE_URL": "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200"}
    proc = cli(mongo, "migrate", "--tenant", "acme")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "--password-file is required" in err
    secret = tmp_path / "pw"
    secret.write_text("s3cret-pw\n")
    proc = cli({**mongo, "TALLY_MONGO_TIMEOUT_MS": "300"}, "migrate", "--tenant", "acme",
               "--password-file", str(secret))  # fmt: skip
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "cannot reach the store" in err, err
    assert err.strip().count("\n") == 0 and "s3cret-pw" not in err


@pytest.mark.mongodb
@pytest.mark.skipif(not os.environ.get("MONGODB_URI"), reason="MONGODB_URI is not set")
async def test_real_mongodb_user_is_created_then_updated_with_readwrite_on_its_database() -> None:
    """CI runs this on a MongoDB replica set: the real createUser/updateUser/usersInfo."""
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(os.environ["MONGODB_URI"])
    slug = f"ci{os.getpid()}"
    database = tenant_database(slug)
    admin = MongoAdmin(client[database], client["admin"])
    try:
        first = await ensure_user(admin, tenant_user(slug), "pw-one", database)
        second = await ensure_user(admin, tenant_user(slug), "pw-two", database)
        assert (first["outcome"], second["outcome"]) == ("created", "updated")
        got = await admin.get_user(tenant_user(slug))
        assert got is not None and got.roles == (("readWrite", database),)
        store = MongoStore(client[database])
        results = await asyncio.gather(
            migrate(store, admin, database=database), migrate(store, admin, database=database)
        )
        assert results[0].indexes == results[1].indexes and "counters" in results[0].indexes
    finally:
        await client["admin"].command({"dropUser": tenant_user(slug)})
        await client.drop_database(database)
        await client.close()
