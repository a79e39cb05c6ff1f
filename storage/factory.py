"""Pick and build the backend named by ``TALLY_STORE_URL``.

MongoDB: every driver option comes from the URL or from settings, and the URL wins.
An option the URL names is passed through untouched; settings only fill in what it
leaves out (``timeoutMS``, ``serverSelectionTimeoutMS`` and ``connectTimeoutMS`` from
``TALLY_MONGO_TIMEOUT_MS``; the write concern from ``TALLY_MONGO_WRITE_CONCERN`` and
``TALLY_MONGO_JOURNAL``, but only when the URL names none of ``w``, ``wTimeoutMS`` and
``journal``, so a write concern written in the URL reaches the driver exactly as
written). Nothing else is forced: ``retryWrites`` is the driver's default unless the
URL says otherwise (DocumentDB needs ``retryWrites=false``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.settings import mongo_url_options
from storage.base import Store
from storage.errors import StoreUnavailable
from storage.mongo import MongoStore
from storage.sqlite import SQLiteStore, path_from_url

if TYPE_CHECKING:
    from core.settings import Settings

_WRITE_CONCERN_OPTIONS = {"w", "wtimeoutms", "journal"}


def mongo_client_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments ``AsyncMongoClient`` gets besides the URL itself."""
    named = set(mongo_url_options(settings.store_url.get_secret_value()))
    options: dict[str, Any] = {"tz_aware": True}  # the code compares aware datetimes
    fill: dict[str, Any] = {
        "appname": "tally",
        "timeoutMS": settings.mongo_timeout_ms,
        "serverSelectionTimeoutMS": settings.mongo_timeout_ms,
        "connectTimeoutMS": settings.mongo_timeout_ms,
    }
    if not named & _WRITE_CONCERN_OPTIONS:
        w = settings.mongo_write_concern
        fill["w"] = int(w) if w.isdigit() else w
        fill["journal"] = settings.mongo_journal
    options.update({k: v for k, v in fill.items() if k.lower() not in named})
    return options


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

    options = mongo_client_options(settings)
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(url, **options)
    # The database (and so every collection) inherits the client's write concern.
    database = client.get_database(settings.mongo_database)
    timeout_ms = client.options.timeout
    return MongoStore(
        database,
        on_close=client.close,
        timeout_ms=None if timeout_ms is None else int(timeout_ms * 1000),
    )
