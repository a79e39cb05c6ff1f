"""SQLite: the statements that change counters, inside the caller's write transaction.

A counter is founded, and replaced, only while the definition of its incarnation
exists, checked in the same transaction (``_LIVE``): a DELETE of the sequence either
sees the counter and deletes it with the definition, or makes the write a no-op.
``increment`` also writes an allocation's riders (``storage.sqlite_ledger.ride``),
only if the increment applied.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from storage import sqlite_ledger as ledger_sql
from storage.base import Counter, Increment, Rider
from storage.sqlite_connection import Op

# The definition of a counter's incarnation exists (parameters: tenant, seq, incarnation).
_LIVE = "EXISTS (SELECT 1 FROM sequences WHERE tenant = ? AND name = ? AND incarnation = ?)"


def riding(riders: Sequence[Rider], n: int) -> tuple[Rider, ...]:
    """The riders worth writing (none on the hot path), checked to add up to ``n``."""
    if not any(r.writes for r in riders):
        return ()
    if sum(r.n for r in riders) != n:
        raise ValueError("the riders of an allocation must add up to its n")
    return tuple(riders)


def increment(conn: sqlite3.Connection, item: Increment) -> int | None:
    """``Store.allocate`` of one item and its riders, inside the caller's transaction."""
    ticks = _count(conn, item)
    if ticks is not None and item.riders:
        ledger_sql.ride(conn, item.tenant, item.shape, ticks - item.n, item.riders)
    return ticks


def _count(conn: sqlite3.Connection, item: Increment) -> int | None:
    """The conditional increment of one item (see ``Store.allocate``)."""
    tenant, key, seq, shape, n, create = (
        item.tenant,
        item.key,
        item.seq,
        item.shape,
        item.n,
        item.create,
    )
    if n < 1 or n > shape.cap:
        return None
    if not conn.in_transaction:
        # The read-back below is this increment's result only under the write lock.
        raise RuntimeError("a counter increment runs inside a write transaction")
    # A plain UPDATE, then the row read back by its key: SQLite's RETURNING builds and
    # drops an ephemeral table each statement (docs/performance.md, 2026-12-03 afternoon).
    applied = conn.execute(
        "UPDATE counters SET ticks = ticks + ?"
        " WHERE tenant = ? AND key = ? AND base = ? AND step = ? AND cap = ?"
        " AND incarnation = ? AND ticks <= ?",
        (
            n,
            tenant,
            key,
            shape.base,
            shape.step,
            shape.cap,
            shape.incarnation,
            shape.cap - n,
        ),
    ).rowcount
    if applied == 1:
        row = conn.execute(
            "SELECT ticks FROM counters WHERE tenant = ? AND key = ?", (tenant, key)
        ).fetchone()
        return int(row[0])
    if not create:
        return None
    # Founded only while its incarnation's definition exists, in this transaction:
    # a DELETE racing this first allocation either sees the counter (and deletes
    # it with the definition) or makes this insert a no-op.
    return n if _found(conn, tenant, key, seq, shape, ticks=n) else None


def _found(
    conn: sqlite3.Connection, tenant: str, key: str, seq: str, counter: Counter, *, ticks: int
) -> bool:
    """Insert ``counter`` with ``ticks`` taken, only while its incarnation's definition
    exists (``_LIVE``); False if the counter exists already or the definition does not."""
    cur = conn.execute(
        "INSERT OR IGNORE INTO counters"
        " (tenant, key, seq, base, step, cap, ticks, incarnation)"
        f" SELECT ?, ?, ?, ?, ?, ?, ?, ? WHERE {_LIVE}",
        (
            tenant,
            key,
            seq,
            counter.base,
            counter.step,
            counter.cap,
            ticks,
            counter.incarnation,
            tenant,
            seq,
            counter.incarnation,
        ),
    )
    return cur.rowcount == 1


def replace(tenant: str, key: str, seq: str, expected: Counter | None, new: Counter) -> Op[bool]:
    """``Store.replace_counter`` as one operation."""

    def op(conn: sqlite3.Connection) -> bool:
        if expected is None:
            return _found(conn, tenant, key, seq, new, ticks=new.ticks)
        cur = conn.execute(
            "UPDATE counters SET base = ?, step = ?, cap = ?, ticks = ?, incarnation = ?"  # noqa: S608 - constant text, values bound
            " WHERE tenant = ? AND key = ? AND base = ? AND step = ? AND cap = ?"
            f" AND ticks = ? AND incarnation = ? AND {_LIVE}",
            (
                new.base,
                new.step,
                new.cap,
                new.ticks,
                new.incarnation,
                tenant,
                key,
                expected.base,
                expected.step,
                expected.cap,
                expected.ticks,
                expected.incarnation,
                tenant,
                seq,
                new.incarnation,
            ),
        )
        return cur.rowcount == 1

    return op
