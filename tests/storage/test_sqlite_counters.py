"""SQLite: a counter's increment and its read-back, inside the group's transaction."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from storage import sqlite_counters
from storage.base import Counter, Increment, SequenceRecord
from storage.sqlite import SQLiteStore

INCARNATION = "0123456789abcdef0123456789abcdef"
SHAPE = Counter(1, 1, 1_000, 0, INCARNATION)


async def _store(path: Path, counters: int) -> SQLiteStore:
    store = SQLiteStore(path)
    await store.start()
    now = datetime.now(UTC)
    for s in range(counters):
        await store.create_sequence(
            "acme", SequenceRecord(f"s{s}", {}, now, now, incarnation=INCARNATION)
        )
    return store


async def test_each_item_gets_its_own_ticks_when_two_processes_share_the_file(
    tmp_path: Path,
) -> None:
    # Two stores on one file (two `tally serve` workers): groups of both interleave,
    # and every item's result is the counter's value right after its own increment.
    first = await _store(tmp_path / "t.db", 5)
    second = SQLiteStore(tmp_path / "t.db")
    await second.start()
    keys = [f"s{s}" for s in range(5)]

    async def groups(store: SQLiteStore, n: int) -> list[tuple[str, int, int]]:
        taken = []
        for i in range(40):
            items = [Increment("acme", k, k, SHAPE, n, create=True) for k in keys[i % 2 :]]
            for item, ticks in zip(items, await store.allocate_many(items), strict=True):
                assert ticks is not None
                taken.append((item.key, ticks - n + 1, ticks))  # (key, first, last)
        return taken

    a, b = await asyncio.gather(groups(first, 1), groups(second, 3))
    for key in keys:
        spans = sorted((lo, hi) for k, lo, hi in a + b if k == key)
        # Contiguous from 1, never overlapping: 1..n taken exactly once.
        assert [lo for lo, _ in spans] == [1] + [hi + 1 for _, hi in spans[:-1]]
        counter = await first.read_counter("acme", key)
        assert counter is not None and counter.ticks == spans[-1][1]
    await first.close()
    await second.close()


async def test_a_miss_reads_nothing_back(tmp_path: Path) -> None:
    store = await _store(tmp_path / "t.db", 1)
    assert await store.allocate("acme", "s0", "s0", SHAPE, 990) == 990  # founded
    # Too few left, another shape, another incarnation: no increment, no result.
    assert await store.allocate("acme", "s0", "s0", SHAPE, 11, create=False) is None
    assert await store.allocate("acme", "s0", "s0", Counter(1, 2, 1_000), 1) is None
    assert await store.allocate("acme", "s0", "s0", Counter(1, 1, 1_000, 0, "x" * 32), 1) is None
    counter = await store.read_counter("acme", "s0")
    assert counter is not None and counter.ticks == 990
    assert await store.allocate("acme", "s0", "s0", SHAPE, 10, create=False) == 1_000
    await store.close()


def test_an_increment_outside_a_write_transaction_is_refused(tmp_path: Path) -> None:
    # In autocommit another process could increment between the UPDATE and the read
    # back, and this item would be handed that process's numbers.
    conn = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    item = Increment("acme", "s0", "s0", SHAPE, 1, create=True)
    with pytest.raises(RuntimeError, match="inside a write transaction"):
        sqlite_counters.increment(conn, item)
    conn.close()
