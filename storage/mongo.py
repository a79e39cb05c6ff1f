"""MongoDB backend (production), through PyMongo's async API.

Allocation is one ``find_one_and_update`` with ``$inc`` on ``_id: "<tenant>/<key>"``
(``key`` is ``<sequence>`` or ``<sequence>/<period>``), with ``upsert`` and
``ReturnDocument.AFTER``. The filter pins the counter's shape and room, so a stale or
over-the-bound request matches nothing; the upsert then collides with the existing
``_id`` and raises ``DuplicateKeyError``, which here means "re-read", the same as two
processes racing to create a counter. Tenant-scoped collections are sharded on
``{tenant: 1, _id: 1}``: every document carries ``tenant`` and every filter names it
(``_key``), so each operation is routed to one shard (see the README).

The collection objects are injected, so tests pass mongomock-motor's and production
passes ``AsyncMongoClient``'s; the client itself is owned by ``open_store``'s caller.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DuplicateKeyError,
    ExecutionTimeout,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
    WriteConcernError,
    WTimeoutError,
)

from storage import mongo_ledger as ledger_docs
from storage.base import (
    GROUP_CONCURRENCY,
    RESERVED,
    AuditEntry,
    ClientRecord,
    Counter,
    IdempotencyRecord,
    Increment,
    LedgerCounts,
    LedgerEntry,
    Rider,
    SequenceRecord,
    TenantRecord,
    UsageRow,
    allocate_concurrently,
    audit_id,
    audit_number,
)
from storage.errors import AlreadyExists, InvalidCursor, StoreUnavailable, UsagePartlyWritten

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


def _record(doc: dict[str, Any]) -> SequenceRecord:
    return SequenceRecord(
        name=doc["name"],
        config=dict(doc["config"]),
        created_at=_aware(doc["created_at"]),
        updated_at=_aware(doc["updated_at"]),
        revision=int(doc["revision"]),
        incarnation=doc.get("incarnation") or "",
    )


def _counter(doc: dict[str, Any]) -> Counter:
    return Counter(
        base=int(doc["base"]),
        step=int(doc["step"]),
        cap=int(doc["cap"]),
        ticks=int(doc["ticks"]),
        incarnation=doc.get("incarnation") or "",
    )


class MongoStore:
    kind = "mongodb"
    atomic_riders = True  # journaled in the counter document (see _allocate_riding)

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

    async def start(self) -> None:
        await self._call(self.sequences.create_index([("tenant", ASCENDING), ("name", ASCENDING)]))
        await self._call(self.counters.create_index([("tenant", ASCENDING), ("seq", ASCENDING)]))
        await self._call(self.audit.create_index([("tenant", ASCENDING), ("_id", ASCENDING)]))
        # No two entries of a tenant share a number. Partial: documents an older version
        # wrote have none until _number_legacy_audit gives them one.
        await self._call(
            self.audit.create_index(
                [("tenant", ASCENDING), ("seq", ASCENDING)],
                unique=True,
                partialFilterExpression={"seq": {"$gt": 0}},
            )
        )
        # Finds those unnumbered documents (seq: null) without scanning the trail.
        await self._call(
            self.audit.create_index([("tenant", ASCENDING), ("seq", ASCENDING), ("_id", ASCENDING)])
        )
        usage_index = [("tenant", ASCENDING), ("hour", ASCENDING), ("seq", ASCENDING)]
        await self._call(self.usage.create_index(usage_index))
        await self._start_tenants()
        ledger_order = [("tenant", ASCENDING), ("seq", ASCENDING), ("period", ASCENDING)]
        await self._call(self.ledger.create_index([*ledger_order, ("value", ASCENDING)]))
        await self._call(
            self.ledger.create_index(
                [("tenant", ASCENDING), ("seq", ASCENDING), ("reservation", ASCENDING)]
            )
        )
        # MongoDB deletes expired keys itself (its TTL monitor runs about once a minute;
        # until then claim_idempotency treats them as absent).
        await self._call(self.idempotency.create_index("expires_at", expireAfterSeconds=0))

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

    # -- sequences -----------------------------------------------------------
    async def create_sequence(self, tenant: str, record: SequenceRecord) -> None:
        doc = {
            "_id": _doc_id(tenant, record.name),
            "tenant": tenant,
            "name": record.name,
            "config": record.config,
            "created_at": record.created_at,
            "updated_at": record.updated_at,
            "revision": record.revision,
            "incarnation": record.incarnation,
        }
        try:
            await self._call(self.sequences.insert_one(doc))
        except DuplicateKeyError as exc:
            raise AlreadyExists(record.name) from exc
        await self._purge(tenant, record.name)

    async def get_sequence(self, tenant: str, name: str) -> SequenceRecord | None:
        doc = await self._call(self.sequences.find_one(_key(tenant, name)))
        return _record(doc) if doc else None

    async def list_sequences(
        self, tenant: str, *, after: str | None, limit: int
    ) -> list[SequenceRecord]:
        query: dict[str, Any] = {"tenant": tenant}
        if after:
            query["name"] = {"$gt": after}
        cursor = self.sequences.find(query).sort("name", ASCENDING).limit(limit)
        docs = await self._call(cursor.to_list(length=limit))
        return [_record(d) for d in docs]

    async def update_sequence(
        self, tenant: str, record: SequenceRecord, *, expected_revision: int
    ) -> bool:
        result = await self._call(
            self.sequences.update_one(
                {**_key(tenant, record.name), "revision": expected_revision},
                {
                    "$set": {
                        "config": record.config,
                        "updated_at": record.updated_at,
                        "revision": record.revision,
                    }
                },
            )
        )
        return bool(result.modified_count == 1)

    async def delete_sequence(self, tenant: str, name: str) -> bool:
        # Two writes, definition first: cut short in between, what is left are counters
        # of a dead incarnation, which nothing uses and the next call (a retried DELETE,
        # or creating the name again) removes.
        result = await self._call(self.sequences.delete_one(_key(tenant, name)))
        await self._purge(tenant, name)
        return bool(result.deleted_count == 1)

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

    async def _live(self, tenant: str, seq: str, incarnation: str) -> bool:
        doc = await self._call(
            self.sequences.find_one(
                {**_key(tenant, seq), "incarnation": _inc(incarnation)}, projection={"_id": True}
            )
        )
        return doc is not None

    async def _founded(self, tenant: str, key: str, seq: str, incarnation: str) -> bool:
        """After writing a counter of ``incarnation``: keep it only if that one is live.

        The check a transaction would make before the write, made after it: a DELETE
        that ran before this write finds no definition here; one that runs after it
        deletes the counter itself.
        """
        if await self._live(tenant, seq, incarnation):
            return True
        await self._call(
            self.counters.delete_one({**_key(tenant, key), "incarnation": _inc(incarnation)})
        )
        return False

    # -- counters --------------------------------------------------------------
    async def read_counter(self, tenant: str, key: str) -> Counter | None:
        doc = await self._call(self.counters.find_one(_key(tenant, key)))
        return _counter(doc) if doc else None

    async def read_counters(self, tenant: str, keys: Sequence[str]) -> dict[str, Counter]:
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        ids = {_doc_id(tenant, key): key for key in wanted}
        cursor = self.counters.find({"tenant": tenant, "_id": {"$in": list(ids)}})
        docs = await self._call(cursor.to_list(length=None))
        return {ids[doc["_id"]]: _counter(doc) for doc in docs}

    async def allocate(
        self,
        tenant: str,
        key: str,
        seq: str,
        shape: Counter,
        n: int,
        *,
        create: bool = True,
        riders: Sequence[Rider] = (),
    ) -> int | None:
        if n < 1 or n > shape.cap:
            return None
        if any(r.writes for r in riders):
            if sum(r.n for r in riders) != n:
                raise ValueError("the riders of an allocation must add up to its n")
            return await self._allocate_riding(tenant, key, seq, shape, n, create, riders)
        on_insert: dict[str, Any] = {"seq": seq}
        if not shape.incarnation:  # matched with $in, which an upsert does not copy
            on_insert["incarnation"] = ""
        try:
            doc = await self._call(
                self.counters.find_one_and_update(
                    {
                        **_key(tenant, key),
                        "base": shape.base,
                        "step": shape.step,
                        "cap": shape.cap,
                        "incarnation": _inc(shape.incarnation),
                        "ticks": {"$lte": shape.cap - n},
                    },
                    {"$inc": {"ticks": n}, "$setOnInsert": on_insert},
                    upsert=create,
                    return_document=ReturnDocument.AFTER,
                    projection={"ticks": True},
                )
            )
        except DuplicateKeyError:
            # Another shape or no room (or a racing upsert that won): caller re-reads.
            return None
        except OperationFailure as exc:
            raise StoreUnavailable(f"MongoDB refused the allocation: {exc.code}") from exc
        if doc is None:
            return None
        ticks = int(doc["ticks"])
        # ticks == n: this call may have founded the counter (or it stood at 0).
        if create and ticks == n and not await self._founded(tenant, key, seq, shape.incarnation):
            return None
        return ticks

    async def allocate_many(self, items: Sequence[Increment]) -> list[int | None]:
        # No multi-document transaction: the counters' increments in flight at once
        # (the server group-commits its journal).
        return await allocate_concurrently(self._allocate_item, items, limit=GROUP_CONCURRENCY)

    async def _allocate_item(self, it: Increment) -> int | None:
        if it.riders:
            return await self.allocate(
                it.tenant, it.key, it.seq, it.shape, it.n, create=it.create, riders=it.riders
            )
        return await self.allocate(it.tenant, it.key, it.seq, it.shape, it.n, create=it.create)

    # -- riders: the ledger and idempotency notes of an allocation ----------------------
    # Without relying on multi-document transactions (mongomock has none, and a sharded
    # cluster pays for them), the counter document itself is the journal: the increment
    # is a compare-and-set on ``ticks`` that also pushes the riders' fully formed
    # entries into its ``pending`` array, one atomic single-document write. The entries
    # are then copied into ``ledger`` (deterministic ``_id``s, so copying twice is a
    # no-op) and pulled from ``pending``. A crash between any two of these writes
    # leaves them in ``pending``; every ledger read first settles what is pending for
    # its sequence. So an entry exists (in ``ledger`` or ``pending``) for every tick.
    async def _allocate_riding(
        self,
        tenant: str,
        key: str,
        seq: str,
        shape: Counter,
        n: int,
        create: bool,
        riders: Sequence[Rider],
    ) -> int | None:
        doc_id = _doc_id(tenant, key)
        for attempt in range(64):
            if attempt > 2:  # another process won the compare-and-set: let it pass
                await asyncio.sleep(random.uniform(0, 0.001 * min(attempt, 20)))  # noqa: S311
            doc = await self._call(self.counters.find_one(_key(tenant, key)))
            if doc is None:
                if not create:
                    return None
                journal = ledger_docs.journal(tenant, shape, 0, riders)
                new = {
                    **_key(tenant, key),
                    "seq": seq,
                    "base": shape.base,
                    "step": shape.step,
                    "cap": shape.cap,
                    "ticks": n,
                    "incarnation": shape.incarnation,
                    "pending": journal,
                }
                try:
                    await self._call(self.counters.insert_one(new))
                except DuplicateKeyError:
                    continue
                # As in allocate: kept only while its definition lives (else it is
                # deleted, journal and all, before any entry reached the ledger).
                if not await self._founded(tenant, key, seq, shape.incarnation):
                    return None
                ticks = n
            else:
                current = _counter(doc)
                if (
                    current.shape != shape.shape
                    or current.incarnation != shape.incarnation
                    or current.ticks > shape.cap - n
                ):
                    return None
                journal = ledger_docs.journal(tenant, shape, current.ticks, riders)
                result = await self._call(
                    self.counters.update_one(
                        {
                            **_key(tenant, key),
                            "base": shape.base,
                            "step": shape.step,
                            "cap": shape.cap,
                            "incarnation": _inc(shape.incarnation),
                            "ticks": current.ticks,
                        },
                        {
                            "$set": {"ticks": current.ticks + n},
                            "$push": {"pending": {"$each": journal}},
                        },
                    )
                )
                if result.modified_count != 1:
                    continue
                ticks = current.ticks + n
            await self._settle_journal(tenant, doc_id, journal)
            return ticks
        raise StoreUnavailable("The counter is under heavy contention; try again.")

    async def _settle_journal(
        self, tenant: str, doc_id: str, journal: list[dict[str, Any]]
    ) -> None:
        entries = [e for item in journal for e in item["entries"]]
        if entries:
            try:
                await self._call(self.ledger.insert_many(entries, ordered=False))
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if any(e.get("code") != 11000 for e in errors):
                    raise StoreUnavailable("MongoDB refused ledger entries") from exc
        for item in journal:
            if item["key"] is not None:
                await self._call(
                    self.idempotency.update_one(
                        _key(tenant, item["key"]),
                        {"$set": {"allocation": item["note"]}},
                    )
                )
        ticks = [item["t"] for item in journal]
        await self._call(
            self.counters.update_one(
                {"_id": doc_id, "tenant": tenant}, {"$pull": {"pending": {"t": {"$in": ticks}}}}
            )
        )

    async def _settle(self, tenant: str, seq: str) -> None:
        """Finish what crashed allocations of ``seq`` left in their counters' journals."""
        cursor = self.counters.find({"tenant": tenant, "seq": seq, "pending.0": {"$exists": True}})
        for doc in await self._call(cursor.to_list(length=None)):
            await self._settle_journal(tenant, doc["_id"], list(doc["pending"]))

    # -- the number ledger -------------------------------------------------------------
    async def get_reservation(
        self, tenant: str, seq: str, reservation: str, *, now: datetime
    ) -> LedgerEntry | None:
        query = {"tenant": tenant, "seq": seq, "reservation": reservation}
        doc = await self._call(self.ledger.find_one(query))
        if doc is None:
            await self._settle(tenant, seq)
            doc = await self._call(self.ledger.find_one(query))
        return ledger_docs.entry(doc).as_of(now) if doc else None

    async def close_reservation(
        self,
        tenant: str,
        seq: str,
        reservation: str,
        *,
        state: str,
        at: datetime,
        actor: str,
        reference: str | None,
        reason: str | None,
    ) -> LedgerEntry | None:
        changes: dict[str, Any] = {
            "state": state,
            "closed_at": at,
            "closed_by": actor,
            "reason": reason,
        }
        if reference is not None:
            changes["reference"] = reference
        query = {
            "tenant": tenant,
            "seq": seq,
            "reservation": reservation,
            "state": RESERVED,
            "expires_at": {"$gt": at},
        }
        for _ in range(2):
            doc = await self._call(
                self.ledger.find_one_and_update(
                    query, {"$set": changes}, return_document=ReturnDocument.AFTER
                )
            )
            if doc is not None:
                return ledger_docs.entry(doc)
            await self._settle(tenant, seq)  # maybe still pending after a crash
        return None

    async def list_ledger(
        self,
        tenant: str,
        seq: str,
        *,
        period: str,
        now: datetime,
        states: Collection[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after: int | None = None,
        limit: int,
    ) -> list[LedgerEntry]:
        await self._settle(tenant, seq)
        query: dict[str, Any] = {"tenant": tenant, "seq": seq, "period": period}
        if after is not None:
            query["value"] = {"$gt": after}
        issued: dict[str, Any] = {}
        if since is not None:
            issued["$gte"] = since
        if until is not None:
            issued["$lt"] = until
        if issued:
            query["issued_at"] = issued
        if states is not None:
            query["$or"] = ledger_docs.state_query(states, now)
        cursor = self.ledger.find(query).sort("value", ASCENDING).limit(limit)
        docs = await self._call(cursor.to_list(length=limit))
        return [ledger_docs.entry(d).as_of(now) for d in docs]

    async def count_ledger(
        self, tenant: str, seq: str, *, period: str, now: datetime
    ) -> LedgerCounts:
        await self._settle(tenant, seq)
        base = {"tenant": tenant, "seq": seq, "period": period}
        states: dict[str, int] = {}
        for state in ("reserved", "committed", "voided", "expired"):
            query = {**base, "$or": ledger_docs.state_query([state], now)}
            count = int(await self._call(self.ledger.count_documents(query)))
            if count:
                states[state] = count
        ends: list[int | None] = []
        for direction in (ASCENDING, -1):
            cursor = self.ledger.find(base).sort("value", direction).limit(1)
            docs = await self._call(cursor.to_list(length=1))
            ends.append(int(docs[0]["value"]) if docs else None)
        return LedgerCounts(first=ends[0], last=ends[1], states=states)

    async def replace_counter(
        self, tenant: str, key: str, seq: str, expected: Counter | None, new: Counter
    ) -> bool:
        fields = {
            "base": new.base,
            "step": new.step,
            "cap": new.cap,
            "ticks": new.ticks,
            "incarnation": new.incarnation,
        }
        if expected is None:
            try:
                await self._call(
                    self.counters.insert_one({**_key(tenant, key), "seq": seq, **fields})
                )
            except DuplicateKeyError:
                return False
        else:
            result = await self._call(
                self.counters.update_one(
                    {
                        **_key(tenant, key),
                        "base": expected.base,
                        "step": expected.step,
                        "cap": expected.cap,
                        "ticks": expected.ticks,
                        "incarnation": _inc(expected.incarnation),
                    },
                    {"$set": fields},
                )
            )
            if result.modified_count != 1:
                return False
        return await self._founded(tenant, key, seq, new.incarnation)

    # -- audit trail ---------------------------------------------------------
    # ``audit`` documents: _id = "<tenant>/<audit_id>", seq = the entry's number in its
    # tenant's trail, from the tenant's ``audit_counters`` document (_id "<tenant>/audit").
    # Documents older versions wrote have ObjectId ids (time + a per-process counter,
    # which told a tenant how busy the others were); each is numbered, in ObjectId order,
    # before a new entry of its tenant is numbered or its trail is read.
    async def _next_audit_number(self, tenant: str) -> int:
        for attempt in range(3):
            try:
                doc = await self._call(
                    self.audit_counters.find_one_and_update(
                        _key(tenant, "audit"),
                        {"$inc": {"n": 1}},
                        upsert=True,
                        return_document=ReturnDocument.AFTER,
                    )
                )
                return int(doc["n"])
            except DuplicateKeyError:  # two processes upserted the tenant's first entry
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _number_legacy_audit(self, tenant: str) -> None:
        while True:
            unnumbered = self.audit.find({"tenant": tenant, "seq": None}, {"_id": 1})
            docs = await self._call(unnumbered.sort("_id", ASCENDING).limit(100).to_list(100))
            for d in docs:
                # One at a time, each only once it is still unnumbered: when two processes
                # race, the loser wastes a number (a gap), but a document is numbered only
                # after every earlier one is, so the numbers keep the ObjectId order.
                number = await self._next_audit_number(tenant)
                await self._call(
                    self.audit.update_one(
                        {"_id": d["_id"], "tenant": tenant, "seq": None},
                        {"$set": {"seq": number}},
                    )
                )
            if len(docs) < 100:
                return

    async def append_audit(self, tenant: str, entry: AuditEntry) -> str:
        await self._number_legacy_audit(tenant)
        number = await self._next_audit_number(tenant)
        entry_id = audit_id(number)
        await self._call(
            self.audit.insert_one(
                {
                    "_id": _doc_id(tenant, entry_id),
                    "tenant": tenant,
                    "seq": number,
                    "at": entry.at,
                    "actor": entry.actor,
                    "client_id": entry.client_id,
                    "action": entry.action,
                    "target": entry.target,
                    "before": entry.before,
                    "after": entry.after,
                }
            )
        )
        return entry_id

    async def list_audit(self, tenant: str, *, after: str | None, limit: int) -> list[AuditEntry]:
        number = 0 if after is None else audit_number(after)
        if number is None and not ObjectId.is_valid(after):
            raise InvalidCursor(after)
        await self._number_legacy_audit(tenant)
        if number is None:
            # An older version's cursor (an ObjectId): after the last entry it could have
            # shown up to it. Entries written since have string ids, outside the range.
            last = await self._call(
                self.audit.find_one(
                    {"tenant": tenant, "_id": {"$lte": ObjectId(after)}, "seq": {"$gt": 0}},
                    {"seq": 1},
                    sort=[("_id", -1)],
                )
            )
            number = 0 if last is None else int(last["seq"])
        query = {"tenant": tenant, "seq": {"$gt": number}}
        cursor = self.audit.find(query).sort("seq", ASCENDING).limit(limit)
        docs = await self._call(cursor.to_list(length=limit))
        return [
            AuditEntry(
                id=audit_id(d["seq"]),
                tenant=d["tenant"],
                at=_aware(d["at"]),
                actor=d["actor"],
                client_id=d["client_id"],
                action=d["action"],
                target=d["target"],
                before=d.get("before"),
                after=d.get("after"),
            )
            for d in docs
        ]

    # -- tenants (registry) ------------------------------------------------------
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

    async def add_usage(self, tenant: str, rows: Sequence[UsageRow]) -> None:
        for done, row in enumerate(rows):
            try:
                await self._add_usage_row(tenant, row)
            except Exception as exc:
                raise UsagePartlyWritten(done, "MongoDB usage write failed") from exc

    async def _add_usage_row(self, tenant: str, row: UsageRow) -> None:
        hour = row.hour.astimezone(UTC)
        doc_id = f"{tenant}/{row.sequence}/{hour:%Y-%m-%dT%H}"
        update = {
            "$inc": {"requests": row.requests, "numbers": row.numbers},
            "$setOnInsert": {"tenant": tenant, "seq": row.sequence, "hour": hour},
        }
        for attempt in range(3):
            try:
                await self._call(
                    self.usage.update_one({"_id": doc_id, "tenant": tenant}, update, upsert=True)
                )
                return
            except DuplicateKeyError:  # two processes upserted the same new hour: re-run
                if attempt == 2:
                    raise

    async def read_usage(
        self, tenant: str, *, sequence: str | None, since: datetime, until: datetime
    ) -> list[UsageRow]:
        query: dict[str, Any] = {"tenant": tenant, "hour": {"$gte": since, "$lt": until}}
        if sequence is not None:
            query["seq"] = sequence
        cursor = self.usage.find(query).sort([("hour", ASCENDING), ("seq", ASCENDING)])
        docs = await self._call(cursor.to_list(length=None))
        return [
            UsageRow(d["seq"], _aware(d["hour"]), int(d["requests"]), int(d["numbers"]))
            for d in docs
        ]

    # -- idempotency keys ------------------------------------------------------------
    # ``idempotency`` documents: _id = "<tenant>/<key>" (a slug has no "/", so the
    # split is unambiguous whatever the key holds).
    @property
    def idempotency(self) -> Any:
        return self._db["idempotency"]

    async def claim_idempotency(
        self, tenant: str, record: IdempotencyRecord
    ) -> IdempotencyRecord | None:
        doc_id = _doc_id(tenant, record.key)
        doc = {
            "_id": doc_id,
            "tenant": tenant,
            "key": record.key,
            "fingerprint": record.fingerprint,
            "created_at": record.created_at,
            "expires_at": record.expires_at,
            "locked_until": record.locked_until,
            "status": None,
            "body": None,
            "content_type": None,
            "allocation": None,
        }
        for _ in range(8):
            try:
                await self._call(self.idempotency.insert_one(doc))
                return None
            except DuplicateKeyError:
                pass
            found = await self._call(self.idempotency.find_one({"_id": doc_id, "tenant": tenant}))
            if found is None:
                continue  # expired and deleted in between: insert again
            if _aware(found["expires_at"]) > record.created_at:
                return ledger_docs.idempotency(found)
            # Expired but not yet removed by the TTL monitor: replace it, unless another
            # request did so first.
            replaced = await self._call(
                self.idempotency.replace_one(
                    {"_id": doc_id, "tenant": tenant, "expires_at": found["expires_at"]}, doc
                )
            )
            if replaced.matched_count == 1:
                return None
        raise StoreUnavailable("The idempotency key is contended; try again.")

    async def relock_idempotency(
        self, tenant: str, key: str, *, expected: datetime, locked_until: datetime
    ) -> bool:
        result = await self._call(
            self.idempotency.update_one(
                {**_key(tenant, key), "locked_until": expected, "status": None},
                {"$set": {"locked_until": locked_until}},
            )
        )
        return bool(result.modified_count == 1)

    async def complete_idempotency(
        self, tenant: str, key: str, *, status: int, body: bytes, content_type: str
    ) -> None:
        await self._call(
            self.idempotency.update_one(
                _key(tenant, key),
                {"$set": {"status": status, "body": body, "content_type": content_type}},
            )
        )

    async def release_idempotency(self, tenant: str, key: str) -> None:
        await self._call(
            self.idempotency.delete_one({**_key(tenant, key), "status": None, "allocation": None})
        )

    async def sweep_idempotency(self, now: datetime) -> int:
        result = await self._call(self.idempotency.delete_many({"expires_at": {"$lte": now}}))
        return int(result.deleted_count)

    async def _start_tenants(self) -> None:
        await self._call(
            self.clients.create_index([("tenant", ASCENDING), ("client_id", ASCENDING)])
        )

    async def create_tenant(self, tenant: str, record: TenantRecord) -> None:
        doc = {
            "_id": tenant,
            "tenant": tenant,
            "config": record.config,
            "created_at": record.created_at,
            "updated_at": record.updated_at,
            "revision": record.revision,
        }
        try:
            await self._call(self.tenants.insert_one(doc))
        except DuplicateKeyError as exc:
            raise AlreadyExists(tenant) from exc

    async def get_tenant(self, tenant: str) -> TenantRecord | None:
        doc = await self._call(self.tenants.find_one({"_id": tenant, "tenant": tenant}))
        return _tenant(doc) if doc else None

    async def list_tenants(self, *, after: str | None, limit: int) -> list[TenantRecord]:
        query: dict[str, Any] = {"_id": {"$gt": after}} if after else {}
        cursor = self.tenants.find(query).sort("_id", ASCENDING).limit(limit)
        docs = await self._call(cursor.to_list(length=limit))
        return [_tenant(d) for d in docs]

    async def update_tenant(
        self, tenant: str, record: TenantRecord, *, expected_revision: int
    ) -> bool:
        result = await self._call(
            self.tenants.update_one(
                {"_id": tenant, "tenant": tenant, "revision": expected_revision},
                {
                    "$set": {
                        "config": record.config,
                        "updated_at": record.updated_at,
                        "revision": record.revision,
                    }
                },
            )
        )
        return bool(result.modified_count == 1)

    async def delete_tenant(self, tenant: str, *, with_data: bool = True) -> bool:
        # Several writes: the registry entry first, then what it owns; counters last and
        # only those whose definition is gone, so a delete cut short leaves nothing a
        # live sequence could use, and a retried delete (answering False) finishes it.
        result = await self._call(self.tenants.delete_one({"_id": tenant, "tenant": tenant}))
        await self._call(self.clients.delete_many({"tenant": tenant}))
        if with_data:
            await self._call(self.idempotency.delete_many({"tenant": tenant}))
            await self._call(self.sequences.delete_many({"tenant": tenant}))
            await self._purge(tenant)
            await self._call(self.ledger.delete_many({"tenant": tenant}))
        return bool(result.deleted_count == 1)

    # -- API clients ------------------------------------------------------------------
    async def create_client(self, tenant: str, record: ClientRecord) -> None:
        doc = {
            "_id": _doc_id(tenant, record.client_id),
            "tenant": tenant,
            "client_id": record.client_id,
            "name": record.name,
            "secret_hash": record.secret_hash,
            "scopes": list(record.scopes),
            "created_at": record.created_at,
            "last_used_at": record.last_used_at,
            "revoked_at": record.revoked_at,
        }
        try:
            await self._call(self.clients.insert_one(doc))
        except DuplicateKeyError as exc:
            raise AlreadyExists(record.client_id) from exc

    async def get_client(self, tenant: str, client_id: str) -> ClientRecord | None:
        doc = await self._call(self.clients.find_one(_key(tenant, client_id)))
        return _client(doc) if doc else None

    async def list_clients(self, tenant: str) -> list[ClientRecord]:
        cursor = self.clients.find({"tenant": tenant}).sort("client_id", ASCENDING)
        docs = await self._call(cursor.to_list(length=None))
        return [_client(d) for d in docs]

    async def set_client_secret(self, tenant: str, client_id: str, secret_hash: str) -> bool:
        result = await self._call(
            self.clients.update_one(
                {**_key(tenant, client_id), "revoked_at": None},
                {"$set": {"secret_hash": secret_hash}},
            )
        )
        return bool(result.modified_count == 1)

    async def revoke_client(self, tenant: str, client_id: str, at: datetime) -> bool:
        result = await self._call(
            self.clients.update_one(
                {**_key(tenant, client_id), "revoked_at": None},
                {"$set": {"revoked_at": at}},
            )
        )
        return bool(result.modified_count == 1)

    async def touch_client(self, tenant: str, client_id: str, at: datetime) -> None:
        await self._call(
            self.clients.update_one(_key(tenant, client_id), {"$set": {"last_used_at": at}})
        )


def _maybe_aware(value: datetime | None) -> datetime | None:
    return _aware(value) if value is not None else None


def _tenant(doc: dict[str, Any]) -> TenantRecord:
    return TenantRecord(
        slug=doc["_id"],
        config=dict(doc["config"]),
        created_at=_aware(doc["created_at"]),
        updated_at=_aware(doc["updated_at"]),
        revision=int(doc["revision"]),
    )


def _client(doc: dict[str, Any]) -> ClientRecord:
    return ClientRecord(
        client_id=doc["client_id"],
        tenant=doc["tenant"],
        name=doc["name"],
        secret_hash=doc["secret_hash"],
        scopes=tuple(doc["scopes"]),
        created_at=_aware(doc["created_at"]),
        last_used_at=_maybe_aware(doc.get("last_used_at")),
        revoked_at=_maybe_aware(doc.get("revoked_at")),
    )
