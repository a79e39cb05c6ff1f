"""Pick and build the backend named by ``TALLY_STORE_URL``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from storage.base import Store
from storage.errors import StoreUnavailable
from storage.mongo import MongoStore
from storage.sqlite import SQLiteStore, path_from_url

if TYPE_CHECKING:
    from core.settings import Settings


def open_store(settings: Settings) -> Store:
    """Build (not yet start) the store; the caller owns it and must ``close`` it."""
    url = settings.store_url.get_secret_value()
    if settings.store_kind == "sqlite":
        return SQLiteStore(path_from_url(url), busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    if settings.store_kind == "bigtable":
        try:
            from storage.bigtable import BigtableStore
            from storage.bigtable_rows import parse_url
        except ImportError as exc:  # the optional extra is not installed
            raise StoreUnavailable(
                "TALLY_STORE_URL names Bigtable, but google-cloud-bigtable is not installed"
                " (pip install 'tally[bigtable]')"
            ) from exc
        return BigtableStore(parse_url(url), timeout=settings.bigtable_timeout_ms / 1000)

    from pymongo import AsyncMongoClient
    from pymongo.write_concern import WriteConcern

    w: int | str = (
        int(settings.mongo_write_concern) if settings.mongo_write_concern.isdigit() else "majority"
    )
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        url,
        appname="tally",
        tz_aware=True,
        serverSelectionTimeoutMS=settings.mongo_timeout_ms,
        connectTimeoutMS=settings.mongo_timeout_ms,
        retryWrites=True,
    )
    database = client.get_database(
        settings.mongo_database,
        write_concern=WriteConcern(w=w, j=settings.mongo_journal),
    )
    return MongoStore(database, on_close=client.close)
