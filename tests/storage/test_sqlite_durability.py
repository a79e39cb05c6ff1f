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


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def busy_for(attempts: int) -> Any:
    calls = {"n": 0}

    def call() -> str:
        calls["n"] += 1
        if calls["n"] <= attempts:
            exc = sqlite3.OperationalError("database is locked")
            exc.sqlite_errorcode = sqlite3.SQLITE_BUSY  # type: ignore[attr-defined]
            raise exc
        return "locked it"

    return call, calls


def test_the_writer_retries_a_held_lock_every_few_milliseconds_at_most() -> None:
    # SQLite's busy handler sleeps 1, 2, 5, 10, 15, 20, 25 ... ms between attempts; a
    # commit of another worker holds the lock about 1 ms, so a writer that lost the race
    # slept up to 10 ms for it (the p99 of two workers). The writer's own wait: 0.1 ms
    # doubling, never more than 2 ms.
    from storage.sqlite_connection import LONGEST_WAIT, patiently

    fake = FakeTime()
    call, calls = busy_for(8)
    assert patiently(call, 10_000, sleep=fake.sleep, clock=fake.clock) == "locked it"
    assert calls["n"] == 9
    assert fake.sleeps == pytest.approx(
        [0.0001, 0.0002, 0.0004, 0.0008, 0.0016, 0.002, 0.002, 0.002]
    )
    assert max(fake.sleeps) == LONGEST_WAIT


def test_the_writer_gives_up_once_the_busy_timeout_has_passed() -> None:
    from storage.sqlite_connection import patiently

    fake = FakeTime()
    call, calls = busy_for(10**6)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        patiently(call, 50, sleep=fake.sleep, clock=fake.clock)
    assert fake.now == pytest.approx(0.050)  # the whole budget, and not a sleep beyond it
    assert calls["n"] == len(fake.sleeps) + 1


def test_an_error_other_than_busy_is_not_retried() -> None:
    from storage.sqlite_connection import patiently

    fake = FakeTime()

    def broken() -> None:
        exc = sqlite3.OperationalError("disk I/O error")
        exc.sqlite_errorcode = sqlite3.SQLITE_IOERR  # type: ignore[attr-defined]
        raise exc

    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        patiently(broken, 10_000, sleep=fake.sleep, clock=fake.clock)
    assert fake.sleeps == []


async def test_a_write_waits_for_another_process_s_lock_then_commits(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    store = SQLiteStore(path, busy_timeout_ms=5_000)
    await store.start()
    try:
        await store.create_sequence("acme", record("inv"))
        # SQLite's own sleeping busy handler is off on the writer: it waits in patiently.
        assert (
            await store._writer.run(lambda c: c.execute("PRAGMA busy_timeout").fetchone()[0]) == 0
        )
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another worker, mid-commit
        waiting = asyncio.ensure_future(store.allocate("acme", "inv", "inv", SHAPE, 1))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        other.execute("COMMIT")
        other.close()
        assert await asyncio.wait_for(waiting, 5) == 1
    finally:
        await store.close()


async def test_a_lock_held_past_the_busy_timeout_is_a_store_failure(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    store = SQLiteStore(path, busy_timeout_ms=200)
    await store.start()
    other = sqlite3.connect(path, isolation_level=None)
    try:
        await store.create_sequence("acme", record("inv"))
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailable, match="locked"):
            await store.allocate("acme", "inv", "inv", SHAPE, 1)
        other.execute("ROLLBACK")
        assert await store.allocate("acme", "inv", "inv", SHAPE, 1) == 1  # nothing consumed
    finally:
        other.close()
        await store.close()


def test_the_busy_handler_stays_on_where_the_file_is_not_in_wal_mode(tmp_path: Path) -> None:
    # In rollback-journal mode a COMMIT waits for readers: only SQLite's handler covers it.
    from storage.sqlite_connection import wait_patiently

    conn = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        wait_patiently(conn)
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
        conn.execute("PRAGMA journal_mode = WAL")
        wait_patiently(conn)
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 0
    finally:
        conn.close()
