"""Two processes (two services on one store): a stale cache never decides the numbering.

Each process caches definitions for up to DEFINITION_TTL_SECONDS and counter shapes
indefinitely; these tests change a sequence through one "process" and allocate through
the other, on a frozen clock, so the other's caches are as stale as they can get.
"""

from __future__ import annotations

from core.clock import FrozenClock
from sequences.schemas import SequenceCreate, SequencePatch
from sequences.service import SequenceService
from storage import Increment, Store


def two_processes(store: Store) -> tuple[SequenceService, SequenceService]:
    clock = FrozenClock()
    return SequenceService(store, clock=clock), SequenceService(store, clock=clock)


async def test_recreated_sequence_starts_from_its_new_start_in_a_stale_process(
    store: Store,
) -> None:
    a, b = two_processes(store)
    await a.create("acme", SequenceCreate(name="inv"))
    assert [(await b.next("acme", "inv")).first for _ in range(3)] == [1, 2, 3]
    await a.delete("acme", "inv")
    await a.create("acme", SequenceCreate(name="inv", start=1000, max=1005))
    # b still caches the old definition and counter shape.
    assert (await b.next("acme", "inv")).first == 1000
    counter = await store.read_counter("acme", "inv")
    assert counter is not None and counter.base == 1000 and counter.cap == 6


async def test_deleted_sequence_is_404_not_resurrected_by_a_stale_process(store: Store) -> None:
    from sequences.errors import SequenceNotFound

    a, b = two_processes(store)
    await a.create("acme", SequenceCreate(name="inv"))
    await b.next("acme", "inv")
    await a.delete("acme", "inv")
    try:
        await b.next("acme", "inv")
    except SequenceNotFound:
        pass
    else:
        raise AssertionError("a stale process allocated from a deleted sequence")
    assert await store.read_counter("acme", "inv") is None


async def test_a_stale_process_wraps_with_the_new_max(store: Store) -> None:
    a, b = two_processes(store)
    await a.create("acme", SequenceCreate(name="cyc", max=100, cycle=True))
    assert (await b.next("acme", "cyc", 3)).last == 3
    await a.update("acme", "cyc", SequencePatch(max=5))
    values = [(await b.next("acme", "cyc")).first for _ in range(6)]
    assert values == [4, 5, 1, 2, 3, 4]
    counter = await store.read_counter("acme", "cyc")
    assert counter is not None and counter.base + (counter.cap - 1) * counter.step == 5


async def test_formatted_range_uses_the_step_the_counter_used(store: Store) -> None:
    from sequences.service import next_out

    a, b = two_processes(store)
    await a.create("acme", SequenceCreate(name="f", format="F-{n}"))
    await b.next("acme", "f")  # b caches step 1
    await a.update("acme", "f", SequencePatch(step=10))
    seq = await b.get("acme", "f")
    assert seq.step == 1, "b's definition cache is expected to be stale here"
    out = next_out(seq, await b.next("acme", "f", 3))
    assert (out.value, out.last) == (11, 31)
    assert out.formatted_range == ["F-11", "F-21", "F-31"]


async def test_advance_makes_other_processes_drop_their_cached_blocks(store: Store) -> None:
    from sequences.service import DEFINITION_TTL_SECONDS

    clock = FrozenClock()
    a, b = SequenceService(store, clock=clock), SequenceService(store, clock=clock)
    await a.create("acme", SequenceCreate(name="c", mode="cached"))
    assert (await b.next("acme", "c")).first == 1  # b leases a block starting at 1
    await a.advance("acme", "c", 5000)
    clock.advance(DEFINITION_TTL_SECONDS + 1)  # b's definition cache expires
    assert (await b.next("acme", "c")).first >= 5000


class _RacedStore:
    """Lets another process create the counter between our create=False miss and re-read."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.raced = False

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    async def allocate(
        self, tenant: str, key: str, seq: str, shape: object, n: int, *, create: bool = True
    ) -> int | None:
        result = await self.inner.allocate(tenant, key, seq, shape, n, create=create)  # type: ignore[arg-type]
        if result is None and not create and not self.raced:
            self.raced = True
            await self.inner.allocate(tenant, key, seq, shape, 1, create=True)  # type: ignore[arg-type]
        return result

    async def allocate_many(self, items: list[Increment]) -> list[int | None]:
        return [
            await self.allocate(i.tenant, i.key, i.seq, i.shape, i.n, create=i.create)
            for i in items
        ]


async def test_a_counter_created_by_a_racing_process_is_used_not_called_exhausted(
    store: Store,
) -> None:
    a = SequenceService(store, clock=FrozenClock())
    await a.create("acme", SequenceCreate(name="r", reset="daily"))
    a._shapes.clear()  # as if the shape were cached from another period
    b = SequenceService(_RacedStore(store), clock=FrozenClock())  # type: ignore[arg-type]
    await b.get("acme", "r")
    b._shapes[("acme", "r/2026-01-01")] = (await b.get("acme", "r")).fresh_counter()
    alloc = await b.next("acme", "r")
    assert alloc.first == 2  # the racing process took 1
