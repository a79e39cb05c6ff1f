"""A counter belongs to one incarnation of its sequence, on every backend.

The e2e twin (tests/e2e/test_delete_race.py) races DELETE against the first ``next``
across two server processes; here the same race is forced into each order.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from core.clock import FrozenClock
from sequences.errors import LedgerKept, SequenceExhausted, SequenceNotFound
from sequences.schemas import SequenceCreate
from sequences.service import SequenceService
from storage import Counter, Increment, Store
from tests.contract.test_store import make_record
from tests.sequences.support import HeldOnce


async def test_a_counter_is_founded_only_while_its_incarnation_exists(store: Store) -> None:
    await store.create_sequence("acme", make_record("inv", incarnation="one"))
    # Another incarnation of the same name founds nothing, by allocate or by replace.
    assert await store.allocate("acme", "inv", "inv", Counter(1, 1, 9, 0, "two"), 1) is None
    assert not await store.replace_counter("acme", "inv", "inv", None, Counter(1, 1, 9, 0, "two"))
    assert await store.read_counter("acme", "inv") is None
    assert await store.allocate("acme", "inv", "inv", Counter(1, 1, 9, 0, "one"), 2) == 2
    assert await store.read_counter("acme", "inv") == Counter(1, 1, 9, 2, "one")
    # The counter answers only to its own incarnation.
    assert await store.allocate("acme", "inv", "inv", Counter(1, 1, 9, 0, "two"), 1) is None
    assert not await store.replace_counter(
        "acme", "inv", "inv", Counter(1, 1, 9, 2, "two"), Counter(5, 1, 9, 0, "two")
    )
    assert await store.read_counter("acme", "inv") == Counter(1, 1, 9, 2, "one")


async def test_an_allocation_that_read_the_definition_before_a_delete_founds_nothing(
    store: Store,
) -> None:
    await store.create_sequence("acme", make_record("inv", incarnation="old"))
    shape = Counter(1, 1, 2**63 - 1, 0, "old")  # what the racing first next computed
    assert await store.delete_sequence("acme", "inv")
    assert await store.allocate("acme", "inv", "inv", shape, 1) is None
    assert await store.allocate("acme", "inv/2026", "inv", shape, 1) is None
    assert not await store.replace_counter("acme", "inv", "inv", None, shape)
    assert await store.read_counter("acme", "inv") is None
    assert await store.read_counter("acme", "inv/2026") is None


async def test_creating_the_name_again_removes_counters_of_earlier_incarnations(
    store: Store,
) -> None:
    await store.create_sequence("acme", make_record("inv", incarnation="old"))
    await store.allocate("acme", "inv/2025", "inv", Counter(1, 1, 9, 0, "old"), 3)
    await store.allocate("acme", "other", "other", Counter(1, 1, 9, 0, "x"), 1)  # no definition
    await store.create_sequence("acme", make_record("other", incarnation="x"))
    await store.allocate("acme", "other", "other", Counter(1, 1, 9, 0, "x"), 1)
    assert await store.delete_sequence("acme", "inv")
    await store.create_sequence("acme", make_record("inv", incarnation="new"))
    assert await store.read_counter("acme", "inv/2025") is None
    assert await store.read_counter("acme", "other") == Counter(1, 1, 9, 1, "x")


class DeleteBeforeFirstAllocate:
    """A store whose next founding allocation is preceded (or followed) by a DELETE.

    That is the race of the e2e test, in a fixed order: the first ``next`` has read the
    definition, then the DELETE lands before (or right after) it founds the counter.
    """

    def __init__(self, inner: Store, *, after: bool = False) -> None:
        self.inner = inner
        self.after = after
        self.armed: str | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def allocate(self, tenant: str, key: str, seq: str, shape: Counter, n: int, **kw: Any):  # type: ignore[no-untyped-def]
        if not kw.get("create", True):  # a probe of a counter that may exist: no race yet
            return await self.inner.allocate(tenant, key, seq, shape, n, **kw)
        name, self.armed = self.armed, None
        if name and not self.after:
            assert await self.inner.delete_sequence(tenant, name)
        result = await self.inner.allocate(tenant, key, seq, shape, n, **kw)
        if name and self.after:
            assert await self.inner.delete_sequence(tenant, name)
        return result

    async def allocate_many(self, items: list[Increment]) -> list[int | None]:
        # A group applies its items in order, as these one-at-a-time calls do.
        return [
            await self.allocate(i.tenant, i.key, i.seq, i.shape, i.n, create=i.create)
            for i in items
        ]


@pytest.mark.parametrize("delete_lands", ["before", "after"])
async def test_a_sequence_created_again_after_a_racing_delete_issues_only_its_own_numbers(
    store: Store, delete_lands: str
) -> None:
    racing = DeleteBeforeFirstAllocate(store, after=delete_lands == "after")
    service = SequenceService(racing, clock=FrozenClock())  # type: ignore[arg-type]
    for i in range(3):
        name = f"inv-{i}"
        await service.create("acme", SequenceCreate(name=name))
        racing.armed = name
        if delete_lands == "before":
            with pytest.raises(SequenceNotFound):
                await service.next("acme", name)
        else:
            assert (await service.next("acme", name)).first == 1
        start = 1000 + i
        await service.create("acme", SequenceCreate(name=name, start=start, max=start + 2))
        got = [(await service.next("acme", name)).first for _ in range(3)]
        assert got == [start, start + 1, start + 2]
        with pytest.raises(SequenceExhausted):
            await service.next("acme", name)


async def test_a_delete_of_an_incarnation_read_earlier_leaves_the_name_created_since(
    store: Store,
) -> None:
    await store.create_sequence("acme", make_record("inv", incarnation="old"))
    assert await store.delete_sequence("acme", "inv")
    await store.create_sequence("acme", make_record("inv", incarnation="new"))
    await store.allocate("acme", "inv", "inv", Counter(1, 1, 9, 0, "new"), 2)
    assert not await store.delete_sequence("acme", "inv", incarnation="old")
    record = await store.get_sequence("acme", "inv")
    assert record is not None and record.incarnation == "new"
    assert await store.read_counter("acme", "inv") == Counter(1, 1, 9, 2, "new")
    assert await store.delete_sequence("acme", "inv", incarnation="new")
    assert await store.get_sequence("acme", "inv") is None
    assert await store.read_counter("acme", "inv") is None


async def test_a_delete_racing_the_name_made_again_as_a_ledger_keeps_the_ledger(
    store: Store,
) -> None:
    """A DELETE reads a plain sequence, then (before its delete) the name is deleted and
    created again as a ledger sequence, which is never deleted: the DELETE is a 409."""
    held = HeldOnce(store, "delete_sequence")
    deleting = SequenceService(held, clock=FrozenClock())  # type: ignore[arg-type]
    other = SequenceService(store, clock=FrozenClock())  # another process
    if not other.atomic_riders:
        pytest.skip(f"the {store.kind} store keeps no ledger sequences")
    await other.create("acme", SequenceCreate(name="inv"))
    go = held.hold()
    delete = asyncio.create_task(deleting.delete("acme", "inv"))
    await held.reached.wait()
    await other.delete("acme", "inv")
    await other.create("acme", SequenceCreate(name="inv", ledger=True))
    assert [(await other.next("acme", "inv")).first for _ in range(2)] == [1, 2]
    go.set()
    with pytest.raises(LedgerKept):
        await delete
    assert (await other.next("acme", "inv")).first == 3
    record = await store.get_sequence("acme", "inv")
    assert record is not None and record.config["ledger"] is True
