"""MongoDB backend (production), through PyMongo's async API.

Allocation is one ``find_one_and_update`` with ``$inc`` on ``_id: "<tenant>/<key>"``
(``key`` is ``<sequence>`` or ``<sequence>/<period>``), with ``upsert`` and
``ReturnDocument.AFTER``. The filter pins the counter's shape and room, so a stale or
over-the-bound request matches nothing; the upsert then collides with the existing
``_id`` and raises ``DuplicateKeyError``, which here means "re-read", the same as two
processes racing to create a counter. Tenant-scoped collections are sharded on
``{tenant: 1, _id: 1}``: every document carries ``tenant`` and every filter names it
(``_key``), so each operation is routed to one shard (see docs/storage.md).

The store is one class made of parts, each over the shared collections and ``_call``
of ``storage.mongo_base``: the registry (``mongo_registry``), the audit trail
(``mongo_audit``), usage (``mongo_usage``), idempotency keys (``mongo_idempotency``)
and the ledger with the settling of the counters' journals (``mongo_ledger``). This
module holds what allocation is: sequences, counters, their incarnations, riders and
group allocation.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError, OperationFailure

from storage import mongo_ledger as ledger_docs
from storage.base import (
    GROUP_CONCURRENCY,
    Counter,
    IdempotencyRecord,
    Increment,
    Rider,
    SequenceRecord,
    allocate_concurrently,
)
from storage.errors import AlreadyExists, StoreUnavailable
from storage.mongo_audit import MongoAudit
from storage.mongo_base import _aware, _doc_id, _inc, _key
from storage.mongo_idempotency import MongoIdempotency
from storage.mongo_ledger import MongoLedger
from storage.mongo_registry import MongoRegistry
from storage.mongo_usage import MongoUsage


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


class MongoStore(MongoRegistry, MongoAudit, MongoUsage, MongoIdempotency, MongoLedger):
    kind = "mongodb"
    atomic_riders = True  # journaled in the counter document (see _allocate_riding)

    # -- idempotency keys, with the numbers their allocations journaled ----------------
    # An allocation under a key notes its numbers in the counter's journal, with the
    # increment; copying the note onto the key is a second write. Cut short in between
    # (a failure after the increment landed, a crash), the key must still answer those
    # numbers: a retry that looks at the key, or a release of it, settles its journal
    # first, so neither takes, nor frees the key for, new numbers.
    async def claim_idempotency(
        self, tenant: str, record: IdempotencyRecord
    ) -> IdempotencyRecord | None:
        held = await super().claim_idempotency(tenant, record)
        if held is None or held.completed or held.allocation is not None:
            return held
        if await self._settle_key(tenant, record.key):
            return await super().claim_idempotency(tenant, record)
        return held

    async def release_idempotency(self, tenant: str, key: str) -> None:
        await self._settle_key(tenant, key)  # a key that took numbers is kept
        await super().release_idempotency(tenant, key)

    async def start(self) -> None:
        await self._call(self.sequences.create_index([("tenant", ASCENDING), ("name", ASCENDING)]))
        await self._call(self.counters.create_index([("tenant", ASCENDING), ("seq", ASCENDING)]))
        await self._start_audit()
        await self._start_usage()
        await self._start_tenants()
        await self._start_ledger()
        await self._start_idempotency()

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

    async def get_sequences(self, tenant: str, names: Sequence[str]) -> dict[str, SequenceRecord]:
        wanted = list(dict.fromkeys(names))
        if not wanted:
            return {}
        ids = [_doc_id(tenant, name) for name in wanted]
        cursor = self.sequences.find({"tenant": tenant, "_id": {"$in": ids}})
        docs = await self._call(cursor.to_list(length=None))
        return {record.name: record for record in map(_record, docs)}

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

    async def delete_sequence(
        self, tenant: str, name: str, *, incarnation: str | None = None
    ) -> bool:
        # Two writes, definition first: cut short in between, what is left are counters
        # of a dead incarnation, which nothing uses and the next call (a retried DELETE,
        # or creating the name again) removes.
        which = _key(tenant, name)
        if incarnation is not None:
            which["incarnation"] = _inc(incarnation)
        result = await self._call(self.sequences.delete_one(which))
        await self._purge(tenant, name)
        return bool(result.deleted_count == 1)

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
