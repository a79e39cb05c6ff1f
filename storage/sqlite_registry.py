"""SQLite: the registry, tenants and their API clients, as plain statements.

Every function here returns an operation ``(conn) -> result`` for ``storage.sqlite``
to run on its writer (inside a transaction) or reader thread. Platform-admin clients
use tenant ``''``.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

from storage.base import ClientRecord, TenantRecord
from storage.errors import AlreadyExists
from storage.sqlite_connection import Op

_CLIENT_COLUMNS = (
    "tenant, client_id, name, secret_hash, scopes, created_at, last_used_at, revoked_at"
)


# -- tenants ---------------------------------------------------------------------------
def create_tenant(tenant: str, record: TenantRecord) -> Op[None]:
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

    return op


def get_tenant(tenant: str) -> Op[TenantRecord | None]:
    def op(conn: sqlite3.Connection) -> TenantRecord | None:
        row = conn.execute(
            "SELECT tenant, config, created_at, updated_at, revision FROM tenants WHERE tenant = ?",
            (tenant,),
        ).fetchone()
        return _tenant(row) if row else None

    return op


def list_tenants(*, after: str | None, limit: int) -> Op[list[TenantRecord]]:
    def op(conn: sqlite3.Connection) -> list[TenantRecord]:
        rows = conn.execute(
            "SELECT tenant, config, created_at, updated_at, revision FROM tenants"
            " WHERE tenant > ? ORDER BY tenant LIMIT ?",
            (after or "", limit),
        ).fetchall()
        return [_tenant(r) for r in rows]

    return op


def update_tenant(tenant: str, record: TenantRecord, *, expected_revision: int) -> Op[bool]:
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

    return op


def delete_tenant(tenant: str, *, with_data: bool) -> Op[bool]:
    owned = ("clients", "sequences", "counters", "idempotency", "ledger")
    tables = owned if with_data else ("clients",)

    def op(conn: sqlite3.Connection) -> bool:
        cur = conn.execute("DELETE FROM tenants WHERE tenant = ?", (tenant,))
        for table in tables:
            conn.execute(f"DELETE FROM {table} WHERE tenant = ?", (tenant,))  # noqa: S608
        return cur.rowcount == 1

    return op


# -- API clients -------------------------------------------------------------------------
def create_client(tenant: str, record: ClientRecord) -> Op[None]:
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

    return op


def get_client(tenant: str, client_id: str) -> Op[ClientRecord | None]:
    def op(conn: sqlite3.Connection) -> ClientRecord | None:
        row = conn.execute(
            f"SELECT {_CLIENT_COLUMNS} FROM clients WHERE tenant = ? AND client_id = ?",  # noqa: S608
            (tenant, client_id),
        ).fetchone()
        return _client(row) if row else None

    return op


def list_clients(tenant: str) -> Op[list[ClientRecord]]:
    def op(conn: sqlite3.Connection) -> list[ClientRecord]:
        rows = conn.execute(
            f"SELECT {_CLIENT_COLUMNS} FROM clients WHERE tenant = ? ORDER BY client_id",  # noqa: S608
            (tenant,),
        ).fetchall()
        return [_client(r) for r in rows]

    return op


def set_client_secret(tenant: str, client_id: str, secret_hash: str) -> Op[bool]:
    def op(conn: sqlite3.Connection) -> bool:
        cur = conn.execute(
            "UPDATE clients SET secret_hash = ?"
            " WHERE tenant = ? AND client_id = ? AND revoked_at IS NULL",
            (secret_hash, tenant, client_id),
        )
        return cur.rowcount == 1

    return op


def revoke_client(tenant: str, client_id: str, at: datetime) -> Op[bool]:
    def op(conn: sqlite3.Connection) -> bool:
        cur = conn.execute(
            "UPDATE clients SET revoked_at = ?"
            " WHERE tenant = ? AND client_id = ? AND revoked_at IS NULL",
            (at.isoformat(), tenant, client_id),
        )
        return cur.rowcount == 1

    return op


def touch_client(tenant: str, client_id: str, at: datetime) -> Op[None]:
    def op(conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE clients SET last_used_at = ? WHERE tenant = ? AND client_id = ?",
            (at.isoformat(), tenant, client_id),
        )

    return op


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
