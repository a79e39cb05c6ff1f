"""MongoDB: the registry, tenants and their API clients.

``tenants`` documents: _id = slug. ``clients``: _id = "<tenant>/<client_id>" (tenant ""
for platform-admin clients), so both stay keyed by tenant prefix.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from storage.base import ClientRecord, TenantRecord
from storage.errors import AlreadyExists
from storage.mongo_base import MongoBase, _aware, _doc_id, _key, _maybe_aware


class MongoRegistry(MongoBase):
    async def _start_tenants(self) -> None:
        await self._call(
            self.clients.create_index([("tenant", ASCENDING), ("client_id", ASCENDING)])
        )

    async def create_tenant(self, tenant: str, record: TenantRecord) -> None:
        doc = {
            "_id": tenant,
            "tenant": tenant,
            "config": record.config,
            "created_at": record.created_at,
            "updated_at": record.updated_at,
            "revision": record.revision,
        }
        try:
            await self._call(self.tenants.insert_one(doc))
        except DuplicateKeyError as exc:
            raise AlreadyExists(tenant) from exc

    async def get_tenant(self, tenant: str) -> TenantRecord | None:
        doc = await self._call(self.tenants.find_one({"_id": tenant, "tenant": tenant}))
        return _tenant(doc) if doc else None

    async def list_tenants(self, *, after: str | None, limit: int) -> list[TenantRecord]:
        query: dict[str, Any] = {"_id": {"$gt": after}} if after else {}
        cursor = self.tenants.find(query).sort("_id", ASCENDING).limit(limit)
        docs = await self._call(cursor.to_list(length=limit))
        return [_tenant(d) for d in docs]

    async def update_tenant(
        self, tenant: str, record: TenantRecord, *, expected_revision: int
    ) -> bool:
        result = await self._call(
            self.tenants.update_one(
                {"_id": tenant, "tenant": tenant, "revision": expected_revision},
                {
                    "$set": {
                        "config": record.config,
                        "updated_at": record.updated_at,
                        "revision": record.revision,
                    }
                },
            )
        )
        return bool(result.modified_count == 1)

    async def delete_tenant(self, tenant: str, *, with_data: bool = True) -> bool:
        # Several writes: the registry entry first, then what it owns; counters last and
        # only those whose definition is gone, so a delete cut short leaves nothing a
        # live sequence could use, and a retried delete (answering False) finishes it.
        result = await self._call(self.tenants.delete_one({"_id": tenant, "tenant": tenant}))
        await self._call(self.clients.delete_many({"tenant": tenant}))
        if with_data:
            await self._call(self.idempotency.delete_many({"tenant": tenant}))
            await self._call(self.sequences.delete_many({"tenant": tenant}))
            await self._purge(tenant)
            await self._call(self.ledger.delete_many({"tenant": tenant}))
        return bool(result.deleted_count == 1)

    # -- API clients ------------------------------------------------------------------
    async def create_client(self, tenant: str, record: ClientRecord) -> None:
        doc = {
            "_id": _doc_id(tenant, record.client_id),
            "tenant": tenant,
            "client_id": record.client_id,
            "name": record.name,
            "secret_hash": record.secret_hash,
            "scopes": list(record.scopes),
            "created_at": record.created_at,
            "last_used_at": record.last_used_at,
            "revoked_at": record.revoked_at,
        }
        try:
            await self._call(self.clients.insert_one(doc))
        except DuplicateKeyError as exc:
            raise AlreadyExists(record.client_id) from exc

    async def get_client(self, tenant: str, client_id: str) -> ClientRecord | None:
        doc = await self._call(self.clients.find_one(_key(tenant, client_id)))
        return _client(doc) if doc else None

    async def list_clients(self, tenant: str) -> list[ClientRecord]:
        cursor = self.clients.find({"tenant": tenant}).sort("client_id", ASCENDING)
        docs = await self._call(cursor.to_list(length=None))
        return [_client(d) for d in docs]

    async def set_client_secret(self, tenant: str, client_id: str, secret_hash: str) -> bool:
        result = await self._call(
            self.clients.update_one(
                {**_key(tenant, client_id), "revoked_at": None},
                {"$set": {"secret_hash": secret_hash}},
            )
        )
        return bool(result.modified_count == 1)

    async def revoke_client(self, tenant: str, client_id: str, at: datetime) -> bool:
        result = await self._call(
            self.clients.update_one(
                {**_key(tenant, client_id), "revoked_at": None},
                {"$set": {"revoked_at": at}},
            )
        )
        return bool(result.modified_count == 1)

    async def touch_client(self, tenant: str, client_id: str, at: datetime) -> None:
        await self._call(
            self.clients.update_one(_key(tenant, client_id), {"$set": {"last_used_at": at}})
        )


def _tenant(doc: dict[str, Any]) -> TenantRecord:
    return TenantRecord(
        slug=doc["_id"],
        config=dict(doc["config"]),
        created_at=_aware(doc["created_at"]),
        updated_at=_aware(doc["updated_at"]),
        revision=int(doc["revision"]),
    )


def _client(doc: dict[str, Any]) -> ClientRecord:
    return ClientRecord(
        client_id=doc["client_id"],
        tenant=doc["tenant"],
        name=doc["name"],
        secret_hash=doc["secret_hash"],
        scopes=tuple(doc["scopes"]),
        created_at=_aware(doc["created_at"]),
        last_used_at=_maybe_aware(doc.get("last_used_at")),
        revoked_at=_maybe_aware(doc.get("revoked_at")),
    )
