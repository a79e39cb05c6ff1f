"""The definition cache refreshes a tenant's due definitions in one store read."""

from __future__ import annotations

from collections.abc import Sequence as Names
from typing import Any

import pytest

from core.clock import FrozenClock
from sequences.errors import SequenceNotFound
from sequences.schemas import SequenceCreate, SequencePatch
from sequences.service import DEFINITION_TTL_SECONDS, SequenceService
from storage import SequenceRecord, Store


class ReadCounting:
    """A real store that counts definition reads (one name, or many at once)."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.reads: list[list[str]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def get_sequence(self, tenant: str, name: str) -> SequenceRecord | None:
        self.reads.append([name])
        return await self.inner.get_sequence(tenant, name)

    async def get_sequences(self, tenant: str, names: Names[str]) -> dict[str, SequenceRecord]:
        self.reads.append(sorted(names))
        return await self.inner.get_sequences(tenant, names)


async def on(store: Store) -> tuple[SequenceService, ReadCounting, FrozenClock]:
    clock = FrozenClock()
    counting = ReadCounting(store)
    service = SequenceService(counting, clock=clock)  # type: ignore[arg-type]
    for tenant in ("acme", "globex"):
        for i in range(10):
            await service.create(tenant, SequenceCreate(name=f"s{i}"))
            await service.next(tenant, f"s{i}")  # founds the counter (a read of its own)
    counting.reads.clear()
    return service, counting, clock


async def test_an_expired_definition_brings_its_tenants_due_ones_along(store: Store) -> None:
    service, counting, clock = await on(store)
    clock.advance(DEFINITION_TTL_SECONDS + 1)
    await service.next("acme", "s3")
    assert counting.reads == [[f"s{i}" for i in range(10)]], "one read, the tenant's ten"
    for i in range(10):  # fresh now, all of them; globex's were not touched
        await service.next("acme", f"s{i}")
    assert len(counting.reads) == 1
    await service.next("globex", "s0")
    assert counting.reads[1] == [f"s{i}" for i in range(10)]


async def test_definitions_not_due_within_half_a_lifetime_are_left_for_later(
    store: Store,
) -> None:
    service, counting, clock = await on(store)
    clock.advance(DEFINITION_TTL_SECONDS + 1)
    await service.next("acme", "s0")  # all ten refreshed at t
    clock.advance(DEFINITION_TTL_SECONDS * 0.4)
    await service.get("acme", "s1", fresh=True)  # s1 alone is now due later than the rest
    clock.advance(DEFINITION_TTL_SECONDS * 0.6 + 0.01)  # the nine expired, s1 not quite
    counting.reads.clear()
    await service.next("acme", "s0")
    # s1 expires within half a lifetime too, so it comes along.
    assert counting.reads == [[f"s{i}" for i in range(10)]]
    counting.reads.clear()
    clock.advance(DEFINITION_TTL_SECONDS * 0.6)
    await service.get("acme", "s2", fresh=True)  # s2: due 0.6 lifetimes after the rest
    clock.advance(DEFINITION_TTL_SECONDS * 0.4 + 0.01)  # the rest expired; s2 in 0.59
    counting.reads.clear()
    await service.next("acme", "s0")
    assert "s2" not in counting.reads[0] and len(counting.reads[0]) == 9


async def test_a_refresh_sees_what_another_process_changed_or_deleted(store: Store) -> None:
    service, counting, clock = await on(store)
    other = SequenceService(store, clock=clock)  # a second process on the same store
    await other.update("acme", "s5", SequencePatch(format="INV-{n}"))
    await other.delete("acme", "s7")
    assert (await service.get("acme", "s5")).template is None  # still cached
    clock.advance(DEFINITION_TTL_SECONDS + 1)
    await service.next("acme", "s0")
    assert len(counting.reads) == 1
    assert (await service.get("acme", "s5")).template is not None  # refreshed with s0
    assert (await service.next("acme", "s5")).first == 2
    with pytest.raises(SequenceNotFound):  # forgotten with the refresh, so read: gone
        await service.next("acme", "s7")
    assert counting.reads[1] == ["s7"]


async def test_a_refresh_does_not_undo_a_change_made_here_meanwhile(store: Store) -> None:
    service, counting, clock = await on(store)
    clock.advance(DEFINITION_TTL_SECONDS + 1)
    real = counting.inner.get_sequences
    read: list[dict[str, SequenceRecord]] = []

    async def then_a_patch(tenant: str, names: Names[str]) -> dict[str, SequenceRecord]:
        records = await real(tenant, names)  # what was stored when the read ran
        await service.update("acme", "s4", SequencePatch(max=50))  # lands after it
        read.append(records)
        return records

    counting.inner.get_sequences = then_a_patch  # type: ignore[method-assign]
    await service.next("acme", "s0")
    assert "s4" in read[0] and read[0]["s4"].config.get("max") is None
    counting.reads.clear()
    assert (await service.get("acme", "s4")).max == 50  # the patch's, from the cache
    assert counting.reads == []


async def test_one_read_brings_at_most_a_batch_of_definitions(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sequences.service.REFRESH_BATCH", 4)
    service, counting, clock = await on(store)
    clock.advance(DEFINITION_TTL_SECONDS + 1)
    await service.next("acme", "s9")
    assert len(counting.reads) == 1 and len(counting.reads[0]) == 4 and "s9" in counting.reads[0]


async def test_a_refresh_does_not_bring_back_a_definition_deleted_here_meanwhile(
    store: Store,
) -> None:
    service, counting, clock = await on(store)
    clock.advance(DEFINITION_TTL_SECONDS + 1)
    real = counting.inner.get_sequences

    async def then_changes(tenant: str, names: Names[str]) -> dict[str, SequenceRecord]:
        records = await real(tenant, names)  # what was stored when the read ran
        await service.delete("acme", "s6")
        await service.delete("acme", "s8")
        await service.create("acme", SequenceCreate(name="s8", start=500))
        return records

    counting.inner.get_sequences = then_changes  # type: ignore[method-assign]
    await service.next("acme", "s0")
    counting.reads.clear()
    with pytest.raises(SequenceNotFound):  # not served from the cache as if it existed
        await service.get("acme", "s6")
    assert (await service.get("acme", "s8")).start == 500  # the new one, not the read's
    assert (await service.next("acme", "s8")).first == 500
