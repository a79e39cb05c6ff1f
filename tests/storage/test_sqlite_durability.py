"""SQLite keeps its durability settings, and a failed write never keeps the write lock."""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from storage import Counter, SequenceRecord, StoreUnavailable
from storage.base import IdempotencyRecord
from storage.sqlite import SQLiteStore

NOW = datetime(2026, 3, 1, tzinfo=UTC)
SHAPE = Counter(1, 1, 2**63 - 1)


def record(name: str) -> SequenceRecord:
    return SequenceRecord(name, {"start": 1, "step": 1}, NOW, NOW)


class FailingCommit(sqlite3.Connection):
    """A connection whose next COMMITs fail before reaching SQLite (disk full, I/O error)."""

    fail = 0

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
        if sql == "COMMIT" and FailingCommit.fail:
            FailingCommit.fail -= 1
            raise sqlite3.OperationalError("disk I/O error")
        return super().execute(sql, *args)


async def test_a_failed_commit_rolls_back_and_releases_the_write_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        sqlite3, "connect", functools.partial(sqlite3.connect, factory=FailingCommit)
    )
    path = tmp_path / "t.db"
    store, other = SQLiteStore(path, busy_timeout_ms=300), SQLiteStore(path, busy_timeout_ms=300)
    await store.start()
    await other.start()
    try:
        await store.create_sequence("acme", record("inv"))
        assert await store.allocate("acme", "inv", "inv", SHAPE, 2) == 2
        FailingCommit.fail = 1
        with pytest.raises(StoreUnavailable):
            await store.allocate("acme", "inv", "inv", SHAPE, 5)
        # Another process writes at once (no lock left held), and the increment is gone.
        await other.create_sequence("acme", record("other"))
        assert await other.allocate("acme", "inv", "inv", SHAPE, 1) == 3
        # This store's own connection is usable again (not stuck inside a transaction).
        assert await store.allocate("acme", "inv", "inv", SHAPE, 1) == 4
    finally:
        FailingCommit.fail = 0
        await store.close()
        await other.close()


async def test_the_writer_connection_is_wal_with_synchronous_full(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "t.db")
    await store.start()
    try:
        await store.create_sequence("acme", record("inv"))  # the writer has written
        mode, sync = await store._writer.run(
            lambda c: (
                c.execute("PRAGMA journal_mode").fetchone()[0],
                c.execute("PRAGMA synchronous").fetchone()[0],
            )
        )
        assert (mode, sync) == ("wal", 2)  # 2 = FULL: fsync on every commit
    finally:
        await store.close()


PROCESSES, KEYS = 3, 150


def _claim_all(path: str, barrier: Any, results: Any) -> None:
    """Claim the same idempotency keys as the other processes, at the same time."""

    async def run() -> list[str]:
        store = SQLiteStore(path)
        won: list[str] = []
        try:
            await store.start()
            barrier.wait(60)
            for i in range(KEYS):
                claim = IdempotencyRecord(f"k{i}", "f", NOW, NOW + timedelta(days=1), NOW)
                if await store.claim_idempotency("acme", claim) is None:
                    won.append(claim.key)
        except Exception as exc:  # reported to the test, which fails on it
            barrier.abort()  # nobody waits for a process that is out
            won.append(f"failed: {exc!r}")
        finally:
            await store.close()
        return won

    results.put(asyncio.run(run()))


async def test_processes_contending_for_one_file_queue_and_never_fail(tmp_path: Path) -> None:
    # A claim reads, then writes. Every write transaction takes the lock first (BEGIN
    # IMMEDIATE), so the processes queue; a deferred BEGIN would read a snapshot, and
    # when another process commits before it upgrades to a write, fail at once with
    # SQLITE_BUSY (busy_timeout does not apply there).
    path = tmp_path / "shared.db"
    store = SQLiteStore(path)
    await store.start()
    await store.close()
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(PROCESSES), ctx.Queue()
    procs = [
        ctx.Process(target=_claim_all, args=(str(path), barrier, results)) for _ in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    try:
        won = [await asyncio.to_thread(results.get, True, 120) for _ in procs]
    finally:
        for p in procs:
            p.join(30)
    failures = [w for each in won for w in each if w.startswith("failed")]
    assert not failures, failures[0]
    assert sorted(k for each in won for k in each) == sorted(f"k{i}" for i in range(KEYS))
