"""SQLite backend: the embedded default.

WAL with ``synchronous=FULL``: a number is on disk before its response. Every write
is ``BEGIN IMMEDIATE`` ... ``COMMIT``, so several server processes can share one file
(the write lock serialises them; ``busy_timeout`` makes them queue, not fail).
Allocation is one conditional ``UPDATE`` in that transaction, its new ``ticks``
read back by key (``storage.sqlite_counters``).

``SQLiteStore``, the one class, runs every call on one of two threads
(``storage.sqlite_connection``): writes on the writer, each in a transaction, reads on
the reader. This module holds the sequences, the counter reads and the transactions
allocation runs in; the statements of the other parts are in their own modules, as
operations ``(conn) -> result`` the store runs: the schema and its migrations
(``sqlite_schema``), the statements that change counters (``sqlite_counters``), the
registry of tenants and API clients (``sqlite_registry``), the audit trail
(``sqlite_audit``), usage (``sqlite_usage``), the ledger and idempotency keys
(``sqlite_ledger``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from storage import sqlite_audit as audit_sql
from storage import sqlite_counters as counters_sql
from storage import sqlite_ledger as ledger_sql
from storage import sqlite_registry as registry_sql
from storage import sqlite_schema
from storage import sqlite_usage as usage_sql
from storage.base import (
    AuditEntry,
    ClientRecord,
    Counter,
    IdempotencyRecord,
    Increment,
    LedgerCounts,
    LedgerEntry,
    Rider,
    SequenceRecord,
    TenantRecord,
    UsageRow,
)
from storage.errors import AlreadyExists
from storage.sqlite_connection import Connection, Op, T, wait_patiently, write

_SEQUENCE_COLUMNS = "name, config, created_at, updated_at, revision, incarnation"


def path_from_url(url: str) -> Path:
    """``sqlite:///./data/tally.db`` -> ``./data/tally.db``; ``sqlite:////abs`` -> ``/abs``."""
    return Path(url.removeprefix("sqlite:///"))


def _record(row: tuple[Any, ...]) -> SequenceRecord:
    name, config, created_at, updated_at, revision, incarnation = row
    return SequenceRecord(
        name=name,
        config=json.loads(config),
        created_at=datetime.fromisoformat(created_at),
        updated_at=datetime.fromisoformat(updated_at),
        revision=revision,
        incarnation=incarnation,
    )


class SQLiteStore:
    kind = "sqlite"
    atomic_riders = True  # entries and notes share the increment's transaction

    def __init__(self, path: Path | str, *, busy_timeout_ms: int = 10_000) -> None:
        self.path = Path(path)
        self._writer = Connection(self.path, busy_timeout_ms, "tally-sqlite-w")
        self._reader = Connection(self.path, busy_timeout_ms, "tally-sqlite-r")
        self._small = ledger_sql.WriteBatch(self._commit)

    async def _commit(self, op: Op[T]) -> T:
        """Run ``op`` in one write transaction on the writer thread."""
        return await self._writer.run(lambda c: write(c, op, self._writer.busy_timeout_ms))

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await self._writer.run(lambda c: sqlite_schema.init(c, self._writer.busy_timeout_ms))
        await self._writer.run(wait_patiently)

    async def close(self) -> None:
        self._writer.close()
        self._reader.close()

    async def ping(self) -> None:
        await self._reader.run(lambda c: c.execute("SELECT 1").fetchone())

    # -- sequences -----------------------------------------------------------
    async def create_sequence(self, tenant: str, record: SequenceRecord) -> None:
        def op(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(
                    "INSERT INTO sequences (tenant, name, config, created_at, updated_at,"
                    " revision, incarnation) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        tenant,
                        record.name,
                        json.dumps(record.config, sort_keys=True),
                        record.created_at.isoformat(),
                        record.updated_at.isoformat(),
                        record.revision,
                        record.incarnation,
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise AlreadyExists(record.name) from exc
            # Counters of this name now can only be leftovers (e.g. from a file written
            # before incarnations existed): the new incarnation has none yet.
            conn.execute("DELETE FROM counters WHERE tenant = ? AND seq = ?", (tenant, record.name))

        await self._commit(op)

    async def get_sequence(self, tenant: str, name: str) -> SequenceRecord | None:
        row = await self._reader.run(
            lambda c: c.execute(
                f"SELECT {_SEQUENCE_COLUMNS} FROM sequences WHERE tenant = ? AND name = ?",  # noqa: S608
                (tenant, name),
            ).fetchone()
        )
        return _record(row) if row else None

    async def get_sequences(self, tenant: str, names: Sequence[str]) -> dict[str, SequenceRecord]:
        wanted = list(dict.fromkeys(names))
        if not wanted:
            return {}
        # json_each keeps it one statement with two parameters, however many names.
        rows = await self._reader.run(
            lambda c: c.execute(
                f"SELECT {_SEQUENCE_COLUMNS} FROM sequences"  # noqa: S608
                " WHERE tenant = ? AND name IN (SELECT value FROM json_each(?))",
                (tenant, json.dumps(wanted)),
            ).fetchall()
        )
        return {record.name: record for record in map(_record, rows)}

    async def list_sequences(
        self, tenant: str, *, after: str | None, limit: int
    ) -> list[SequenceRecord]:
        rows = await self._reader.run(
            lambda c: c.execute(
                f"SELECT {_SEQUENCE_COLUMNS} FROM sequences"  # noqa: S608
                " WHERE tenant = ? AND name > ? ORDER BY name LIMIT ?",
                (tenant, after or "", limit),
            ).fetchall()
        )
        return [_record(r) for r in rows]

    async def update_sequence(
        self, tenant: str, record: SequenceRecord, *, expected_revision: int
    ) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE sequences SET config = ?, updated_at = ?, revision = ?"
                " WHERE tenant = ? AND name = ? AND revision = ?",
                (
                    json.dumps(record.config, sort_keys=True),
                    record.updated_at.isoformat(),
                    record.revision,
                    tenant,
                    record.name,
                    expected_revision,
                ),
            )
            return cur.rowcount == 1

        return await self._commit(op)

    async def delete_sequence(
        self, tenant: str, name: str, *, incarnation: str | None = None
    ) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "DELETE FROM sequences WHERE tenant = ? AND name = ?"
                " AND (? IS NULL OR incarnation = ?)",
                (tenant, name, incarnation, incarnation),
            )
            # Its counters, and any of an incarnation no longer live; never a live one's.
            conn.execute(
                "DELETE FROM counters WHERE tenant = ? AND seq = ? AND NOT EXISTS (SELECT 1"
                " FROM sequences s WHERE s.tenant = counters.tenant AND s.name = counters.seq"
                " AND s.incarnation = counters.incarnation)",
                (tenant, name),
            )
            return cur.rowcount == 1

        return await self._commit(op)

    # -- counters --------------------------------------------------------------
    async def read_counter(self, tenant: str, key: str) -> Counter | None:
        row = await self._reader.run(
            lambda c: c.execute(
                "SELECT base, step, cap, ticks, incarnation FROM counters"
                " WHERE tenant = ? AND key = ?",
                (tenant, key),
            ).fetchone()
        )
        return Counter(*row) if row else None

    async def read_counters(self, tenant: str, keys: Sequence[str]) -> dict[str, Counter]:
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        # json_each keeps it one statement with two parameters, however many keys.
        rows = await self._reader.run(
            lambda c: c.execute(
                "SELECT key, base, step, cap, ticks, incarnation FROM counters"
                " WHERE tenant = ? AND key IN (SELECT value FROM json_each(?))",
                (tenant, json.dumps(wanted)),
            ).fetchall()
        )
        return {key: Counter(*rest) for key, *rest in rows}

    async def allocate(
        self,
        tenant: str,
        key: str,
        seq: str,
        shape: Counter,
        n: int,
        *,
        create: bool = True,
        riders: Sequence[Rider] = (),
    ) -> int | None:
        item = Increment(tenant, key, seq, shape, n, create, counters_sql.riding(riders, n))
        return await self._commit(lambda c: counters_sql.increment(c, item))

    async def allocate_many(self, items: Sequence[Increment]) -> list[int | None]:
        # One write transaction for the whole group: one commit, one fsync; each item's
        # riders are written right after its increment, only if it applied.
        def op(conn: sqlite3.Connection) -> list[int | None]:
            return [counters_sql.increment(conn, item) for item in items]

        return await self._commit(op)

    async def replace_counter(
        self, tenant: str, key: str, seq: str, expected: Counter | None, new: Counter
    ) -> bool:
        return await self._commit(counters_sql.replace(tenant, key, seq, expected, new))

    # -- usage (statements: storage.sqlite_usage) ----------------------------------------
    async def add_usage(self, tenant: str, rows: Sequence[UsageRow]) -> None:
        if rows:
            await self._commit(usage_sql.add(tenant, rows))

    async def read_usage(
        self, tenant: str, *, sequence: str | None, since: datetime, until: datetime
    ) -> list[UsageRow]:
        op = usage_sql.read(tenant, sequence=sequence, since=since, until=until)
        return await self._reader.run(op)

    # -- audit trail (statements: storage.sqlite_audit) ----------------------------------
    async def append_audit(self, tenant: str, entry: AuditEntry) -> str:
        return await self._commit(audit_sql.append(tenant, entry))

    async def list_audit(self, tenant: str, *, after: str | None, limit: int) -> list[AuditEntry]:
        return await self._reader.run(audit_sql.list_entries(tenant, after=after, limit=limit))

    # -- the number ledger and idempotency keys (statements: storage.sqlite_ledger) --------
    async def get_reservation(
        self, tenant: str, seq: str, reservation: str, *, now: datetime
    ) -> LedgerEntry | None:
        return await self._reader.run(ledger_sql.get_reservation(tenant, seq, reservation, now))

    async def close_reservation(
        self,
        tenant: str,
        seq: str,
        reservation: str,
        *,
        state: str,
        at: datetime,
        actor: str,
        reference: str | None,
        reason: str | None,
    ) -> LedgerEntry | None:
        op = ledger_sql.close_reservation(
            tenant,
            seq,
            reservation,
            state=state,
            at=at,
            actor=actor,
            reference=reference,
            reason=reason,
        )
        return await self._commit(op)

    async def list_ledger(
        self,
        tenant: str,
        seq: str,
        *,
        period: str,
        now: datetime,
        states: Collection[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after: int | None = None,
        limit: int,
    ) -> list[LedgerEntry]:
        op = ledger_sql.list_ledger(
            tenant,
            seq,
            period=period,
            now=now,
            states=states,
            since=since,
            until=until,
            after=after,
            limit=limit,
        )
        return await self._reader.run(op)

    async def count_ledger(
        self, tenant: str, seq: str, *, period: str, now: datetime
    ) -> LedgerCounts:
        return await self._reader.run(ledger_sql.count_ledger(tenant, seq, period=period, now=now))

    async def claim_idempotency(
        self, tenant: str, record: IdempotencyRecord
    ) -> IdempotencyRecord | None:
        return await self._small.run(ledger_sql.claim(tenant, record))

    async def relock_idempotency(
        self, tenant: str, key: str, *, expected: datetime, locked_until: datetime
    ) -> bool:
        op = ledger_sql.relock(tenant, key, expected=expected, locked_until=locked_until)
        return await self._small.run(op)

    async def complete_idempotency(
        self, tenant: str, key: str, *, status: int, body: bytes, content_type: str
    ) -> None:
        op = ledger_sql.complete(tenant, key, status=status, body=body, content_type=content_type)
        await self._small.run(op)

    async def release_idempotency(self, tenant: str, key: str) -> None:
        await self._small.run(ledger_sql.release(tenant, key))

    async def sweep_idempotency(self, now: datetime) -> int:
        return await self._small.run(ledger_sql.sweep(now))

    # -- tenants and API clients (statements: storage.sqlite_registry) -------------------
    async def create_tenant(self, tenant: str, record: TenantRecord) -> None:
        await self._commit(registry_sql.create_tenant(tenant, record))

    async def get_tenant(self, tenant: str) -> TenantRecord | None:
        return await self._reader.run(registry_sql.get_tenant(tenant))

    async def list_tenants(self, *, after: str | None, limit: int) -> list[TenantRecord]:
        return await self._reader.run(registry_sql.list_tenants(after=after, limit=limit))

    async def update_tenant(
        self, tenant: str, record: TenantRecord, *, expected_revision: int
    ) -> bool:
        op = registry_sql.update_tenant(tenant, record, expected_revision=expected_revision)
        return await self._commit(op)

    async def delete_tenant(self, tenant: str, *, with_data: bool = True) -> bool:
        return await self._commit(registry_sql.delete_tenant(tenant, with_data=with_data))

    async def create_client(self, tenant: str, record: ClientRecord) -> None:
        await self._commit(registry_sql.create_client(tenant, record))

    async def get_client(self, tenant: str, client_id: str) -> ClientRecord | None:
        return await self._reader.run(registry_sql.get_client(tenant, client_id))

    async def list_clients(self, tenant: str) -> list[ClientRecord]:
        return await self._reader.run(registry_sql.list_clients(tenant))

    async def set_client_secret(self, tenant: str, client_id: str, secret_hash: str) -> bool:
        return await self._commit(registry_sql.set_client_secret(tenant, client_id, secret_hash))

    async def revoke_client(self, tenant: str, client_id: str, at: datetime) -> bool:
        return await self._commit(registry_sql.revoke_client(tenant, client_id, at))

    async def touch_client(self, tenant: str, client_id: str, at: datetime) -> None:
        await self._commit(registry_sql.touch_client(tenant, client_id, at))
