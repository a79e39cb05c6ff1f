"""SQLite: the threads that own the connections, and the write transaction.

The ``sqlite3`` module blocks, so all calls run on two dedicated threads, each with
its own connection: one for writes, one for reads (WAL lets reads proceed while a
commit is being fsynced). The event loop never waits on a commit. An operation is a
plain ``(conn) -> result`` (``Op``); ``write`` runs one inside ``BEGIN IMMEDIATE`` ...
``COMMIT`` on the writer's connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from storage.errors import StoreUnavailable

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], T]


class Connection:
    """One thread that owns one connection; callables run there in order."""

    def __init__(self, path: Path, busy_timeout_ms: int, name: str) -> None:
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._local = threading.local()
        self._closed = False

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self._path, isolation_level=None, check_same_thread=False, timeout=0
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            self._local.conn = conn
        return conn

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, lambda: fn(self._conn()))
        except sqlite3.OperationalError as exc:
            # "database is locked" past busy_timeout, disk I/O errors, a vanished file.
            raise StoreUnavailable(f"SQLite store unavailable: {exc}") from exc

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True

        def _close() -> None:
            conn = getattr(self._local, "conn", None)
            if conn is not None:
                conn.close()
                self._local.conn = None

        self._pool.submit(_close).result()
        self._pool.shutdown(wait=True)


def write(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    # IMMEDIATE takes the write lock up front (waiting up to busy_timeout): a deferred
    # BEGIN would read first and then fail with SQLITE_BUSY, unretried, whenever another
    # process committed in between.
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn)
        conn.execute("COMMIT")
    except BaseException:
        # Also when COMMIT itself failed (disk full, I/O error): SQLite then keeps the
        # transaction open, and with it the write lock every other process waits for.
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise
    return result
