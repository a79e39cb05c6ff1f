"""SQLite backend: the embedded default.

WAL with ``synchronous=FULL``: a number is on disk before its response. Every write
is ``BEGIN IMMEDIATE`` ... ``COMMIT``, so several server processes can share one file
(the write lock serialises them; ``busy_timeout`` makes them queue, not fail).
Allocation is one ``UPDATE ... RETURNING`` in that transaction.

The ``sqlite3`` module blocks, so all calls run on two dedicated threads, each with
its own connection: one for writes, one for reads (WAL lets reads proceed while a
commit is being fsynced). The event loop never waits on a commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sqlite3
import threading
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from storage import sqlite_ledger as ledger_sql
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
    audit_id,
    audit_number,
)
from storage.errors import AlreadyExists, InvalidCursor, StoreUnavailable

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sequences (
    tenant     TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    config     TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    updated_at TEXT    NOT NULL,
    revision   INTEGER NOT NULL,
    incarnation TEXT   NOT NULL DEFAULT '',
    PRIMARY KEY (tenant, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters (
    tenant TEXT    NOT NULL,
    key    TEXT    NOT NULL,
    seq    TEXT    NOT NULL,
    base   INTEGER NOT NULL,
    step   INTEGER NOT NULL,
    cap    INTEGER NOT NULL,
    ticks  INTEGER NOT NULL CHECK (ticks >= 0 AND ticks <= cap),
    incarnation TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (tenant, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS counters_by_sequence ON counters (tenant, seq);
CREATE TABLE IF NOT EXISTS audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant      TEXT    NOT NULL,
    at          TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    client_id   TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    before_json TEXT,
    after_json  TEXT,
    seq         INTEGER,
    legacy_id   INTEGER
);
CREATE INDEX IF NOT EXISTS audit_by_tenant ON audit (tenant, id);
CREATE TABLE IF NOT EXISTS usage (
    tenant   TEXT    NOT NULL,
    hour     TEXT    NOT NULL,
    seq      TEXT    NOT NULL,
    requests INTEGER NOT NULL,
    numbers  INTEGER NOT NULL,
    PRIMARY KEY (tenant, hour, seq)
) WITHOUT ROWID;
"""

# The tenant registry and OAuth clients (tenants/). Platform-admin clients use tenant ''.
_TENANT_SCHEMA = """
CREATE TABLE IF NOT EXISTS tenants (
    tenant     TEXT    NOT NULL PRIMARY KEY,
    config     TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    updated_at TEXT    NOT NULL,
    revision   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS clients (
    tenant       TEXT NOT NULL,
    client_id    TEXT NOT NULL,
    name         TEXT NOT NULL,
    secret_hash  TEXT NOT NULL,
    scopes       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at   TEXT,
    PRIMARY KEY (tenant, client_id)
) WITHOUT ROWID;
"""


# Columns added after the first release: (table, column, declaration). ``start`` adds
# the missing ones, so a file made by an older version keeps working (its rows get '').
_ADDED_COLUMNS = (
    ("sequences", "incarnation", "TEXT NOT NULL DEFAULT ''"),
    ("counters", "incarnation", "TEXT NOT NULL DEFAULT ''"),
    # An audit entry's number in its tenant's trail: its id (storage.base.audit_id).
    # ``id`` stays the rowid but is never shown: it counts every tenant's entries.
    ("audit", "seq", "INTEGER"),
    # The ``id`` an older version showed for this entry (so its cursors still work);
    # NULL for entries written since, whose global ids no tenant may probe.
    ("audit", "legacy_id", "INTEGER"),
)

# After _ADDED_COLUMNS (see _number_audit). The trigger numbers the entries an older
# version still running beside this one writes without ``seq`` (and records the id it
# showed); this version assigns ``seq`` in its INSERT, so the trigger never fires for it.
_AUDIT_INDEXES = (
    "CREATE UNIQUE INDEX IF NOT EXISTS audit_by_seq ON audit (tenant, seq)",
    """CREATE TRIGGER IF NOT EXISTS audit_seq_of_older_writers AFTER INSERT ON audit
    WHEN NEW.seq IS NULL BEGIN
        UPDATE audit SET legacy_id = NEW.id, seq = (
            SELECT COALESCE(MAX(seq), 0) + 1 FROM audit WHERE tenant = NEW.tenant
        ) WHERE id = NEW.id;
    END""",
)
# A cursor an older version issued: the global id, at most 18 digits.
_LEGACY_CURSOR = re.compile(r"[0-9]{1,18}")

# The definition of a counter's incarnation exists (parameters: tenant, seq, incarnation).
_LIVE = "EXISTS (SELECT 1 FROM sequences WHERE tenant = ? AND name = ? AND incarnation = ?)"
_SEQUENCE_COLUMNS = "name, config, created_at, updated_at, revision, incarnation"


def path_from_url(url: str) -> Path:
    """``sqlite:///./data/tally.db`` -> ``./data/tally.db``; ``sqlite:////abs`` -> ``/abs``."""
    return Path(url.removeprefix("sqlite:///"))


class _Connection:
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


def _write(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
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


def _riding(riders: Sequence[Rider], n: int) -> tuple[Rider, ...]:
    """The riders worth writing (none on the hot path), checked to add up to ``n``."""
    if not any(r.writes for r in riders):
        return ()
    if sum(r.n for r in riders) != n:
        raise ValueError("the riders of an allocation must add up to its n")
    return tuple(riders)


def _increment(conn: sqlite3.Connection, item: Increment) -> int | None:
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
    row = conn.execute(
        "UPDATE counters SET ticks = ticks + ?"
        " WHERE tenant = ? AND key = ? AND base = ? AND step = ? AND cap = ?"
        " AND incarnation = ? AND ticks <= ? RETURNING ticks",
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
    ).fetchone()
    if row is not None:
        return int(row[0])
    if not create:
        return None
    # Founded only while its incarnation's definition exists, in this transaction:
    # a DELETE racing this first allocation either sees the counter (and deletes
    # it with the definition) or makes this insert a no-op.
    cur = conn.execute(
        "INSERT OR IGNORE INTO counters"
        " (tenant, key, seq, base, step, cap, ticks, incarnation)"
        f" SELECT ?, ?, ?, ?, ?, ?, ?, ? WHERE {_LIVE}",
        (
            tenant,
            key,
            seq,
            shape.base,
            shape.step,
            shape.cap,
            n,
            shape.incarnation,
            tenant,
            seq,
            shape.incarnation,
        ),
    )
    return n if cur.rowcount == 1 else None


def _hour(at: datetime) -> str:
    """UTC at a fixed width, so that text order is time order."""
    # isoformat pads the year to four digits (strftime's %Y does not, below 1000).
    return at.astimezone(UTC).replace(microsecond=0).isoformat()


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


def _add_columns(conn: sqlite3.Connection) -> None:
    for table, column, declaration in _ADDED_COLUMNS:
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in have:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")


def _number_audit(conn: sqlite3.Connection) -> None:
    """Number the entries written before ``seq`` existed: per tenant, in id order."""
    rows = conn.execute("SELECT id, tenant FROM audit WHERE seq IS NULL ORDER BY id").fetchall()
    if not rows:
        return
    top = dict(conn.execute("SELECT tenant, MAX(seq) FROM audit GROUP BY tenant").fetchall())
    numbered = []
    for row_id, tenant in rows:
        top[tenant] = (top.get(tenant) or 0) + 1
        numbered.append((top[tenant], row_id))
    conn.executemany("UPDATE audit SET seq = ?, legacy_id = id WHERE id = ?", numbered)


class SQLiteStore:
    kind = "sqlite"
    atomic_riders = True  # entries and notes share the increment's transaction

    def __init__(self, path: Path | str, *, busy_timeout_ms: int = 10_000) -> None:
        self.path = Path(path)
        self._writer = _Connection(self.path, busy_timeout_ms, "tally-sqlite-w")
        self._reader = _Connection(self.path, busy_timeout_ms, "tally-sqlite-r")
        self._small = ledger_sql.WriteBatch(lambda op: self._writer.run(lambda c: _write(c, op)))

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)

        def init(conn: sqlite3.Connection) -> None:
            conn.execute("PRAGMA journal_mode = WAL")
            # executescript() would COMMIT our BEGIN IMMEDIATE early; run statements singly.
            statements = [
                s for s in (_SCHEMA + ledger_sql.SCHEMA + _TENANT_SCHEMA).split(";") if s.strip()
            ]

            def create(c: sqlite3.Connection) -> None:
                for statement in statements:
                    c.execute(statement)
                _add_columns(c)
                _number_audit(c)
                for statement in _AUDIT_INDEXES:
                    c.execute(statement)

            _write(conn, create)

        await self._writer.run(init)

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

        await self._writer.run(lambda c: _write(c, op))

    async def get_sequence(self, tenant: str, name: str) -> SequenceRecord | None:
        row = await self._reader.run(
            lambda c: c.execute(
                f"SELECT {_SEQUENCE_COLUMNS} FROM sequences WHERE tenant = ? AND name = ?",  # noqa: S608
                (tenant, name),
            ).fetchone()
        )
        return _record(row) if row else None

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

        return await self._writer.run(lambda c: _write(c, op))

    async def delete_sequence(self, tenant: str, name: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "DELETE FROM sequences WHERE tenant = ? AND name = ?", (tenant, name)
            )
            conn.execute("DELETE FROM counters WHERE tenant = ? AND seq = ?", (tenant, name))
            return cur.rowcount == 1

        return await self._writer.run(lambda c: _write(c, op))

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

    # -- usage -----------------------------------------------------------------
    async def add_usage(self, tenant: str, rows: Sequence[UsageRow]) -> None:
        params = [(tenant, _hour(r.hour), r.sequence, r.requests, r.numbers) for r in rows]

        def op(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO usage VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant, hour, seq)"
                " DO UPDATE SET requests = requests + excluded.requests,"
                " numbers = numbers + excluded.numbers",
                params,
            )

        if params:
            await self._writer.run(lambda c: _write(c, op))

    async def read_usage(
        self, tenant: str, *, sequence: str | None, since: datetime, until: datetime
    ) -> list[UsageRow]:
        sql = "SELECT seq, hour, requests, numbers FROM usage WHERE tenant = ?"
        sql += " AND hour >= ? AND hour < ?"
        args: list[Any] = [tenant, _hour(since), _hour(until)]
        if sequence is not None:
            sql += " AND seq = ?"
            args.append(sequence)
        rows = await self._reader.run(
            lambda c: c.execute(sql + " ORDER BY hour, seq", args).fetchall()
        )
        return [
            UsageRow(seq, datetime.fromisoformat(hour), req, num) for seq, hour, req, num in rows
        ]

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
        item = Increment(tenant, key, seq, shape, n, create, _riding(riders, n))
        return await self._writer.run(lambda c: _write(c, lambda c: _increment(c, item)))

    async def allocate_many(self, items: Sequence[Increment]) -> list[int | None]:
        # One write transaction for the whole group: one commit, one fsync; each item's
        # riders are written right after its increment, only if it applied.
        def op(conn: sqlite3.Connection) -> list[int | None]:
            return [_increment(conn, item) for item in items]

        return await self._writer.run(lambda c: _write(c, op))

    async def replace_counter(
        self, tenant: str, key: str, seq: str, expected: Counter | None, new: Counter
    ) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            live = (tenant, seq, new.incarnation)
            if expected is None:
                cur = conn.execute(
                    "INSERT OR IGNORE INTO counters"
                    " (tenant, key, seq, base, step, cap, ticks, incarnation)"
                    f" SELECT ?, ?, ?, ?, ?, ?, ?, ? WHERE {_LIVE}",
                    (
                        tenant,
                        key,
                        seq,
                        new.base,
                        new.step,
                        new.cap,
                        new.ticks,
                        new.incarnation,
                        *live,
                    ),
                )
            else:
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
                        *live,
                    ),
                )
            return cur.rowcount == 1

        return await self._writer.run(lambda c: _write(c, op))

    # -- audit trail ---------------------------------------------------------
    async def append_audit(self, tenant: str, entry: AuditEntry) -> str:
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

        return await self._writer.run(lambda c: _write(c, op))

    async def list_audit(self, tenant: str, *, after: str | None, limit: int) -> list[AuditEntry]:
        number = 0 if after is None else audit_number(after)
        legacy = None
        if number is None:
            if not _LEGACY_CURSOR.fullmatch(after or ""):
                raise InvalidCursor(after)
            legacy = int(after or 0)

        def read(c: sqlite3.Connection) -> list[Any]:
            start = number
            if legacy is not None:
                # An older version's cursor: after the last entry it had shown with an id
                # up to it. Only such entries count, so it cannot probe newer global ids.
                (start,) = c.execute(
                    "SELECT COALESCE(MAX(seq), 0) FROM audit"
                    " WHERE tenant = ? AND id <= ? AND legacy_id IS NOT NULL",
                    (tenant, legacy),
                ).fetchone()
            return c.execute(
                "SELECT seq, tenant, at, actor, client_id, action, target, before_json,"
                " after_json FROM audit WHERE tenant = ? AND seq > ? ORDER BY seq LIMIT ?",
                (tenant, start, limit),
            ).fetchall()

        rows = await self._reader.run(read)
        return [
            AuditEntry(
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
            for row in rows
        ]

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
        return await self._writer.run(lambda c: _write(c, op))

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

    # -- tenants (registry) ------------------------------------------------------
    async def create_tenant(self, tenant: str, record: TenantRecord) -> None:
        def op(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(
                    "INSERT INTO tenants VALUES (?, ?, ?, ?, ?)",
                    (
                        tenant,
                        json.dumps(record.config, sort_keys=True),
                        record.created_at.isoformat(),
                        record.updated_at.isoformat(),
                        record.revision,
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise AlreadyExists(tenant) from exc

        await self._writer.run(lambda c: _write(c, op))

    async def get_tenant(self, tenant: str) -> TenantRecord | None:
        row = await self._reader.run(
            lambda c: c.execute(
                "SELECT tenant, config, created_at, updated_at, revision FROM tenants"
                " WHERE tenant = ?",
                (tenant,),
            ).fetchone()
        )
        return _tenant(row) if row else None

    async def list_tenants(self, *, after: str | None, limit: int) -> list[TenantRecord]:
        rows = await self._reader.run(
            lambda c: c.execute(
                "SELECT tenant, config, created_at, updated_at, revision FROM tenants"
                " WHERE tenant > ? ORDER BY tenant LIMIT ?",
                (after or "", limit),
            ).fetchall()
        )
        return [_tenant(r) for r in rows]

    async def update_tenant(
        self, tenant: str, record: TenantRecord, *, expected_revision: int
    ) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE tenants SET config = ?, updated_at = ?, revision = ?"
                " WHERE tenant = ? AND revision = ?",
                (
                    json.dumps(record.config, sort_keys=True),
                    record.updated_at.isoformat(),
                    record.revision,
                    tenant,
                    expected_revision,
                ),
            )
            return cur.rowcount == 1

        return await self._writer.run(lambda c: _write(c, op))

    async def delete_tenant(self, tenant: str, *, with_data: bool = True) -> bool:
        owned = ("clients", "sequences", "counters", "idempotency", "ledger")
        tables = owned if with_data else ("clients",)

        def op(conn: sqlite3.Connection) -> bool:
            cur = conn.execute("DELETE FROM tenants WHERE tenant = ?", (tenant,))
            for table in tables:
                conn.execute(f"DELETE FROM {table} WHERE tenant = ?", (tenant,))  # noqa: S608
            return cur.rowcount == 1

        return await self._writer.run(lambda c: _write(c, op))

    # -- API clients ------------------------------------------------------------------
    async def create_client(self, tenant: str, record: ClientRecord) -> None:
        def op(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(
                    "INSERT INTO clients VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        tenant,
                        record.client_id,
                        record.name,
                        record.secret_hash,
                        json.dumps(list(record.scopes)),
                        record.created_at.isoformat(),
                        _iso(record.last_used_at),
                        _iso(record.revoked_at),
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise AlreadyExists(record.client_id) from exc

        await self._writer.run(lambda c: _write(c, op))

    async def get_client(self, tenant: str, client_id: str) -> ClientRecord | None:
        row = await self._reader.run(
            lambda c: c.execute(
                f"SELECT {_CLIENT_COLUMNS} FROM clients WHERE tenant = ? AND client_id = ?",  # noqa: S608
                (tenant, client_id),
            ).fetchone()
        )
        return _client(row) if row else None

    async def list_clients(self, tenant: str) -> list[ClientRecord]:
        rows = await self._reader.run(
            lambda c: c.execute(
                f"SELECT {_CLIENT_COLUMNS} FROM clients WHERE tenant = ? ORDER BY client_id",  # noqa: S608
                (tenant,),
            ).fetchall()
        )
        return [_client(r) for r in rows]

    async def set_client_secret(self, tenant: str, client_id: str, secret_hash: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE clients SET secret_hash = ?"
                " WHERE tenant = ? AND client_id = ? AND revoked_at IS NULL",
                (secret_hash, tenant, client_id),
            )
            return cur.rowcount == 1

        return await self._writer.run(lambda c: _write(c, op))

    async def revoke_client(self, tenant: str, client_id: str, at: datetime) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE clients SET revoked_at = ?"
                " WHERE tenant = ? AND client_id = ? AND revoked_at IS NULL",
                (at.isoformat(), tenant, client_id),
            )
            return cur.rowcount == 1

        return await self._writer.run(lambda c: _write(c, op))

    async def touch_client(self, tenant: str, client_id: str, at: datetime) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE clients SET last_used_at = ? WHERE tenant = ? AND client_id = ?",
                (at.isoformat(), tenant, client_id),
            )

        await self._writer.run(lambda c: _write(c, op))


_CLIENT_COLUMNS = (
    "tenant, client_id, name, secret_hash, scopes, created_at, last_used_at, revoked_at"
)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _from_iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def _tenant(row: tuple[Any, ...]) -> TenantRecord:
    slug, config, created_at, updated_at, revision = row
    return TenantRecord(
        slug=slug,
        config=json.loads(config),
        created_at=datetime.fromisoformat(created_at),
        updated_at=datetime.fromisoformat(updated_at),
        revision=revision,
    )


def _client(row: tuple[Any, ...]) -> ClientRecord:
    tenant, client_id, name, secret_hash, scopes, created_at, last_used_at, revoked_at = row
    return ClientRecord(
        client_id=client_id,
        tenant=tenant,
        name=name,
        secret_hash=secret_hash,
        scopes=tuple(json.loads(scopes)),
        created_at=datetime.fromisoformat(created_at),
        last_used_at=_from_iso(last_used_at),
        revoked_at=_from_iso(revoked_at),
    )
