"""The usage recorder: counts in memory, adds them to the store, loses nothing it can keep."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from core.clock import FrozenClock
from storage import Store, StoreUnavailable, UsageRow
from storage.errors import UsagePartlyWritten
from usage.recorder import UsageRecorder
from usage.schemas import Granularity
from usage.service import UsageService

T0 = datetime(2026, 3, 1, 10, 59, 59, tzinfo=UTC)
T1 = datetime(2026, 3, 1, 11, 0, 0, tzinfo=UTC)
H10, H11, H12 = (datetime(2026, 3, 1, h, tzinfo=UTC) for h in (10, 11, 12))


async def stored(store: Store, tenant: str = "acme") -> list[UsageRow]:
    return await store.read_usage(tenant, sequence=None, since=H10, until=H12)


async def test_counts_add_up_per_tenant_sequence_and_utc_hour(store: Store) -> None:
    recorder = UsageRecorder(store)
    recorder.record("acme", "a", 1, T0)
    recorder.record("acme", "a", 10, T0)
    recorder.record("acme", "a", 5, T1)  # the next hour
    recorder.record("acme", "b", 2, T1.astimezone())  # any offset: bucketed in UTC
    recorder.record("globex", "a", 7, T0)
    assert await stored(store) == []  # nothing written until a flush
    await recorder.flush()
    assert await stored(store) == [
        UsageRow("a", H10, 2, 11),
        UsageRow("a", H11, 1, 5),
        UsageRow("b", H11, 1, 2),
    ]
    assert await stored(store, "globex") == [UsageRow("a", H10, 1, 7)]
    assert recorder.pending("acme") == []
    recorder.record("acme", "a", 3, T0)
    await recorder.flush()  # added to what is there, never overwriting it
    assert (await stored(store))[0] == UsageRow("a", H10, 3, 14)


class Flaky:
    """A real store whose next ``fail`` usage writes raise, as an unreachable one would."""

    def __init__(self, inner: Store, fail: int) -> None:
        self.inner, self.fail = inner, fail

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def add_usage(self, tenant: str, rows: list[UsageRow]) -> None:
        if self.fail:
            self.fail -= 1
            raise StoreUnavailable("injected")
        await self.inner.add_usage(tenant, rows)


async def test_what_a_failed_flush_could_not_write_is_kept_for_the_next(store: Store) -> None:
    flaky = Flaky(store, fail=1)
    recorder = UsageRecorder(flaky)  # type: ignore[arg-type]
    recorder.record("acme", "a", 4, T0)
    recorder.record("acme", "b", 1, T0)
    recorder.record("acme", "c", 2, T0)
    await recorder.flush()  # the first row fails: the flush stops, nothing is lost
    assert flaky.fail == 0 and await stored(store) == []
    assert recorder.flush_failures == 1
    recorder.record("acme", "a", 1, T0)  # counted meanwhile
    assert sorted(recorder.pending("acme"), key=lambda r: r.sequence) == [
        UsageRow("a", H10, 2, 5),
        UsageRow("b", H10, 1, 1),
        UsageRow("c", H10, 1, 2),
    ]
    await recorder.flush()
    assert await stored(store) == [
        UsageRow("a", H10, 2, 5),
        UsageRow("b", H10, 1, 1),
        UsageRow("c", H10, 1, 2),
    ]


async def test_it_flushes_every_interval_and_once_more_on_close(store: Store) -> None:
    recorder = UsageRecorder(store, interval=0.02)
    recorder.start()
    recorder.record("acme", "a", 1, T0)
    for _ in range(250):  # a periodic flush lands (give up after 5 s)
        if await stored(store):
            break
        await asyncio.sleep(0.02)
    assert await stored(store) == [UsageRow("a", H10, 1, 1)]
    recorder.record("acme", "a", 2, T0)
    await recorder.close()  # stops the loop and writes what is left
    assert await stored(store) == [UsageRow("a", H10, 2, 3)]


class PartlyWriting:
    """Counts ``add_usage`` calls; the first call writes only its first row, then fails
    (a store without multi-document transactions losing its connection midway)."""

    def __init__(self, inner: Store) -> None:
        self.inner, self.calls, self.broken = inner, 0, True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def add_usage(self, tenant: str, rows: list[UsageRow]) -> None:
        self.calls += 1
        if self.broken:
            self.broken = False
            await self.inner.add_usage(tenant, rows[:1])
            raise UsagePartlyWritten(1, "injected")
        await self.inner.add_usage(tenant, rows)


async def test_a_flush_is_one_store_call_per_tenant(store: Store) -> None:
    counting = PartlyWriting(store)
    counting.broken = False
    recorder = UsageRecorder(counting)  # type: ignore[arg-type]
    for tenant in ("acme", "globex", "initech"):
        for seq in "abcde":
            recorder.record(tenant, seq, 1, T0)
    await recorder.flush()
    assert counting.calls == 3
    assert len(await stored(store, "globex")) == 5


async def test_a_partly_written_flush_keeps_only_what_was_not_written(store: Store) -> None:
    partly = PartlyWriting(store)
    recorder = UsageRecorder(partly)  # type: ignore[arg-type]
    for seq, n in (("a", 4), ("b", 1), ("c", 2)):
        recorder.record("acme", seq, n, T0)
    recorder.record("globex", "a", 7, T0)
    await recorder.flush()  # acme's first row is written, then the store fails
    assert await stored(store) == [UsageRow("a", H10, 1, 4)]
    assert recorder.flush_failures == 1
    await recorder.flush()
    # Nothing counted twice, nothing lost.
    assert await stored(store) == [
        UsageRow("a", H10, 1, 4),
        UsageRow("b", H10, 1, 1),
        UsageRow("c", H10, 1, 2),
    ]
    assert await stored(store, "globex") == [UsageRow("a", H10, 1, 7)]


class Paused:
    """A real store whose next usage write pauses until ``go``, before it applies or
    after, as a slow store's would: a flush under way, its counts taken from memory."""

    def __init__(self, inner: Store, *, applied: bool) -> None:
        self.inner, self.applied = inner, applied
        self.reached, self.go = asyncio.Event(), asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def add_usage(self, tenant: str, rows: list[UsageRow]) -> None:
        if self.applied:
            await self.inner.add_usage(tenant, rows)
        self.reached.set()
        await self.go.wait()
        if not self.applied:
            await self.inner.add_usage(tenant, rows)


@pytest.mark.parametrize("applied", [False, True], ids=["before-the-write", "after-it"])
async def test_a_read_during_a_flush_counts_each_number_once(store: Store, applied: bool) -> None:
    paused = Paused(store, applied=applied)
    recorder = UsageRecorder(paused)  # type: ignore[arg-type]
    clock = FrozenClock(datetime(2026, 3, 1, 10, 30, tzinfo=UTC))
    usage = UsageService(paused, recorder, clock=clock)  # type: ignore[arg-type]
    recorder.record("acme", "a", 7, T0)
    flush = asyncio.create_task(recorder.flush())
    await paused.reached.wait()  # the counts left memory; the store has them, or not yet
    read = asyncio.create_task(usage.series("acme", granularity=Granularity.hour))
    await asyncio.sleep(0.05)
    paused.go.set()
    await flush
    series = await asyncio.wait_for(read, 5)
    assert (series.requests, series.numbers) == (1, 7)
    assert (await usage.series("acme", granularity=Granularity.hour)).numbers == 7
