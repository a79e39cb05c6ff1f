"""MongoDB: audit documents an older version keyed by ObjectId are numbered in their
tenant's trail, in ObjectId order, before a new entry or a read; their cursors still work.

MongoDB's own upgrade path, so here beside the contract suite: it runs on mongomock and,
with ``MONGODB_URI`` set (CI's mongodb job), on a real MongoDB.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from bson import ObjectId
from mongomock_motor import AsyncMongoMockClient

from storage.mongo import MongoStore
from tests.contract.shard_check import ShardCheckedDatabase
from tests.contract.test_store import make_entry


def n(number: int) -> str:
    return f"{number:019d}"


def old_doc(tenant: str, action: str, oid: ObjectId) -> dict[str, Any]:
    """An audit document as the released version inserted it."""
    return {
        "_id": oid,
        "tenant": tenant,
        "at": datetime(2026, 3, 1, 12, tzinfo=UTC),
        "actor": "alice",
        "client_id": "c",
        "action": action,
        "target": "t",
        "before": None,
        "after": {"action": action},
    }


# ObjectIds as one old process made them: one timestamp, a counter shared by every tenant.
OLD = [("acme", "a0"), ("globex", "g0"), ("", "p0"), ("acme", "a1"), ("globex", "g1")]
OLD += [("globex", "g2"), ("acme", "a2")]
OIDS = [ObjectId(f"6a000000aaaaaaaaaa{i:06x}") for i in range(len(OLD))]


@pytest.fixture(
    params=[
        "mongomock",
        pytest.param(
            "mongodb",
            marks=[
                pytest.mark.mongodb,
                pytest.mark.skipif(
                    not os.environ.get("MONGODB_URI"),
                    reason="MONGODB_URI is not set: real-MongoDB contract run skipped",
                ),
            ],
        ),
    ]
)
async def database(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """A database holding the old version's audit documents, not yet started on."""
    if request.param == "mongomock":
        db: Any = AsyncMongoMockClient()["tally"]
        # mongomock's create_index ignores partialFilterExpression for the documents
        # already there (MongoDB does not) and would refuse two unnumbered ones; so on
        # mongomock the indexes come first. The real MongoDB run starts on old documents.
        await MongoStore(db).start()
        await seed(db)
        yield db
        return
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        os.environ["MONGODB_URI"], tz_aware=True
    )
    name = f"tally_legacy_{uuid.uuid4().hex[:12]}"
    try:
        await seed(client[name])
        await MongoStore(client[name]).start()
        yield client[name]
    finally:
        await client.drop_database(name)
        await client.close()


async def seed(db: Any) -> None:
    for (tenant, action), oid in zip(OLD, OIDS, strict=True):
        await db["audit"].insert_one(old_doc(tenant, action, oid))


def store_on(database: Any) -> MongoStore:
    """A process's store over ``database`` (started: the indexes are there)."""
    return MongoStore(ShardCheckedDatabase(database))


async def actions(store: MongoStore, tenant: str, after: str | None = None) -> list[str]:
    return [e.action for e in await store.list_audit(tenant, after=after, limit=50)]


async def test_old_documents_are_numbered_per_tenant_in_objectid_order(database: Any) -> None:
    store = store_on(database)
    acme = await store.list_audit("acme", after=None, limit=10)
    assert [(e.id, e.action) for e in acme] == [(n(1), "a0"), (n(2), "a1"), (n(3), "a2")]
    assert acme[0].after == {"action": "a0"}
    assert await store.append_audit("acme", make_entry("a3")) == n(4)
    # globex is numbered by its first new entry, before that entry takes its number.
    assert await store.append_audit("globex", make_entry("g3")) == n(4)
    globex = await store.list_audit("globex", after=None, limit=10)
    assert [(e.id, e.action) for e in globex] == [(n(i + 1), f"g{i}") for i in range(4)]
    assert [e.id for e in await store.list_audit("", after=None, limit=10)] == [n(1)]


async def test_an_objectid_cursor_continues_where_it_was_and_probes_nothing_newer(
    database: Any,
) -> None:
    store = store_on(database)
    await store.append_audit("acme", make_entry("a3"))
    assert await actions(store, "acme", str(OIDS[0])) == ["a1", "a2", "a3"]
    assert await actions(store, "acme", str(OIDS[4])) == ["a2", "a3"]  # globex's: a place
    assert await actions(store, "acme", str(OIDS[6])) == ["a3"]
    # Entries written since have no ObjectId: any later ObjectId answers the same.
    for later in (ObjectId(), ObjectId("f" * 24), ObjectId(f"6a000000aaaaaaaaaa{99:06x}")):
        assert await actions(store, "acme", str(later)) == ["a3"]


async def test_an_old_version_writing_beside_this_one_is_never_skipped(database: Any) -> None:
    store = store_on(database)
    await store.append_audit("acme", make_entry("a3"))
    page = await store.list_audit("acme", after=None, limit=50)
    # The old process writes after a client has read up to here...
    await database["audit"].insert_one(old_doc("acme", "late", ObjectId()))
    # ...and the client's next page has it, numbered after what it has seen.
    later = await store.list_audit("acme", after=page[-1].id, limit=50)
    assert [(e.id, e.action) for e in later] == [(n(5), "late")]


class Yielding:
    """A database whose writes let other tasks run first, as a network round trip does
    (mongomock-motor's calls complete without yielding, so nothing would interleave)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getitem__(self, name: str) -> Any:
        return YieldingCollection(self._inner[name])


class YieldingCollection:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, attr: str) -> Any:
        method = getattr(self._inner, attr)
        if attr not in {"find_one_and_update", "update_one", "insert_one"}:
            return method

        async def call(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(0)
            result = await method(*args, **kwargs)
            await asyncio.sleep(0)
            return result

        return call


async def test_two_processes_numbering_at_once_keep_order_and_never_share_a_number(
    database: Any,
) -> None:
    # Two processes (the indexes are there already).
    first = MongoStore(Yielding(ShardCheckedDatabase(database)))
    second = MongoStore(Yielding(ShardCheckedDatabase(database)))
    got = await asyncio.gather(
        first.list_audit("globex", after=None, limit=10),
        second.list_audit("globex", after=None, limit=10),
        first.append_audit("globex", make_entry("g3")),
    )
    trail = await first.list_audit("globex", after=None, limit=10)
    assert [e.action for e in trail] == ["g0", "g1", "g2", "g3"]
    ids = [e.id for e in trail]
    assert all(len(i) == 19 and i.isdigit() for i in ids), ids
    assert ids == sorted(set(ids))  # increasing, no number twice (a race may leave gaps)
    assert trail[-1].id == got[2]
