"""PATCH changes the counter and the definition together or not at all."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from core.clock import FrozenClock
from core.errors import Unavailable
from sequences.errors import SequenceExhausted
from sequences.schemas import SequenceCreate, SequencePatch
from sequences.service import DEFINITION_TTL_SECONDS, SequenceService
from storage import Store, StoreUnavailable
from tests.sequences.support import HeldOnce


class FailingWrites:
    """A store whose next definition writes (and, optionally, counter writes) fail."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.fail_definition = 0
        self.fail_counter = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def update_sequence(self, *args: Any, **kwargs: Any) -> bool:
        if self.fail_definition:
            self.fail_definition -= 1
            raise StoreUnavailable("injected definition-write failure")
        return await self.inner.update_sequence(*args, **kwargs)

    async def replace_counter(self, *args: Any, **kwargs: Any) -> bool:
        if self.fail_counter:
            self.fail_counter -= 1
            raise StoreUnavailable("injected counter-write failure")
        return await self.inner.replace_counter(*args, **kwargs)


async def exhausted_at_3(store: Store) -> tuple[SequenceService, FailingWrites]:
    failing = FailingWrites(store)
    service = SequenceService(failing, clock=FrozenClock())  # type: ignore[arg-type]
    await service.create("acme", SequenceCreate(name="inv", max=3))
    assert [(await service.next("acme", "inv")).first for _ in range(3)] == [1, 2, 3]
    return service, failing


async def test_a_patch_whose_definition_write_fails_changes_nothing(store: Store) -> None:
    service, failing = await exhausted_at_3(store)
    counter_before = await store.read_counter("acme", "inv")
    failing.fail_definition = 1
    with pytest.raises(StoreUnavailable):
        await service.update("acme", "inv", SequencePatch(max=1000))
    assert await store.read_counter("acme", "inv") == counter_before
    peek = await service.describe("acme", "inv")
    assert (peek.max, peek.last, peek.next) == (3, 3, None)
    with pytest.raises(SequenceExhausted):
        await service.next("acme", "inv")
    # The same PATCH, retried once the store answers, applies whole.
    await service.update("acme", "inv", SequencePatch(max=1000))
    assert (await service.next("acme", "inv")).first == 4


async def test_a_counter_the_failed_patch_could_not_undo_is_never_used(store: Store) -> None:
    # Definition write and then the undo fail: the counter is left rebased to max=1000
    # while the definition says 3. Allocations refuse it (503), never answer 4, 5, 6.
    service, failing = await exhausted_at_3(store)
    failing.fail_definition = 1
    real_replace = failing.inner.replace_counter
    calls = 0

    async def rebase_then_fail(*args: Any, **kwargs: Any) -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:
            return await real_replace(*args, **kwargs)  # the rebase itself
        raise StoreUnavailable("injected undo failure")

    failing.replace_counter = rebase_then_fail  # type: ignore[method-assign]
    with pytest.raises(StoreUnavailable):
        await service.update("acme", "inv", SequencePatch(max=1000))
    failing.replace_counter = real_replace  # type: ignore[method-assign]
    fresh = SequenceService(failing, clock=FrozenClock())  # type: ignore[arg-type]  # another process
    for svc in (service, fresh):
        with pytest.raises(Unavailable):
            await svc.next("acme", "inv")
    # Retrying the PATCH repairs it: the counter follows the definition again.
    await service.update("acme", "inv", SequencePatch(max=1000))
    assert (await fresh.next("acme", "inv")).first == 4


@pytest.mark.parametrize(("first_max", "issued", "new_max"), [(3, 3, 1000), (100, 2, 5)])
async def test_the_same_patch_twice_at_once_leaves_counter_and_definition_agreeing(
    store: Store, first_max: int, issued: int, new_max: int
) -> None:
    """A client retrying a PATCH, or two admins: the first rebases the counter and is
    held before its definition write; the second finds the counter already rebased,
    rebases nothing and wins the write. The first then loses the revision race, and
    must not put back the counter that the winner's definition counts on."""
    paused = HeldOnce(store, "update_sequence")
    first = SequenceService(paused, clock=FrozenClock())  # type: ignore[arg-type]
    second = SequenceService(store, clock=FrozenClock())  # another process
    await second.create("acme", SequenceCreate(name="inv", max=first_max))
    assert [(await second.next("acme", "inv")).first for _ in range(issued)] == list(
        range(1, issued + 1)
    )
    go = paused.hold()
    held = asyncio.create_task(first.update("acme", "inv", SequencePatch(max=new_max)))
    await paused.reached.wait()
    assert (await second.update("acme", "inv", SequencePatch(max=new_max))).max == new_max
    go.set()
    assert (await held).max == new_max
    # Both processes issue on from the last number, and never past the new max.
    got = []
    for svc in (first, second) * 4:
        try:
            got.append((await svc.next("acme", "inv")).first)
        except SequenceExhausted:
            break
    assert got == list(range(issued + 1, min(new_max, issued + 8) + 1))


async def test_a_period_that_begins_during_a_patch_follows_the_new_max(store: Store) -> None:
    """A daily sequence's PATCH rebases today's counter, and midnight passes before its
    definition write: a next in between founds tomorrow's counter from the definition
    stored then (the old max). Once the PATCH is done, that counter follows the new max
    in every process: no number past it, and no 503 for the rest of the day."""
    clock = FrozenClock(datetime(2026, 1, 1, 23, 59, 59, 990000, tzinfo=UTC))
    paused = HeldOnce(store, "update_sequence")
    admin = SequenceService(paused, clock=clock)  # type: ignore[arg-type]
    other = SequenceService(store, clock=clock)  # another process, allocating
    await admin.create("acme", SequenceCreate(name="inv", reset="daily", max=100))
    assert (await other.next("acme", "inv")).first == 1
    go = paused.hold()
    patch = asyncio.create_task(admin.update("acme", "inv", SequencePatch(max=5)))
    await paused.reached.wait()  # today's counter rebased, the definition not yet written
    clock.advance(0.02)  # midnight
    early = await other.next("acme", "inv")  # founds 2026-01-02's counter: old max then
    assert (early.first, early.period) == (1, "2026-01-02")
    go.set()
    assert (await patch).max == 5
    clock.advance(DEFINITION_TTL_SECONDS + 1)  # every cached definition is fresh again
    got = []
    for svc in (admin, other) * 4:
        try:
            got.append((await svc.next("acme", "inv")).first)
        except SequenceExhausted:
            got.append(None)
    assert got == [2, 3, 4, 5, None, None, None, None]
