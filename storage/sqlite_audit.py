"""SQLite: the audit trail, numbered per tenant, as plain statements.

Every function here returns an operation ``(conn) -> result`` for ``storage.sqlite``.
An entry's id is its number in its tenant's trail (``seq``); the rowid ``id`` counts
every tenant's entries and is never shown. Entries an older version wrote keep the id
it showed (``legacy_id``), so its cursors still work; the numbering of those entries
is a migration (``storage.sqlite_schema``).
"""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import datetime
from typing import Any

from storage.base import AuditEntry, audit_id, audit_number
from storage.errors import InvalidCursor
from storage.sqlite_connection import Op

# A cursor an older version issued: the global id, at most 18 digits.
_LEGACY_CURSOR = re.compile(r"[0-9]{1,18}")


def append(tenant: str, entry: AuditEntry) -> Op[str]:
    def op(conn: sqlite3.Connection) -> str:
        # The tenant's next number, in the write transaction that inserts it: writes
        # are serialised (BEGIN IMMEDIATE), and audit_by_seq would refuse a duplicate.
        (seq,) = conn.execute(
            "INSERT INTO audit (tenant, seq, at, actor, client_id, action, target,"
            " before_json, after_json) VALUES"
            " (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM audit WHERE tenant = ?),"
            " ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
            (
                tenant,
                tenant,
                entry.at.isoformat(),
                entry.actor,
                entry.client_id,
                entry.action,
                entry.target,
                None if entry.before is None else json.dumps(entry.before, sort_keys=True),
                None if entry.after is None else json.dumps(entry.after, sort_keys=True),
            ),
        ).fetchone()
        return audit_id(seq)

    return op


def list_entries(tenant: str, *, after: str | None, limit: int) -> Op[list[AuditEntry]]:
    """Raises ``InvalidCursor`` here, before any read, for a cursor no version issued."""
    number = 0 if after is None else audit_number(after)
    legacy = None
    if number is None:
        if not _LEGACY_CURSOR.fullmatch(after or ""):
            raise InvalidCursor(after)
        legacy = int(after or 0)

    def op(c: sqlite3.Connection) -> list[AuditEntry]:
        start = number
        if legacy is not None:
            # An older version's cursor: after the last entry it had shown with an id
            # up to it. Only such entries count, so it cannot probe newer global ids.
            (start,) = c.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM audit"
                " WHERE tenant = ? AND id <= ? AND legacy_id IS NOT NULL",
                (tenant, legacy),
            ).fetchone()
        rows = c.execute(
            "SELECT seq, tenant, at, actor, client_id, action, target, before_json,"
            " after_json FROM audit WHERE tenant = ? AND seq > ? ORDER BY seq LIMIT ?",
            (tenant, start, limit),
        ).fetchall()
        return [_entry(row) for row in rows]

    return op


def _entry(row: tuple[Any, ...]) -> AuditEntry:
    return AuditEntry(
        id=audit_id(row[0]),
        tenant=row[1],
        at=datetime.fromisoformat(row[2]),
        actor=row[3],
        client_id=row[4],
        action=row[5],
        target=row[6],
        before=None if row[7] is None else json.loads(row[7]),
        after=None if row[8] is None else json.loads(row[8]),
    )
