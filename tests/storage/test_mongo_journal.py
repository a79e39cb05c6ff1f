"""MongoDB without transactions: a crash between any two writes of a ledger allocation
leaves every number accounted for (the counter document is the journal)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from mongomock_motor import AsyncMongoMockClient
from pymongo.errors import AutoReconnect

from storage import COMMITTED, Counter, LedgerDraft, Rider, StoreUnavailable
from storage.mongo import MongoStore
from tests.contract.test_store import define

NOW = datetime.now(UTC).replace(microsecond=0)
SHAPE = Counter(base=1, step=1, cap=1000)


def rider(n: int = 1) -> Rider:
    return Rider(
        n,
        LedgerDraft(
            sequence="inv",
            period="",
            state=COMMITTED,
            actor="alice",
            issued_at=NOW,
            render=lambda v: f"INV-{v}",
        ),
    )


class Dies:
    """A collection whose named method fails (the process "dies" there) until revived."""

    def __init__(self, real: Any, method: str) -> None:
        self.real, self.method, self.dead = real, method, True

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.real, name)
        if name != self.method:
            return attr

        async def maybe_die(*args: Any, **kwargs: Any) -> Any:
            if self.dead:
                raise AutoReconnect("killed")
            return await attr(*args, **kwargs)

        return maybe_die


@pytest.fixture
async def store() -> AsyncIterator[MongoStore]:
    s = MongoStore(AsyncMongoMockClient()["tally"])
    await s.start()
    await define(s, "acme", "inv")
    yield s
    await s.close()


async def entries(store: MongoStore) -> list[int]:
    return [e.value for e in await store.list_ledger("acme", "inv", period="", now=NOW, limit=99)]


async def test_a_crash_before_the_entries_are_copied_loses_none(store: MongoStore) -> None:
    await store.allocate("acme", "inv", "inv", SHAPE, 2, riders=[rider(2)])
    real = store.ledger
    store.ledger = Dies(real, "insert_many")
    with pytest.raises(StoreUnavailable):
        await store.allocate("acme", "inv", "inv", SHAPE, 3, riders=[rider(), rider(2)])
    store.ledger = real
    counter = await store.read_counter("acme", "inv")
    assert counter is not None and counter.ticks == 5  # the increment stands...
    assert await entries(store) == [1, 2, 3, 4, 5]  # ...and so do its entries
    doc = await store.counters.find_one({"_id": "acme/inv"})
    assert doc["pending"] == []


async def test_a_crash_before_the_journal_is_cleared_duplicates_nothing(store: MongoStore) -> None:
    real = store.counters
    await store.allocate("acme", "inv", "inv", SHAPE, 1, riders=[rider()])
    dying = Dies(real, "update_one")
    store.counters = dying
    dying.dead = False
    calls: list[Any] = []
    original = real.update_one

    async def die_on_pull(query: Any, update: Any, **kwargs: Any) -> Any:
        calls.append(update)
        if "$pull" in update:
            raise AutoReconnect("killed")
        return await original(query, update, **kwargs)

    real.update_one = die_on_pull
    with pytest.raises(StoreUnavailable):
        await store.allocate("acme", "inv", "inv", SHAPE, 2, riders=[rider(2)])
    real.update_one = original
    store.counters = real
    doc = await real.find_one({"_id": "acme/inv"})
    assert [item["t"] for item in doc["pending"]] == [1]  # the journal still holds it
    assert await entries(store) == [1, 2, 3]  # copied once, settled again: no duplicate
    assert (await real.find_one({"_id": "acme/inv"}))["pending"] == []
    assert await store.allocate("acme", "inv", "inv", SHAPE, 1, riders=[rider()]) == 4
    assert await entries(store) == [1, 2, 3, 4]


async def test_a_pending_reservation_is_found_and_closed(store: MongoStore) -> None:
    real = store.ledger
    store.ledger = Dies(real, "insert_many")
    reservation = Rider(
        1,
        LedgerDraft(
            sequence="inv",
            period="",
            state="reserved",
            actor="alice",
            issued_at=NOW,
            render=lambda v: None,
            reservation="r1",
            expires_at=datetime(2999, 1, 1, tzinfo=UTC),
        ),
    )
    with pytest.raises(StoreUnavailable):
        await store.allocate("acme", "inv", "inv", SHAPE, 1, riders=[reservation])
    store.ledger = real
    closed = await store.close_reservation(
        "acme", "inv", "r1", state=COMMITTED, at=NOW, actor="bob", reference=None, reason=None
    )
    assert closed is not None and closed.state == COMMITTED and closed.value == 1


async def test_idempotency_keys_expire_by_a_ttl_index(store: MongoStore) -> None:
    indexes = await store.idempotency.index_information()
    ttl = [i for i in indexes.values() if "expireAfterSeconds" in i]
    assert [(i["key"], i["expireAfterSeconds"]) for i in ttl] == [([("expires_at", 1)], 0)]
