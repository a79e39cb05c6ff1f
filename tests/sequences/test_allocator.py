"""The allocation engine: coalescing in strict mode, leased blocks in cached mode."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from core.clock import FrozenClock
from core.errors import Unavailable
from core.settings import Settings
from sequences.allocator import BlockPolicy
from sequences.errors import SequenceExhausted
from sequences.models import Allocation
from sequences.schemas import SequenceCreate
from sequences.service import SequenceService
from storage import Counter, Increment, Store, StoreUnavailable
from storage.sqlite import SQLiteStore
from tests.conftest import app_token, bearer


class CountingStore:
    """Wraps a real store: counts increments (``allocate`` calls and the items of
    ``allocate_many`` groups) and groups, and can fail the next calls."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.allocate_calls = 0
        self.group_calls = 0
        self.largest_group = 0
        self.fail_next = 0
        self.error: BaseException = StoreUnavailable("injected store failure")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def allocate(
        self, tenant: str, key: str, seq: str, shape: Counter, n: int, *, create: bool = True
    ) -> int | None:
        self.allocate_calls += 1
        if self.fail_next:
            self.fail_next -= 1
            await asyncio.sleep(0.001)  # the others queue up meanwhile
            raise self.error
        return await self.inner.allocate(tenant, key, seq, shape, n, create=create)

    async def allocate_many(self, items: Sequence[Increment]) -> list[int | None]:
        self.group_calls += 1
        self.allocate_calls += len(items)
        self.largest_group = max(self.largest_group, len(items))
        if self.fail_next:
            self.fail_next -= 1
            await asyncio.sleep(0.001)  # the others queue up meanwhile
            raise self.error
        return await self.inner.allocate_many(items)


async def service_on(store: Store, **kwargs: Any) -> tuple[SequenceService, CountingStore]:
    counting = CountingStore(store)
    service = SequenceService(counting, clock=kwargs.pop("clock", FrozenClock()), **kwargs)  # type: ignore[arg-type]
    return service, counting


async def take_all(service: SequenceService, counts: list[int], name: str = "orders") -> list[Any]:
    results: list[Allocation | BaseException] = await asyncio.gather(
        *(service.next("acme", name, n) for n in counts), return_exceptions=True
    )
    return results


# -- strict: coalescing ------------------------------------------------------------------
async def test_1000_concurrent_requests_get_1_to_1000_in_arrival_order_in_few_store_calls(
    store: Store,
) -> None:
    service, counting = await service_on(store)
    await service.create("acme", SequenceCreate(name="orders"))
    results = await take_all(service, [1] * 1000)
    assert [r.first for r in results] == list(range(1, 1001))
    assert all(r.first == r.last and r.count == 1 for r in results)
    assert counting.allocate_calls <= 20, "requests were not coalesced"


async def test_coalesced_batches_get_contiguous_slices_in_arrival_order(store: Store) -> None:
    service, counting = await service_on(store)
    await service.create("acme", SequenceCreate(name="orders", start=100, step=3))
    counts = [random.Random(7).randint(1, 9) for _ in range(300)]
    results = await take_all(service, counts)
    expected_first = 100
    for n, r in zip(counts, results, strict=True):
        assert (r.first, r.last, r.count) == (expected_first, expected_first + (n - 1) * 3, n)
        expected_first = r.last + 3
    assert counting.allocate_calls < 30


async def test_a_failing_increment_fails_every_waiter_and_consumes_nothing(
    store: Store,
) -> None:
    service, counting = await service_on(store)
    await service.create("acme", SequenceCreate(name="orders"))
    for error in (StoreUnavailable("down"), RuntimeError("driver bug")):
        counting.error, counting.fail_next, counting.allocate_calls = error, 1, 0
        results = await take_all(service, [1, 2, 3] * 20)
        assert all(isinstance(r, Unavailable) for r in results), results
        assert counting.allocate_calls == 1, "all 60 waiters should have shared one flight"
    results = await take_all(service, [1])
    assert results[0].first == 1, "the failed flights consumed numbers"


async def test_every_waiter_gets_503_problem_json_when_the_store_fails(
    settings: Settings, tmp_path: Any
) -> None:
    counting = CountingStore(SQLiteStore(tmp_path / "fail.db"))
    await counting.inner.start()
    app = create_app(settings, store=counting, clock=FrozenClock())  # type: ignore[arg-type]
    async with app.router.lifespan_context(app):
        token = app_token(app, ttl=60)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            h = bearer(token)
            await client.post("/v1/sequences", json={"name": "orders"}, headers=h)
            counting.fail_next = 1
            rs = await asyncio.gather(
                *(client.post("/v1/sequences/orders/next", headers=h) for _ in range(20))
            )
            assert {r.status_code for r in rs} == {503}
            assert all(r.headers["content-type"] == "application/problem+json" for r in rs)
            assert all("retry-after" in r.headers for r in rs)
            r = await client.post("/v1/sequences/orders/next", headers=h)
            assert r.json()["value"] == 1
    await counting.inner.close()


async def test_a_coalesced_batch_past_max_serves_each_request_as_if_alone(
    store: Store,
) -> None:
    service, _ = await service_on(store)
    await service.create("acme", SequenceCreate(name="orders", max=10))
    results = await take_all(service, [3, 4, 5, 2])
    assert (results[0].first, results[0].last) == (1, 3)
    assert (results[1].first, results[1].last) == (4, 7)
    assert isinstance(results[2], SequenceExhausted)  # 5 would not fit alone either
    assert (results[3].first, results[3].last) == (8, 9)  # 2 still fits, so it gets them


async def test_a_coalesced_batch_on_a_cycling_sequence_wraps_like_single_requests(
    store: Store,
) -> None:
    service, _ = await service_on(store)
    await service.create("acme", SequenceCreate(name="orders", max=5, cycle=True))
    await take_all(service, [3])
    results = await take_all(service, [1, 1, 1, 2])
    assert [(r.first, r.last) for r in results] == [(4, 4), (5, 5), (1, 1), (2, 3)]


async def test_tenants_and_periods_never_share_a_flight(store: Store) -> None:
    clock = FrozenClock()
    service, _ = await service_on(store, clock=clock)
    for tenant in ("acme", "globex"):
        await service.create(tenant, SequenceCreate(name="orders", reset="daily"))
    calls = [service.next(t, "orders") for _ in range(50) for t in ("acme", "globex")]
    first = await asyncio.gather(*calls)
    assert sorted(a.first for a in first) == sorted([*range(1, 51)] * 2)
    clock.advance(86_400)
    nxt = await asyncio.gather(*(service.next("acme", "orders") for _ in range(5)))
    assert [a.first for a in nxt] == [1, 2, 3, 4, 5]
    assert {a.period for a in nxt} != {a.period for a in first}


async def test_an_expired_definition_is_read_once_and_callers_keep_their_order(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each caller reading the store itself, with reads finishing in any order, reached
    # the counter in that order: [1, 2, 4, 5, 3] on the Bigtable emulator under load.
    clock = FrozenClock()
    service, _ = await service_on(store, clock=clock)
    await service.create("acme", SequenceCreate(name="orders"))
    await service.next("acme", "orders")  # the counter exists: no founding read below
    reads = 0
    real = store.get_sequence

    async def jittery_read(tenant: str, name: str) -> Any:
        nonlocal reads
        reads += 1
        await asyncio.sleep(random.random() / 50)
        return await real(tenant, name)

    monkeypatch.setattr(store, "get_sequence", jittery_read)
    clock.advance(60)  # past the definition cache's lifetime
    got = await asyncio.gather(*(service.next("acme", "orders") for _ in range(20)))
    assert [a.first for a in got] == list(range(2, 22))
    assert reads == 1


async def test_without_coalescing_each_request_is_its_own_increment(store: Store) -> None:
    service, counting = await service_on(store, coalesce=False)
    await service.create("acme", SequenceCreate(name="orders"))
    results = await take_all(service, [1] * 50)
    assert sorted(r.first for r in results) == list(range(1, 51))
    assert counting.allocate_calls >= 50


# -- cached: leased blocks ---------------------------------------------------------------
POLICY = BlockPolicy(min_block=10, max_block=640, target_seconds=1.0)


async def test_cached_mode_serves_numbers_from_leased_blocks(store: Store) -> None:
    service, counting = await service_on(store, block_policy=POLICY)
    await service.create("acme", SequenceCreate(name="orders", mode="cached"))
    values = [(await service.next("acme", "orders")).first for _ in range(500)]
    assert values == list(range(1, 501))  # one process, so in order and without gaps
    assert counting.allocate_calls < 20


async def test_block_size_adapts_up_under_load_and_back_down_when_idle(store: Store) -> None:
    clock = FrozenClock()
    service, _ = await service_on(store, block_policy=POLICY, clock=clock)
    await service.create("acme", SequenceCreate(name="orders", mode="cached"))
    size = service.allocator.block_size
    await service.next("acme", "orders")
    assert size("acme", "orders") == 10
    # Under load: blocks run out in no time (the clock does not move), so they double.
    for _ in range(1500):
        await service.next("acme", "orders")
    assert size("acme", "orders") == 640
    # Idle: a few requests per block-lifetime; each block lasts far past the target.
    seen = []
    for _ in range(2600):
        clock.advance(0.5)
        await service.next("acme", "orders")
        seen.append(size("acme", "orders"))
    assert seen[-1] == 10 and max(seen) == 640
    assert seen == sorted(seen, reverse=True), "it should only shrink while idle"


async def test_cached_batch_bigger_than_the_buffer_is_one_contiguous_range(
    store: Store,
) -> None:
    service, _ = await service_on(store, block_policy=POLICY)
    await service.create("acme", SequenceCreate(name="orders", mode="cached"))
    singles = [(await service.next("acme", "orders")).first for _ in range(5)]
    big = await service.next("acme", "orders", 1000)
    assert big.last - big.first == 999
    after = [(await service.next("acme", "orders")).first for _ in range(20)]
    taken = [*singles, *range(big.first, big.last + 1), *after]
    assert len(set(taken)) == len(taken)


async def test_cached_mode_exhausts_at_max_without_losing_the_tail(store: Store) -> None:
    service, _ = await service_on(store, block_policy=POLICY)
    await service.create("acme", SequenceCreate(name="orders", mode="cached", max=25))
    values = [(await service.next("acme", "orders")).first for _ in range(25)]
    assert values == list(range(1, 26))
    with pytest.raises(SequenceExhausted):
        await service.next("acme", "orders")


async def test_cached_mode_on_a_cycling_sequence_starts_again(store: Store) -> None:
    service, _ = await service_on(store, block_policy=POLICY)
    await service.create("acme", SequenceCreate(name="orders", mode="cached", max=25, cycle=True))
    values = [(await service.next("acme", "orders")).first for _ in range(30)]
    assert values == [*range(1, 26), *range(1, 6)]


async def test_cached_processes_and_restarts_never_repeat_a_number(store: Store) -> None:
    a, _ = await service_on(store, block_policy=POLICY)
    await a.create("acme", SequenceCreate(name="orders", mode="cached"))
    b, _ = await service_on(store, block_policy=POLICY)
    taken: list[int] = []
    for _ in range(300):
        taken.append((await a.next("acme", "orders")).first)
        taken.append((await b.next("acme", "orders")).first)
    restarted, _ = await service_on(store, block_policy=POLICY)  # a's leases are lost: a gap
    taken += [(await restarted.next("acme", "orders")).first for _ in range(300)]
    assert len(set(taken)) == len(taken)


async def test_a_changed_definition_drops_the_leased_blocks(store: Store) -> None:
    from dataclasses import replace

    service, _ = await service_on(store, block_policy=POLICY)
    seq = await service.create("acme", SequenceCreate(name="orders", mode="cached"))
    await service.next("acme", "orders")
    assert service.allocator.block_size("acme", "orders") is not None
    service._remember("acme", replace(seq, revision=seq.revision + 1))
    assert service.allocator.block_size("acme", "orders") is None
    taken = [(await service.next("acme", "orders")).first for _ in range(5)]
    assert min(taken) > 1 and len(set(taken)) == 5  # a new block: a gap, no repeat


class SpawnOnIncrement(CountingStore):
    """Starts ``make()`` twice while an increment completes, before its task finishes.

    Those requests then run in the same event-loop turn as the finished block fetch,
    before its done callbacks: what an HTTP server does when requests arrive together
    with the store's reply.
    """

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.make: Any = None
        self.spawned: list[asyncio.Task[Allocation]] = []

    async def allocate(
        self, tenant: str, key: str, seq: str, shape: Counter, n: int, *, create: bool = True
    ) -> int | None:
        ticks = await super().allocate(tenant, key, seq, shape, n, create=create)
        if self.make is not None:
            make, self.make = self.make, None
            self.spawned = [asyncio.create_task(make()) for _ in range(2)]
        return ticks


def test_requests_racing_a_finished_block_fetch_do_not_hang_the_event_loop(
    tmp_path: Path,
) -> None:
    # Regression: the second request used to spin on the finished fetch forever, with
    # the event loop blocked (the whole server hung). Run the loop in a thread so a hang
    # fails this test instead of the suite.
    result: dict[str, Any] = {}

    async def scenario() -> None:
        store = SQLiteStore(tmp_path / "tally.db")
        await store.start()
        try:
            spawner = SpawnOnIncrement(store)
            policy = BlockPolicy(min_block=10, max_block=10)
            # Without group commit the increment's reply reaches the fetch in the very
            # turn the requests are spawned in, which is the race this test replays.
            service = SequenceService(
                spawner,  # type: ignore[arg-type]
                clock=FrozenClock(),
                block_policy=policy,
                group_commit=False,
            )
            await service.create("acme", SequenceCreate(name="orders", mode="cached"))
            await service.next("acme", "orders", 10)  # the first block, used up whole
            spawner.make = lambda: service.next("acme", "orders", 10)
            waiting = await service.next("acme", "orders", 10)
            racing = await asyncio.gather(*spawner.spawned)
            result["taken"] = [(a.first, a.last) for a in [waiting, *racing]]
        finally:
            await store.close()

    thread = threading.Thread(target=lambda: asyncio.run(scenario()), daemon=True)
    thread.start()
    thread.join(timeout=20)
    assert not thread.is_alive(), "the event loop is stuck in the cached-mode allocator"
    assert sorted(result["taken"]) == [(11, 20), (21, 30), (31, 40)]


# -- shutdown ----------------------------------------------------------------------------
class StalledStore(CountingStore):
    """Allocations that wait until released (a store that stopped answering)."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.release = asyncio.Event()

    async def allocate(
        self, tenant: str, key: str, seq: str, shape: Counter, n: int, *, create: bool = True
    ) -> int | None:
        await self.release.wait()
        return await super().allocate(tenant, key, seq, shape, n, create=create)

    async def allocate_many(self, items: Sequence[Increment]) -> list[int | None]:
        await self.release.wait()
        return await super().allocate_many(items)


@pytest.mark.parametrize("drain_started", [False, True])
async def test_close_answers_every_queued_waiter_and_drops_its_lanes(
    store: Store, drain_started: bool
) -> None:
    stalled = StalledStore(store)
    service = SequenceService(stalled, clock=FrozenClock())  # type: ignore[arg-type]
    seq = await service.create("acme", SequenceCreate(name="orders"))
    waiters = [
        asyncio.create_task(service.allocator.allocate("acme", seq, "orders", 1)) for _ in range(5)
    ]
    await asyncio.sleep(0)  # every waiter queued; the lane's drain task not yet run
    if drain_started:
        await asyncio.sleep(0.01)  # the drain is now stuck in the store call
        waiters.append(asyncio.create_task(service.allocator.allocate("acme", seq, "orders", 1)))
        await asyncio.sleep(0)
    await service.allocator.close()
    done, pending = await asyncio.wait(waiters, timeout=5)
    assert not pending, "close() left waiters without an answer"
    assert all(isinstance(t.exception(), Unavailable) for t in done)
    assert service.allocator._lanes == {}
    with pytest.raises(Unavailable):  # after close, an answer at once, never a hang
        await asyncio.wait_for(service.allocator.allocate("acme", seq, "orders", 1), 5)
    stalled.release.set()


async def test_a_lone_request_stuck_at_the_store_is_answered_when_the_group_closes(
    store: Store,
) -> None:
    stalled = StalledStore(store)
    service = SequenceService(stalled, clock=FrozenClock())  # type: ignore[arg-type]
    seq = await service.create("acme", SequenceCreate(name="orders"))
    alone = asyncio.create_task(service.allocator.allocate("acme", seq, "orders", 1))
    await asyncio.sleep(0.01)  # it flies on its own task, stuck in the store call
    await service.allocator.close()
    await service.group.close()  # what the app's shutdown does next
    _, pending = await asyncio.wait([alone], timeout=5)
    assert not pending, "shutdown left a lone request without an answer"
    assert isinstance(alone.exception(), Unavailable)
    assert service.allocator._lanes == {}
    stalled.release.set()


# -- strict: a lone request flies itself ---------------------------------------------------
async def test_requests_for_many_counters_fly_on_their_own_tasks_in_one_group(
    store: Store,
) -> None:
    stalled = StalledStore(store)
    service = SequenceService(stalled, clock=FrozenClock())  # type: ignore[arg-type]
    names = [f"s{i}" for i in range(50)]
    seqs = [await service.create("acme", SequenceCreate(name=n)) for n in names]
    stalled.release.set()
    for s in seqs:  # founded: from here on one increment a flight
        await service.allocator.allocate("acme", s, s.name, 1)
    stalled.release.clear()
    stalled.group_calls = 0
    calls = [
        asyncio.create_task(service.allocator.allocate("acme", s, s.name, 1))
        for s in seqs
        for _ in range(2)
    ]
    await asyncio.sleep(0.01)  # all at the stalled store
    # Each counter's first request flies itself; its second queued in the same turn,
    # so a drain task flies the two together. No request was left without a flight.
    assert len(service.allocator._tasks) == 50
    stalled.release.set()
    results = await asyncio.gather(*calls)
    assert sorted(results) == sorted([(2, 2), (3, 3)] * 50)
    assert stalled.group_calls == 1, "the 50 counters' increments were not one group"
    assert service.allocator._lanes == {}

    # One request per counter: each flies on its own request's task, none is spawned.
    stalled.release.clear()
    calls = [asyncio.create_task(service.allocator.allocate("acme", s, s.name, 1)) for s in seqs]
    await asyncio.sleep(0.01)
    assert service.allocator._tasks == set()
    stalled.release.set()
    assert sorted(await asyncio.gather(*calls)) == [(4, 4)] * 50
    assert service.allocator._lanes == {}


async def test_a_lone_request_cancelled_in_flight_leaves_the_later_ones_their_numbers(
    store: Store,
) -> None:
    stalled = StalledStore(store)
    service = SequenceService(stalled, clock=FrozenClock())  # type: ignore[arg-type]
    seq = await service.create("acme", SequenceCreate(name="orders"))
    stalled.release.set()
    assert await service.allocator.allocate("acme", seq, "orders", 1) == (1, 1)  # founded
    stalled.release.clear()
    lone = asyncio.create_task(service.allocator.allocate("acme", seq, "orders", 1))
    await asyncio.sleep(0.01)  # flying alone, stuck in the store call
    later = [
        asyncio.create_task(service.allocator.allocate("acme", seq, "orders", n)) for n in (1, 2)
    ]
    await asyncio.sleep(0)  # queued behind it
    lone.cancel()
    await asyncio.sleep(0)
    stalled.release.set()
    # The cancelled one's number (the store applied it) is a gap; the later ones fly
    # after it, in their order, and are not failed by its cancellation.
    assert await asyncio.wait_for(asyncio.gather(*later), 5) == [(3, 3), (4, 5)]
    assert lone.cancelled()
    assert service.allocator._lanes == {}


async def test_a_request_cancelled_before_its_flight_leaves_the_others_of_its_turn_theirs(
    store: Store,
) -> None:
    service, counting = await service_on(store)
    seq = await service.create("acme", SequenceCreate(name="orders"))
    assert await service.allocator.allocate("acme", seq, "orders", 1) == (1, 1)  # founded
    counting.allocate_calls = 0
    first = asyncio.create_task(service.allocator.allocate("acme", seq, "orders", 5))
    others = [
        asyncio.create_task(service.allocator.allocate("acme", seq, "orders", 1)) for _ in range(3)
    ]
    await asyncio.sleep(0)  # the first opened the lane; the others queued in its turn
    first.cancel()
    assert await asyncio.wait_for(asyncio.gather(*others), 5) == [(2, 2), (3, 3), (4, 4)]
    assert first.cancelled()
    assert counting.allocate_calls == 1, "the others should have shared one flight"
    assert service.allocator._lanes == {}


class _LateCounterRead:
    """A store whose ``armed``-th counter read answers only once ``go`` is set."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.armed: int | None = None
        self.reached = asyncio.Event()
        self.go = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def read_counter(self, *args: Any, **kwargs: Any) -> Counter | None:
        result: Counter | None = await self.inner.read_counter(*args, **kwargs)
        if self.armed is not None:
            self.armed -= 1
            if self.armed == 0:
                self.armed = None
                self.reached.set()
                await self.go.wait()
        return result


async def test_a_block_fetch_near_max_that_another_take_beats_tries_again_for_what_is_left(
    tmp_path: Path,
) -> None:
    """Near max the fetch reads what is left and takes that; a batch that takes some of
    it first must not make the request waiting on the fetch a 409 while numbers remain."""
    store = SQLiteStore(tmp_path / "t.db")
    await store.start()
    late = _LateCounterRead(store)
    policy = BlockPolicy(min_block=10, max_block=10)
    svc = SequenceService(late, clock=FrozenClock(), block_policy=policy)  # type: ignore[arg-type]
    try:
        await svc.create("acme", SequenceCreate(name="c", mode="cached", max=15))
        late.armed = 3  # the founding miss, the prefetch's miss, then its read of what is left
        first = await svc.next("acme", "c", 9)  # the block 1..10; the prefetch of 10 starts
        assert (first.first, first.last) == (1, 9)
        await late.reached.wait()  # 10 do not fit below 15: the fetch reads what is left (5)
        batch = await svc.next("acme", "c", 3)  # more than the block's 1 left: taken directly
        assert (batch.first, batch.last) == (11, 13)
        assert (await svc.next("acme", "c")).first == 10  # the block's last number
        waiting = asyncio.create_task(svc.next("acme", "c"))  # waits on the prefetch
        await asyncio.sleep(0.01)
        late.go.set()
        got = [(await waiting).first, (await svc.next("acme", "c")).first]
        assert got == [14, 15]
        with pytest.raises(SequenceExhausted):
            await svc.next("acme", "c")
    finally:
        await store.close()
