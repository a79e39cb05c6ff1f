"""SQLite: a database from before per-tenant audit ids is numbered per tenant on
``tally migrate`` (``Store.start``), and the cursors the old version issued still work."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from ops.migrate import migrate
from storage.admin import SQLiteAdmin
from storage.sqlite import SQLiteStore
from tests.contract.test_store import make_entry

# The audit table as the released version created it: one id for every tenant.
OLD_AUDIT = """
CREATE TABLE audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant      TEXT    NOT NULL,
    at          TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    client_id   TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    before_json TEXT,
    after_json  TEXT
);
CREATE INDEX audit_by_tenant ON audit (tenant, id);
"""
OLD_INSERT = (
    "INSERT INTO audit (id, tenant, at, actor, client_id, action, target, before_json,"
    " after_json) VALUES (?, ?, '2026-03-01T12:00:00+00:00', 'alice', 'c', ?, 't', ?, NULL)"
)
# (global id, tenant, action): ids with gaps, tenants interleaved, the platform among them.
OLD_ROWS = [
    (3, "acme", "a0"),
    (4, "globex", "g0"),
    (7, "", "p0"),
    (9, "acme", "a1"),
    (10, "globex", "g1"),
    (11, "globex", "g2"),
    (15, "acme", "a2"),
]


def n(number: int) -> str:
    return f"{number:019d}"


def old_database(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(OLD_AUDIT)
    for row_id, tenant, action in OLD_ROWS:
        conn.execute(OLD_INSERT, (row_id, tenant, action, json.dumps({"id": row_id})))
    conn.commit()
    conn.close()


async def migrated(path: Path) -> SQLiteStore:
    store, admin = SQLiteStore(path), SQLiteAdmin(path)
    try:
        await migrate(store, admin, database="tally")
    finally:
        await admin.close()
    return store


async def test_old_entries_are_numbered_per_tenant_in_id_order(tmp_path: Path) -> None:
    path = tmp_path / "tally.db"
    old_database(path)
    store = await migrated(path)
    try:
        acme = await store.list_audit("acme", after=None, limit=10)
        assert [(e.id, e.action) for e in acme] == [(n(1), "a0"), (n(2), "a1"), (n(3), "a2")]
        assert [e.before for e in acme] == [{"id": 3}, {"id": 9}, {"id": 15}]  # rows intact
        globex = await store.list_audit("globex", after=None, limit=10)
        assert [(e.id, e.action) for e in globex] == [(n(1), "g0"), (n(2), "g1"), (n(3), "g2")]
        assert [e.id for e in await store.list_audit("", after=None, limit=10)] == [n(1)]
        # New entries continue each tenant's count, whoever else writes in between.
        assert await store.append_audit("globex", make_entry("g3")) == n(4)
        assert await store.append_audit("acme", make_entry("a3")) == n(4)
        assert await store.append_audit("", make_entry("p1")) == n(2)
    finally:
        await store.close()
    # A second migrate (or any restart) renumbers nothing.
    again = await migrated(path)
    try:
        acme = await again.list_audit("acme", after=None, limit=10)
        assert [(e.id, e.action) for e in acme] == [(n(i + 1), f"a{i}") for i in range(4)]
    finally:
        await again.close()


async def test_a_cursor_the_old_version_issued_continues_where_it_was(tmp_path: Path) -> None:
    path = tmp_path / "tally.db"
    old_database(path)
    store = await migrated(path)
    try:
        await store.append_audit("globex", make_entry("g3"))
        await store.append_audit("acme", make_entry("a3"))

        async def after(cursor: str) -> list[str]:
            return [e.action for e in await store.list_audit("acme", after=cursor, limit=10)]

        assert await after("3") == ["a1", "a2", "a3"]  # acme's first old id
        assert await after("9") == ["a2", "a3"]
        assert await after("10") == ["a2", "a3"]  # another tenant's old id: a place in time
        assert await after("15") == ["a3"]
        # Past the old ids, every number answers alike: the global ids of entries written
        # since (18 and 19 here) cannot be probed through old-style cursors.
        for probe in range(15, 40):
            assert await after(str(probe)) == ["a3"], probe
    finally:
        await store.close()


async def test_an_old_version_writing_beside_this_one_gets_the_next_number(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tally.db"
    old_database(path)
    store = await migrated(path)
    try:
        await store.append_audit("acme", make_entry("a3"))
        # The released code's INSERT, from another process that has not been upgraded yet.
        conn = sqlite3.connect(path)
        cur = conn.execute(
            "INSERT INTO audit (tenant, at, actor, client_id, action, target, before_json,"
            " after_json) VALUES ('acme', '2026-03-01T12:00:00+00:00', 'bob', 'c', 'a4', 't',"
            " NULL, NULL)"
        )
        old_id = cur.lastrowid
        conn.commit()
        conn.close()
        assert await store.append_audit("acme", make_entry("a5")) == n(6)
        acme = await store.list_audit("acme", after=None, limit=10)
        assert [(e.id, e.action) for e in acme][3:] == [(n(4), "a3"), (n(5), "a4"), (n(6), "a5")]
        # The id the old process answered with works as a cursor here.
        assert [e.action for e in await store.list_audit("acme", after=str(old_id), limit=10)] == [
            "a5"
        ]
    finally:
        await store.close()
