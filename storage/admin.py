"""What the platform does to a store that the service never does: the migration ledger,
index listings, and database users (``tally migrate``).

Kept apart from the ``Store`` interface on purpose: a tenant pod's store runs with a
user that may only read and write its own database, and nothing here is on its path.
These functions are platform-wide, so unlike ``Store`` they take no tenant.

Every operation is idempotent and safe to run from two processes at once: the ledger
is insert-if-absent, and a user that a concurrent run created first is updated instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pymongo.errors import DuplicateKeyError, OperationFailure, PyMongoError

from storage.errors import StoreUnavailable, UsersNotSupported
from storage.sqlite import path_from_url

if TYPE_CHECKING:
    from core.settings import Settings

# MongoDB's (and DocumentDB's) code for createUser on a name that exists.
_USER_EXISTS = 51003


@dataclass(frozen=True, slots=True)
class DatabaseUser:
    name: str
    database: str  # the only database it may read and write
    roles: tuple[tuple[str, str], ...]  # (role, db)


class StoreAdmin(Protocol):
    kind: str

    async def applied_migrations(self) -> set[str]: ...

    async def record_migration(self, migration_id: str, at: datetime) -> None:
        """Mark applied (once; a concurrent run's record wins and is kept)."""

    async def indexes(self) -> dict[str, list[str]]:
        """Index names by table/collection, sorted (what migrate leaves behind)."""
        ...

    async def ensure_user(
        self, user: str, password: str, database: str
    ) -> Literal["created", "updated"]:
        """Make ``user`` exist with ``password`` and readWrite on ``database`` only."""
        ...

    async def get_user(self, user: str) -> DatabaseUser | None: ...

    async def close(self) -> None: ...


class SQLiteAdmin:
    kind = "sqlite"

    def __init__(self, path: Path, *, busy_timeout_ms: int = 10_000) -> None:
        self.path = Path(path)
        self._busy = busy_timeout_ms

    def _run(self, op: Any) -> Any:
        conn = sqlite3.connect(self.path, timeout=self._busy / 1000, isolation_level=None)
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS migrations"
                " (id TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            return op(conn)
        finally:
            conn.close()

    async def applied_migrations(self) -> set[str]:
        rows = await asyncio.to_thread(
            self._run, lambda c: c.execute("SELECT id FROM migrations").fetchall()
        )
        return {r[0] for r in rows}

    async def record_migration(self, migration_id: str, at: datetime) -> None:
        await asyncio.to_thread(
            self._run,
            lambda c: c.execute(
                "INSERT OR IGNORE INTO migrations VALUES (?, ?)", (migration_id, at.isoformat())
            ),
        )

    async def indexes(self) -> dict[str, list[str]]:
        rows = await asyncio.to_thread(
            self._run,
            lambda c: c.execute(
                "SELECT tbl_name, name FROM sqlite_master WHERE type = 'index' ORDER BY 1, 2"
            ).fetchall(),
        )
        out: dict[str, list[str]] = {}
        for table, name in rows:
            out.setdefault(table, []).append(name)
        return out

    async def ensure_user(
        self, user: str, password: str, database: str
    ) -> Literal["created", "updated"]:
        raise UsersNotSupported("SQLite has no database users; protect the file instead")

    async def get_user(self, user: str) -> DatabaseUser | None:
        raise UsersNotSupported("SQLite has no database users")

    async def close(self) -> None:
        return None


class MongoAdmin:
    """``database``: the instance's; ``users_database``: where users live (``admin``:
    DocumentDB keeps every user there, and a name is then unique store-wide)."""

    kind = "mongodb"

    def __init__(self, database: Any, users_database: Any, *, on_close: Any | None = None) -> None:
        self._db = database
        self._users = users_database
        self._on_close = on_close

    async def _call(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        except OperationFailure:
            raise
        except PyMongoError as exc:
            raise StoreUnavailable("MongoDB store unavailable") from exc

    async def applied_migrations(self) -> set[str]:
        docs = await self._call(self._db["migrations"].find({}, {"_id": 1}).to_list(None))
        return {d["_id"] for d in docs}

    async def record_migration(self, migration_id: str, at: datetime) -> None:
        # Two upserts may race; the loser's DuplicateKeyError means it is recorded.
        with contextlib.suppress(DuplicateKeyError):
            await self._call(
                self._db["migrations"].update_one(
                    {"_id": migration_id}, {"$setOnInsert": {"applied_at": at}}, upsert=True
                )
            )

    async def indexes(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name in sorted(await self._call(self._db.list_collection_names())):
            info = await self._call(self._db[name].index_information())
            out[name] = sorted(info)
        return out

    async def ensure_user(
        self, user: str, password: str, database: str
    ) -> Literal["created", "updated"]:
        roles = [{"role": "readWrite", "db": database}]
        try:
            await self._call(
                self._users.command({"createUser": user, "pwd": password, "roles": roles})
            )
            return "created"
        except OperationFailure as exc:
            if exc.code != _USER_EXISTS and "already exists" not in str(exc):
                raise
        # Replaces the password and every role: a user that had more loses it here.
        await self._call(self._users.command({"updateUser": user, "pwd": password, "roles": roles}))
        return "updated"

    async def get_user(self, user: str) -> DatabaseUser | None:
        answer = await self._call(self._users.command({"usersInfo": user}))
        for found in answer.get("users", []):
            roles = tuple(sorted((r["role"], r["db"]) for r in found.get("roles", [])))
            dbs = {db for _, db in roles}
            return DatabaseUser(name=found["user"], database=",".join(sorted(dbs)), roles=roles)
        return None

    async def close(self) -> None:
        if self._on_close is not None:
            result = self._on_close()
            if hasattr(result, "__await__"):
                await result


def open_admin(settings: Settings, *, database: str | None = None) -> StoreAdmin:
    """The admin handle of the store ``TALLY_STORE_URL`` names; the caller closes it.

    Driver options come from the URL alone (retryWrites, w, tls...), as for the store.
    """
    url = settings.store_url.get_secret_value()
    if settings.store_kind == "sqlite":
        return SQLiteAdmin(path_from_url(url), busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    if settings.store_kind == "bigtable":
        from storage.bigtable_admin import BigtableAdmin
        from storage.bigtable_rows import parse_url

        return BigtableAdmin(parse_url(url), timeout=settings.bigtable_timeout_ms / 1000)
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        url,
        appname="tally-migrate",
        tz_aware=True,
        serverSelectionTimeoutMS=settings.mongo_timeout_ms,
        connectTimeoutMS=settings.mongo_timeout_ms,
    )
    return MongoAdmin(
        client[database or settings.mongo_database], client["admin"], on_close=client.close
    )
