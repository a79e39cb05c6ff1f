"""SQLite: the threads that own the connections, and the write transaction.

The ``sqlite3`` module blocks, so all calls run on two dedicated threads, each with
its own connection: one for writes, one for reads (WAL lets reads proceed while a
commit is being fsynced). The event loop never waits on a commit. An operation is a
plain ``(conn) -> result`` (``Op``); ``write`` runs one inside ``BEGIN IMMEDIATE`` ...
``COMMIT`` on the writer's connection.

On a WAL file (``wait_patiently``), the writer waits for the write lock itself
(``patiently``) instead of through SQLite's busy handler. That handler sleeps 1, 2, 5,
10, 15, 20, 25 ... ms between attempts, while another process (a second ``tally serve``
worker on the same file) holds the lock for one group commit, about a millisecond. So
a writer that lost the race once slept 5 or 10 ms at a time. With two workers
(``python -m bench.run --workers 2``, four alternating runs), strict ``next`` had a p99
of 25-44 ms and spread 75-205 ms; retrying after 0.1 ms, doubling up to 2 ms, brought
them to 8-11 and 13-17 ms, and spread went from 8,241-8,851 to 10,261-10,765 req/s.
The same ``busy_timeout`` still bounds the wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from storage.errors import StoreUnavailable

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], T]


# How long the writer sleeps between attempts at a lock another process holds: doubling
# from the first to the longest, until the busy timeout has passed.
FIRST_WAIT, LONGEST_WAIT = 0.0001, 0.002


def patiently(
    call: Callable[[], T],
    budget_ms: int,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """``call()``, retried while SQLite answers SQLITE_BUSY (another process holds the
    lock), for up to ``budget_ms``; then the last "database is locked" is raised."""
    deadline = clock() + budget_ms / 1000
    wait = FIRST_WAIT
    while True:
        try:
            return call()
        except sqlite3.OperationalError as exc:
            # The primary code: SQLITE_BUSY_RECOVERY, _SNAPSHOT, _TIMEOUT are busy too.
            left = deadline - clock()
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or left <= 0:
                raise
        sleep(min(wait, left))
        wait = min(wait * 2, LONGEST_WAIT)


def wait_patiently(conn: sqlite3.Connection) -> None:
    """Turn SQLite's busy handler off on the writer's ``conn`` once its file is in WAL
    mode: its waits for the write lock then all go through ``patiently`` (``write``).
    In WAL mode nothing else the writer runs waits for a lock: holding the write lock,
    its statements and COMMIT never do, and the checkpoint after a commit is passive.
    In any other journal mode (a file system without WAL), COMMIT waits for readers:
    the handler stays on."""
    if conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
        conn.execute("PRAGMA busy_timeout = 0")


_BROKEN_FILE = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def _unavailable(exc: sqlite3.DatabaseError) -> bool:
    if isinstance(exc, sqlite3.OperationalError):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    return type(exc) is sqlite3.DatabaseError and code is not None and code & 0xFF in _BROKEN_FILE


class Connection:
    """One thread that owns one connection; callables run there in order."""

    def __init__(self, path: Path, busy_timeout_ms: int, name: str) -> None:
        self._path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._local = threading.local()
        self._closed = False

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self._path, isolation_level=None, check_same_thread=False, timeout=0
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            self._local.conn = conn
        return conn

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, lambda: fn(self._conn()))
        except sqlite3.DatabaseError as exc:
            # "database is locked" past busy_timeout, disk I/O errors, a vanished file;
            # a file that is not (or no longer) a database. Not IntegrityError and the
            # like: those are this code's mistakes, not an unavailable store.
            if not _unavailable(exc):
                raise
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


def write(
    conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T], busy_timeout_ms: int
) -> T:
    # IMMEDIATE takes the write lock up front (waiting up to busy_timeout_ms): a deferred
    # BEGIN would read first and then fail with SQLITE_BUSY, unretried, whenever another
    # process committed in between.
    patiently(lambda: conn.execute("BEGIN IMMEDIATE"), busy_timeout_ms)
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
