"""Bigtable: the registry, tenants and their API clients.

Tenants are rows ``!tenant#<slug>``, a range of their own, so listing tenants never
scans their data; deleting one removes its registry row, then its data range by range.
Clients are rows ``<tenant>#cli#<client_id>`` (``!platform#cli#…`` for platform-admin
clients), their secret hash and revoked/used times in cells of their own, so a
revocation or a rotation is a compare-and-set on ``revoked`` alone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from storage.base import ClientRecord, TenantRecord
from storage.bigtable_base import DOC, REV, BigtableBase, _after, _set, _versioned
from storage.bigtable_rows import (
    RECORDS,
    REGISTRY,
    cells,
    doc,
    equals,
    key,
    u64,
    undoc,
    unwhen,
    when,
)
from storage.errors import AlreadyExists

HASH, REVOKED, USED = b"hash", b"revoked", b"used"


class BigtableRegistry(BigtableBase):
    # -- tenants (registry) ----------------------------------------------------------------
    async def create_tenant(self, tenant: str, record: TenantRecord) -> None:
        if not await self._create(f"{REGISTRY}{tenant}".encode(), _versioned(record)):
            raise AlreadyExists(tenant)

    async def get_tenant(self, tenant: str) -> TenantRecord | None:
        row = await self._read(f"{REGISTRY}{tenant}".encode())
        return _tenant(tenant, row) if DOC in row else None

    async def list_tenants(self, *, after: str | None, limit: int) -> list[TenantRecord]:
        base = REGISTRY.encode()
        rows = await self._scan(
            base + (after or "").encode(), _after(base), start_inclusive=not after, limit=limit
        )
        return [_tenant(r.row_key[len(base) :].decode(), cells(r)) for r in rows]

    async def update_tenant(
        self, tenant: str, record: TenantRecord, *, expected_revision: int
    ) -> bool:
        return await self._update_versioned(
            f"{REGISTRY}{tenant}".encode(), record, expected_revision
        )

    async def delete_tenant(self, tenant: str, *, with_data: bool = True) -> bool:
        existed = await self._delete(f"{REGISTRY}{tenant}".encode())
        kinds = ["cli", "seq", "ctr", "idem"] if with_data else ["cli"]
        for kind in kinds:
            start = key(tenant, kind)
            await self._delete_range(start, _after(start))
        return existed

    # -- API clients ---------------------------------------------------------------------
    async def create_client(self, tenant: str, record: ClientRecord) -> None:
        body = {
            "name": record.name,
            "scopes": list(record.scopes),
            "created_at": when(record.created_at),
        }
        mutations = [
            *_set(DOC, doc(body)),
            *_set(HASH, record.secret_hash.encode()),
            *_set(REVOKED, (when(record.revoked_at) or "").encode()),
            *_set(USED, (when(record.last_used_at) or "").encode()),
        ]
        if not await self._create(key(tenant, "cli", record.client_id), mutations):
            raise AlreadyExists(record.client_id)

    async def get_client(self, tenant: str, client_id: str) -> ClientRecord | None:
        row = await self._read(key(tenant, "cli", client_id))
        return _client(tenant, client_id, row) if DOC in row else None

    async def list_clients(self, tenant: str) -> list[ClientRecord]:
        base = key(tenant, "cli")
        rows = await self._scan(base, _after(base))
        return [_client(tenant, r.row_key[len(base) :].decode(), cells(r)) for r in rows]

    async def _if_active(self, tenant: str, client_id: str, mutations: list[Any]) -> bool:
        return bool(
            await self._call(
                self.table.check_and_mutate_row(
                    key(tenant, "cli", client_id),
                    equals(RECORDS, REVOKED, b""),
                    true_case_mutations=mutations,
                )
            )
        )

    async def set_client_secret(self, tenant: str, client_id: str, secret_hash: str) -> bool:
        return await self._if_active(tenant, client_id, _set(HASH, secret_hash.encode()))

    async def revoke_client(self, tenant: str, client_id: str, at: datetime) -> bool:
        return await self._if_active(tenant, client_id, _set(REVOKED, (when(at) or "").encode()))

    async def touch_client(self, tenant: str, client_id: str, at: datetime) -> None:
        # Only an existing client: a plain write would found a row of its own.
        await self._call(
            self.table.check_and_mutate_row(
                key(tenant, "cli", client_id),
                None,
                true_case_mutations=_set(USED, (when(at) or "").encode()),
            )
        )


def _tenant(slug: str, row: dict[bytes, bytes]) -> TenantRecord:
    d = undoc(row[DOC])
    created, updated = unwhen(d["created_at"]), unwhen(d["updated_at"])
    assert created is not None and updated is not None
    return TenantRecord(slug, dict(d["config"]), created, updated, u64(row[REV]))


def _client(tenant: str, client_id: str, row: dict[bytes, bytes]) -> ClientRecord:
    d = undoc(row[DOC])
    created = unwhen(d["created_at"])
    assert created is not None
    return ClientRecord(
        client_id=client_id,
        tenant=tenant,
        name=d["name"],
        secret_hash=row.get(HASH, b"").decode(),
        scopes=tuple(d["scopes"]),
        created_at=created,
        last_used_at=unwhen(row.get(USED, b"").decode()),
        revoked_at=unwhen(row.get(REVOKED, b"").decode()),
    )
