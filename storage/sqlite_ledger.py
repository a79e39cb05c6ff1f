"""SQLite: the ledger and idempotency-key tables, as plain statements.

Every function here returns an operation ``(conn) -> result`` for ``storage.sqlite``
to run on its writer (inside a transaction) or reader thread; ``ride`` runs inside
an increment's own transaction. Times are fixed-width UTC text (``ts``), so text order
is time order.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Awaitable, Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import Any

from storage.base import (
    RESERVED,
    Counter,
    IdempotencyRecord,
    LedgerCounts,
    LedgerEntry,
    Rider,
)
from storage.sqlite_connection import Op, T

# One row per number a ledger sequence issued, written in the increment's transaction.
# Rows are never deleted with their sequence (a ledger sequence cannot be deleted),
# only with their tenant.
SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger (
    tenant      TEXT    NOT NULL,
    seq         TEXT    NOT NULL,
    period      TEXT    NOT NULL,
    value       INTEGER NOT NULL,
    formatted   TEXT,
    state       TEXT    NOT NULL,
    reference   TEXT,
    actor       TEXT    NOT NULL,
    issued_at   TEXT    NOT NULL,
    expires_at  TEXT,
    reservation TEXT,
    closed_at   TEXT,
    closed_by   TEXT,
    reason      TEXT,
    PRIMARY KEY (tenant, seq, period, value)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS ledger_by_reservation ON ledger (tenant, seq, reservation)
    WHERE reservation IS NOT NULL;
CREATE TABLE IF NOT EXISTS idempotency (
    tenant       TEXT NOT NULL,
    key          TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    locked_until TEXT NOT NULL,
    status       INTEGER,
    body         BLOB,
    content_type TEXT,
    allocation   TEXT,
    PRIMARY KEY (tenant, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_by_expiry ON idempotency (expires_at);
"""
_LEDGER_COLUMNS = (
    "seq, period, value, formatted, state, actor, issued_at, reference, expires_at,"
    " reservation, closed_at, closed_by, reason"
)
# A reservation past its expiry reads as expired, whatever is stored.
_EFFECTIVE = "CASE WHEN state = 'reserved' AND expires_at <= :now THEN 'expired' ELSE state END"
_IDEM_COLUMNS = (
    "key, fingerprint, created_at, expires_at, locked_until, status, body, content_type, allocation"
)


def ts(at: datetime) -> str:
    """An instant as fixed-width UTC text, so that text order is time order."""
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _ts_or_none(value: datetime | None) -> str | None:
    return ts(value) if value is not None else None


def _time_or_none(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


# -- riders: written inside the increment's transaction ---------------------------------
def ride(
    conn: sqlite3.Connection, tenant: str, shape: Counter, tick: int, riders: Sequence[Rider]
) -> None:
    """Write the riders of an increment whose first new tick is ``tick`` (same transaction)."""
    entries: list[tuple[Any, ...]] = []
    notes: list[tuple[Any, ...]] = []
    for rider in riders:
        first, last = shape.value_at(tick), shape.value_at(tick + rider.n - 1)
        if rider.ledger is not None:
            draft = rider.ledger
            for i in range(rider.n):
                e = draft.entry(shape.value_at(tick + i))
                entries.append(
                    (
                        *(tenant, e.sequence, e.period, e.value, e.formatted, e.state),
                        *(e.reference, e.actor, ts(e.issued_at), _ts_or_none(e.expires_at)),
                        *(e.reservation, None, None, None),
                    )
                )
        if rider.idempotency_key is not None:
            note = json.dumps({**rider.note, "first": first, "last": last})
            notes.append((note, tenant, rider.idempotency_key))
        tick += rider.n
    if entries:
        conn.executemany(
            "INSERT INTO ledger (tenant, seq, period, value, formatted, state, reference, actor,"
            " issued_at, expires_at, reservation, closed_at, closed_by, reason)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            entries,
        )
    if notes:
        conn.executemany(
            "UPDATE idempotency SET allocation = ? WHERE tenant = ? AND key = ?", notes
        )


# -- the ledger --------------------------------------------------------------------
def get_reservation(
    tenant: str, seq: str, reservation: str, now: datetime
) -> Op[LedgerEntry | None]:
    def op(conn: sqlite3.Connection) -> LedgerEntry | None:
        row = conn.execute(
            f"SELECT {_LEDGER_COLUMNS} FROM ledger"  # noqa: S608
            " WHERE tenant = ? AND seq = ? AND reservation = ?",
            (tenant, seq, reservation),
        ).fetchone()
        return _entry(row).as_of(now) if row else None

    return op


def close_reservation(
    tenant: str,
    seq: str,
    reservation: str,
    *,
    state: str,
    at: datetime,
    actor: str,
    reference: str | None,
    reason: str | None,
) -> Op[LedgerEntry | None]:
    def op(conn: sqlite3.Connection) -> LedgerEntry | None:
        row = conn.execute(
            "UPDATE ledger SET state = ?, closed_at = ?, closed_by = ?, reason = ?,"  # noqa: S608
            " reference = COALESCE(?, reference)"
            " WHERE tenant = ? AND seq = ? AND reservation = ? AND state = ?"
            f" AND expires_at > ? RETURNING {_LEDGER_COLUMNS}",
            (state, ts(at), actor, reason, reference, tenant, seq, reservation, RESERVED, ts(at)),
        ).fetchone()
        return _entry(row) if row else None

    return op


def list_ledger(
    tenant: str,
    seq: str,
    *,
    period: str,
    now: datetime,
    states: Collection[str] | None,
    since: datetime | None,
    until: datetime | None,
    after: int | None,
    limit: int,
) -> Op[list[LedgerEntry]]:
    args: dict[str, Any] = {"tenant": tenant, "seq": seq, "period": period, "now": ts(now)}
    where = "tenant = :tenant AND seq = :seq AND period = :period"
    if after is not None:
        where += " AND value > :after"
        args["after"] = after
    if since is not None:
        where += " AND issued_at >= :since"
        args["since"] = ts(since)
    if until is not None:
        where += " AND issued_at < :until"
        args["until"] = ts(until)
    sql = f"SELECT {_LEDGER_COLUMNS}, {_EFFECTIVE} AS eff FROM ledger WHERE {where}"  # noqa: S608
    if states is not None:
        sql = f"SELECT * FROM ({sql}) WHERE eff IN (SELECT value FROM json_each(:states))"  # noqa: S608
        args["states"] = json.dumps(sorted(states))
    args["limit"] = limit

    def op(conn: sqlite3.Connection) -> list[LedgerEntry]:
        rows = conn.execute(sql + " ORDER BY value LIMIT :limit", args).fetchall()
        return [_entry(row[:-1]).as_of(now) for row in rows]

    return op


def count_ledger(tenant: str, seq: str, *, period: str, now: datetime) -> Op[LedgerCounts]:
    def op(conn: sqlite3.Connection) -> LedgerCounts:
        rows = conn.execute(
            f"SELECT eff, count(*), min(value), max(value) FROM (SELECT value,"  # noqa: S608
            f" {_EFFECTIVE} AS eff FROM ledger WHERE tenant = :tenant AND seq = :seq"
            " AND period = :period) GROUP BY eff",
            {"tenant": tenant, "seq": seq, "period": period, "now": ts(now)},
        ).fetchall()
        states = {eff: count for eff, count, _, _ in rows}
        lows = [low for _, _, low, _ in rows]
        highs = [high for _, _, _, high in rows]
        return LedgerCounts(
            first=min(lows) if lows else None, last=max(highs) if highs else None, states=states
        )

    return op


def _entry(row: Sequence[Any]) -> LedgerEntry:
    seq, period, value, formatted, state, actor, issued, ref, expires, rsv, closed, by, why = row
    return LedgerEntry(
        sequence=seq,
        period=period,
        value=value,
        formatted=formatted,
        state=state,
        actor=actor,
        issued_at=datetime.fromisoformat(issued),
        reference=ref,
        expires_at=_time_or_none(expires),
        reservation=rsv,
        closed_at=_time_or_none(closed),
        closed_by=by,
        reason=why,
    )


# -- idempotency keys -------------------------------------------------------------------
def claim(tenant: str, record: IdempotencyRecord) -> Op[IdempotencyRecord | None]:
    def op(conn: sqlite3.Connection) -> IdempotencyRecord | None:
        row = conn.execute(
            f"SELECT {_IDEM_COLUMNS} FROM idempotency WHERE tenant = ? AND key = ?",  # noqa: S608
            (tenant, record.key),
        ).fetchone()
        if row is not None and row[3] > ts(record.created_at):
            return _idempotency(row)
        conn.execute(
            "INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, NULL, NULL)",
            (
                tenant,
                record.key,
                record.fingerprint,
                ts(record.created_at),
                ts(record.expires_at),
                ts(record.locked_until),
            ),
        )
        return None

    return op


def relock(tenant: str, key: str, *, expected: datetime, locked_until: datetime) -> Op[bool]:
    def op(conn: sqlite3.Connection) -> bool:
        cur = conn.execute(
            "UPDATE idempotency SET locked_until = ? WHERE tenant = ? AND key = ?"
            " AND locked_until = ? AND status IS NULL",
            (ts(locked_until), tenant, key, ts(expected)),
        )
        return cur.rowcount == 1

    return op


def complete(tenant: str, key: str, *, status: int, body: bytes, content_type: str) -> Op[None]:
    def op(conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE idempotency SET status = ?, body = ?, content_type = ?"
            " WHERE tenant = ? AND key = ?",
            (status, body, content_type, tenant, key),
        )

    return op


def release(tenant: str, key: str) -> Op[None]:
    def op(conn: sqlite3.Connection) -> None:
        conn.execute(
            "DELETE FROM idempotency WHERE tenant = ? AND key = ? AND status IS NULL"
            " AND allocation IS NULL",
            (tenant, key),
        )

    return op


def sweep(now: datetime) -> Op[int]:
    def op(conn: sqlite3.Connection) -> int:
        return conn.execute("DELETE FROM idempotency WHERE expires_at <= ?", (ts(now),)).rowcount

    return op


def _idempotency(row: tuple[Any, ...]) -> IdempotencyRecord:
    key, fingerprint, created, expires, locked, status, body, content_type, allocation = row
    return IdempotencyRecord(
        key=key,
        fingerprint=fingerprint,
        created_at=datetime.fromisoformat(created),
        expires_at=datetime.fromisoformat(expires),
        locked_until=datetime.fromisoformat(locked),
        status=status,
        body=body,
        content_type=content_type,
        allocation=None if allocation is None else json.loads(allocation),
    )


# -- batching small writes -------------------------------------------------------------
Transact = Callable[[Op[Any]], Awaitable[Any]]


class WriteBatch:
    """Small writes that arrive together share one transaction, so one fsync.

    Used for idempotency keys: every keyed request claims and completes its key, and
    with one commit each those two fsyncs per request, queued behind one another on
    the writer, capped keyed traffic at a few hundred requests a second. Each write
    runs in its own savepoint, so one that raises is rolled back alone; a failed commit
    fails the whole batch (none of it applied). ``transact`` runs an operation in one
    write transaction (the store's writer thread).
    """

    def __init__(self, transact: Transact) -> None:
        self._transact = transact
        self._queue: list[tuple[Op[Any], asyncio.Future[Any]]] = []
        self._flush: asyncio.Task[None] | None = None

    async def run(self, fn: Op[T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.append((fn, future))
        if self._flush is None:
            self._flush = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                try:
                    outcomes = await self._transact(_each([fn for fn, _ in batch]))
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue  # its request was cancelled; the write stands
                    if ok:
                        future.set_result(value)
                    else:
                        future.set_exception(value)
        finally:
            # No await between the empty check and here: no arrival is stranded.
            self._flush = None


def _each(fns: list[Op[Any]]) -> Op[list[tuple[bool, Any]]]:
    def op(conn: sqlite3.Connection) -> list[tuple[bool, Any]]:
        out: list[tuple[bool, Any]] = []
        for fn in fns:
            conn.execute("SAVEPOINT one")
            try:
                value = fn(conn)
            except Exception as exc:
                conn.execute("ROLLBACK TO one")
                conn.execute("RELEASE one")
                out.append((False, exc))
                continue
            conn.execute("RELEASE one")
            out.append((True, value))
        return out

    return op
