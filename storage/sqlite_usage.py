"""SQLite: usage counts, one row per tenant, UTC hour and sequence, as plain statements.

Every function here returns an operation ``(conn) -> result`` for ``storage.sqlite``.
Hours are fixed-width UTC text, so text order is time order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from storage.base import UsageRow
from storage.sqlite_connection import Op


def _hour(at: datetime) -> str:
    """UTC at a fixed width, so that text order is time order."""
    # isoformat pads the year to four digits (strftime's %Y does not, below 1000).
    return at.astimezone(UTC).replace(microsecond=0).isoformat()


def add(tenant: str, rows: Sequence[UsageRow]) -> Op[None]:
    params = [(tenant, _hour(r.hour), r.sequence, r.requests, r.numbers) for r in rows]

    def op(conn: sqlite3.Connection) -> None:
        conn.executemany(
            "INSERT INTO usage VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant, hour, seq)"
            " DO UPDATE SET requests = requests + excluded.requests,"
            " numbers = numbers + excluded.numbers",
            params,
        )

    return op


def read(
    tenant: str, *, sequence: str | None, since: datetime, until: datetime
) -> Op[list[UsageRow]]:
    sql = "SELECT seq, hour, requests, numbers FROM usage WHERE tenant = ?"
    sql += " AND hour >= ? AND hour < ?"
    args: list[Any] = [tenant, _hour(since), _hour(until)]
    if sequence is not None:
        sql += " AND seq = ?"
        args.append(sequence)

    def op(conn: sqlite3.Connection) -> list[UsageRow]:
        rows = conn.execute(sql + " ORDER BY hour, seq", args).fetchall()
        return [
            UsageRow(seq, datetime.fromisoformat(hour), req, num) for seq, hour, req, num in rows
        ]

    return op
