"""SQLite: the schema, and the migrations that bring an older version's file up to it.

``init`` runs on the writer's connection at ``start``: WAL, then in one write
transaction every table (the ledger's from ``storage.sqlite_ledger``), the columns
added since the first release, the numbering of audit entries written before they
were numbered per tenant, and the audit indexes that rely on it.
"""

from __future__ import annotations

import sqlite3

from storage import sqlite_ledger as ledger_sql
from storage.sqlite_connection import write

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


def init(conn: sqlite3.Connection, busy_timeout_ms: int) -> None:
    """Create or upgrade the schema (the writer's connection, outside a transaction;
    ``busy_timeout_ms``: how long to wait for another process's lock)."""
    conn.execute("PRAGMA journal_mode = WAL")
    # executescript() would COMMIT our BEGIN IMMEDIATE early; run statements singly.
    statements = [s for s in (_SCHEMA + ledger_sql.SCHEMA + _TENANT_SCHEMA).split(";") if s.strip()]

    def create(c: sqlite3.Connection) -> None:
        for statement in statements:
            c.execute(statement)
        _add_columns(c)
        _number_audit(c)
        for statement in _AUDIT_INDEXES:
            c.execute(statement)

    write(conn, create, busy_timeout_ms)


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
