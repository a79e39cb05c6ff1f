"""MongoDB: what every part of ``MongoStore`` shares.

The collections (injected: tests pass mongomock-motor's database, production
``AsyncMongoClient``'s; the client itself is owned by ``open_store``'s caller), ``_call``
with its mapping of "try later" errors to ``StoreUnavailable``, the document helpers
(``_doc_id``, ``_key``, ``_inc``, ``_aware``) and ``_purge``, which both deleting a
sequence and deleting a tenant need. The parts (``storage.mongo_registry``,
``mongo_audit``, ``mongo_usage``, ``mongo_idempotency``, ``mongo_ledger``) subclass
``MongoBase``; ``storage.mongo.MongoStore`` combines them. Each part reads its
collections through ``self``, so a double swapped in for one collection of a store is
the one every part uses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pymongo.errors import (
    ConnectionFailure,
    ExecutionTimeout,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
    WriteConcernError,
    WTimeoutError,
)

from storage.errors import StoreUnavailable

_UNAVAILABLE = (
    ConnectionFailure,
    ServerSelectionTimeoutError,
    ExecutionTimeout,
    WTimeoutError,
    WriteConcernError,
)
# Server error codes that mean "not now, try later": not primary / node recovering,
# interrupted or shutting down, time limits, network trouble between the nodes.
_TRY_LATER_CODES = frozenset(
    {6, 7, 50, 89, 91, 189, 262, 9001, 10107, 11600, 11601, 11602, 13435, 13436, 64, 10058}
)
# The driver's timeoutMS ends every call; this guard (a little later, so the driver's
# own, cleaner timeout normally fires first) bounds what it might not cover.
_GUARD_SLACK = 0.25


def _try_later(exc: PyMongoError) -> bool:
    if isinstance(exc, _UNAVAILABLE) or exc.timeout:
        return True
    if isinstance(exc, OperationFailure):
        if exc.code in _TRY_LATER_CODES:
            return True
        return exc.has_error_label("RetryableWriteError") or exc.has_error_label(
            "TransientTransactionError"
        )
    return False


def _doc_id(tenant: str, key: str) -> str:
    return f"{tenant}/{key}"


def _key(tenant: str, key: str) -> dict[str, Any]:
    """The filter of one document: its ``_id`` plus the shard key's ``tenant``."""
    return {"_id": _doc_id(tenant, key), "tenant": tenant}


def _inc(incarnation: str) -> Any:
    """Match ``incarnation``; ``""`` also matches documents stored before the field existed."""
    return incarnation if incarnation else {"$in": ["", None]}


def _aware(value: datetime) -> datetime:
    # BSON dates come back naive (UTC) unless the client is tz_aware.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _maybe_aware(value: datetime | None) -> datetime | None:
    return _aware(value) if value is not None else None


class MongoBase:
    def __init__(
        self,
        database: Any,
        *,
        on_close: Callable[[], Any] | None = None,
        timeout_ms: int | None = None,
    ) -> None:
        self._db = database
        self._guard = None if timeout_ms is None else timeout_ms / 1000 + _GUARD_SLACK
        self.sequences = database["sequences"]
        self.counters = database["counters"]
        self.audit = database["audit"]
        self.audit_counters = database["audit_counters"]
        self.ledger = database["ledger"]
        self._on_close = on_close

    async def _call(self, awaitable: Any) -> Any:
        """Await one driver call: bounded, and "try later" errors are ``StoreUnavailable``."""
        try:
            async with asyncio.timeout(self._guard):
                return await awaitable
        except TimeoutError as exc:
            raise StoreUnavailable("MongoDB did not answer in time") from exc
        except PyMongoError as exc:
            if _try_later(exc):
                raise StoreUnavailable("MongoDB store unavailable") from exc
            raise

    async def close(self) -> None:
        if self._on_close is not None:
            result = self._on_close()
            if hasattr(result, "__await__"):
                await result

    async def ping(self) -> None:
        try:
            await self._call(self._db.command("ping"))
        except PyMongoError as exc:
            raise StoreUnavailable("MongoDB store unavailable") from exc

    # -- collections -----------------------------------------------------------------
    # ``tenants`` documents: _id = slug. ``clients``: _id = "<tenant>/<client_id>"
    # (tenant "" for platform-admin clients), so both stay keyed by tenant prefix.
    @property
    def tenants(self) -> Any:
        return self._db["tenants"]

    @property
    def clients(self) -> Any:
        return self._db["clients"]

    # ``usage`` documents: _id = "<tenant>/<sequence>/<hour>", one per sequence and UTC hour.
    @property
    def usage(self) -> Any:
        return self._db["usage"]

    # ``idempotency`` documents: _id = "<tenant>/<key>" (a slug has no "/", so the
    # split is unambiguous whatever the key holds).
    @property
    def idempotency(self) -> Any:
        return self._db["idempotency"]

    async def _purge(self, tenant: str, name: str | None = None) -> None:
        """Remove counters (of ``name``, or all the tenant's) whose incarnation is dead.

        Counters are read before definitions: a counter exists only after its
        definition did, so an incarnation that is not live at the second read was
        deleted, and incarnations never come back. A live counter is never touched.
        """
        query: dict[str, Any] = {"tenant": tenant}
        if name is not None:
            query["seq"] = name
        cursor = self.counters.find(query, projection={"seq": True, "incarnation": True})
        found = {
            (d["seq"], d.get("incarnation") or "")
            for d in await self._call(cursor.to_list(length=None))
        }
        if not found:
            return
        names = sorted({seq for seq, _ in found})
        defs = self.sequences.find(
            {"tenant": tenant, "name": {"$in": names}},
            projection={"name": True, "incarnation": True},
        )
        live = {
            d["name"]: d.get("incarnation") or ""
            for d in await self._call(defs.to_list(length=None))
        }
        for seq, incarnation in sorted(found):
            if live.get(seq) != incarnation:
                await self._call(
                    self.counters.delete_many(
                        {"tenant": tenant, "seq": seq, "incarnation": _inc(incarnation)}
                    )
                )
