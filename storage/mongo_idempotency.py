"""MongoDB: idempotency keys, one document each, expired by a TTL index.

``idempotency`` documents: _id = "<tenant>/<key>". The allocation a key's request made
is noted by the allocation itself (its rider, settled in ``storage.mongo_ledger``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from storage.base import IdempotencyRecord
from storage.errors import StoreUnavailable
from storage.mongo_base import MongoBase, _aware, _doc_id, _key


class MongoIdempotency(MongoBase):
    async def _start_idempotency(self) -> None:
        # MongoDB deletes expired keys itself (its TTL monitor runs about once a minute;
        # until then claim_idempotency treats them as absent).
        await self._call(self.idempotency.create_index("expires_at", expireAfterSeconds=0))

    async def claim_idempotency(
        self, tenant: str, record: IdempotencyRecord
    ) -> IdempotencyRecord | None:
        doc_id = _doc_id(tenant, record.key)
        doc = {
            "_id": doc_id,
            "tenant": tenant,
            "key": record.key,
            "fingerprint": record.fingerprint,
            "created_at": record.created_at,
            "expires_at": record.expires_at,
            "locked_until": record.locked_until,
            "status": None,
            "body": None,
            "content_type": None,
            "allocation": None,
        }
        for _ in range(8):
            try:
                await self._call(self.idempotency.insert_one(doc))
                return None
            except DuplicateKeyError:
                pass
            found = await self._call(self.idempotency.find_one({"_id": doc_id, "tenant": tenant}))
            if found is None:
                continue  # expired and deleted in between: insert again
            if _aware(found["expires_at"]) > record.created_at:
                return _idempotency(found)
            # Expired but not yet removed by the TTL monitor: replace it, unless another
            # request did so first.
            replaced = await self._call(
                self.idempotency.replace_one(
                    {"_id": doc_id, "tenant": tenant, "expires_at": found["expires_at"]}, doc
                )
            )
            if replaced.matched_count == 1:
                return None
        raise StoreUnavailable("The idempotency key is contended; try again.")

    async def relock_idempotency(
        self, tenant: str, key: str, *, expected: datetime, locked_until: datetime
    ) -> bool:
        result = await self._call(
            self.idempotency.update_one(
                {**_key(tenant, key), "locked_until": expected, "status": None},
                {"$set": {"locked_until": locked_until}},
            )
        )
        return bool(result.modified_count == 1)

    async def complete_idempotency(
        self, tenant: str, key: str, *, status: int, body: bytes, content_type: str
    ) -> None:
        await self._call(
            self.idempotency.update_one(
                _key(tenant, key),
                {"$set": {"status": status, "body": body, "content_type": content_type}},
            )
        )

    async def release_idempotency(self, tenant: str, key: str) -> None:
        await self._call(
            self.idempotency.delete_one({**_key(tenant, key), "status": None, "allocation": None})
        )

    async def sweep_idempotency(self, now: datetime) -> int:
        result = await self._call(self.idempotency.delete_many({"expires_at": {"$lte": now}}))
        return int(result.deleted_count)


def _idempotency(doc: dict[str, Any]) -> IdempotencyRecord:
    body = doc.get("body")
    return IdempotencyRecord(
        key=doc["key"],
        fingerprint=doc["fingerprint"],
        created_at=_aware(doc["created_at"]),
        expires_at=_aware(doc["expires_at"]),
        locked_until=_aware(doc["locked_until"]),
        status=doc.get("status"),
        body=None if body is None else bytes(body),
        content_type=doc.get("content_type"),
        allocation=doc.get("allocation"),
    )
