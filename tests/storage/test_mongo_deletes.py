"""MongoDB deletes are several writes: cut short, they leave nothing a sequence uses."""

from __future__ import annotations

from typing import Any

import pytest
from mongomock_motor import AsyncMongoMockClient
from pymongo.errors import AutoReconnect

from core.clock import FrozenClock
from sequences.errors import SequenceExhausted
from sequences.schemas import SequenceCreate
from sequences.service import SequenceService
from storage import StoreUnavailable
from storage.mongo import MongoStore


class FailingDeletes:
    """A collection whose next ``delete_many`` fails, as a connection lost mid-delete."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.fail = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def delete_many(self, *args: Any, **kwargs: Any) -> Any:
        if self.fail:
            self.fail -= 1
            raise AutoReconnect("connection lost")
        return await self.inner.delete_many(*args, **kwargs)


async def mongo_service() -> tuple[SequenceService, MongoStore, FailingDeletes]:
    store = MongoStore(AsyncMongoMockClient()["tally"])
    await store.start()
    counters = store.counters = FailingDeletes(store.counters)
    return SequenceService(store, clock=FrozenClock()), store, counters


async def counter_ids(store: MongoStore) -> list[str]:
    return sorted(d["_id"] for d in await store.counters.find({}).to_list(length=None))


@pytest.mark.parametrize("retry_delete_first", [True, False])
async def test_a_delete_cut_short_leaves_a_counter_nothing_uses_and_that_is_cleaned_up(
    retry_delete_first: bool,
) -> None:
    service, store, counters = await mongo_service()
    await service.create("acme", SequenceCreate(name="inv"))
    assert [(await service.next("acme", "inv")).first for _ in range(3)] == [1, 2, 3]
    counters.fail = 1
    with pytest.raises(StoreUnavailable):
        await service.delete("acme", "inv")
    assert await store.get_sequence("acme", "inv") is None
    assert await counter_ids(store) == ["acme/inv"]  # the leftover
    if retry_delete_first:
        assert not await store.delete_sequence("acme", "inv")  # already gone: 404 ...
        assert await counter_ids(store) == []  # ... and the leftover is removed
    await service.create("acme", SequenceCreate(name="inv", start=1000, max=1002))
    assert await counter_ids(store) == []  # creating the name again removes it too
    got = [(await service.next("acme", "inv")).first for _ in range(3)]
    assert got == [1000, 1001, 1002]
    with pytest.raises(SequenceExhausted):
        await service.next("acme", "inv")


async def test_a_leftover_the_cleanup_never_saw_is_replaced_not_adopted() -> None:
    # A racing first next that died between its write and its check leaves this behind.
    service, store, _ = await mongo_service()
    await service.create("acme", SequenceCreate(name="inv", start=1000, max=1002))
    leftover = {"_id": "acme/inv", "tenant": "acme", "seq": "inv", "base": 1, "step": 1}
    await store.counters.insert_one(leftover | {"cap": 2**63 - 1, "ticks": 5, "incarnation": "x"})
    assert (await service.describe("acme", "inv")).next == 1000  # not the leftover's 6
    got = [(await service.next("acme", "inv")).first for _ in range(3)]
    assert got == [1000, 1001, 1002]
    record = await store.get_sequence("acme", "inv")
    counter = await store.read_counter("acme", "inv")
    assert record and counter and counter.incarnation == record.incarnation


async def test_a_tenant_delete_cut_short_is_finished_by_a_retry() -> None:
    service, store, counters = await mongo_service()
    await service.create("acme", SequenceCreate(name="inv"))
    await service.next("acme", "inv")
    counters.fail = 1
    with pytest.raises(StoreUnavailable):
        await store.delete_tenant("acme")
    assert await store.list_sequences("acme", after=None, limit=10) == []
    assert await counter_ids(store) == ["acme/inv"]
    assert not await store.delete_tenant("acme")
    assert await counter_ids(store) == []
