"""SQLite: small writes that arrive together share a transaction; one that fails is
rolled back alone."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from storage.sqlite import SQLiteStore


async def test_concurrent_small_writes_share_commits_and_fail_alone(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "t.db")
    await store.start()
    commits = 0
    real = store._writer.run

    async def counting(fn):  # type: ignore[no-untyped-def]
        nonlocal commits
        commits += 1
        return await real(fn)

    store._writer.run = counting  # type: ignore[method-assign]
    await store._writer.run(lambda c: c.execute("CREATE TABLE t (k INTEGER PRIMARY KEY)"))
    commits = 0

    def insert(k: int):  # type: ignore[no-untyped-def]
        def op(conn: sqlite3.Connection) -> int:
            conn.execute("INSERT INTO t VALUES (?)", (k,))
            if k == 7:
                raise ValueError("seven")  # after its insert: that insert must go too
            return k

        return op

    results = await asyncio.gather(
        *(store._small.run(insert(k)) for k in range(50)), return_exceptions=True
    )
    assert next(r for r in results if not isinstance(r, int)).args == ("seven",)
    assert [r for r in results if isinstance(r, int)] == [k for k in range(50) if k != 7]
    assert commits < 10  # 50 writes, a handful of transactions
    rows = await store._reader.run(lambda c: c.execute("SELECT k FROM t").fetchall())
    assert sorted(k for (k,) in rows) == [k for k in range(50) if k != 7]
    with pytest.raises(ValueError):
        await store._small.run(insert(7))
    await store.close()
