"""MongoDB: the audit trail, numbered per tenant (older ObjectId documents included)."""

from __future__ import annotations

from bson import ObjectId
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from storage.base import AuditEntry, audit_id, audit_number
from storage.errors import InvalidCursor
from storage.mongo_base import MongoBase, _aware, _doc_id, _key


class MongoAudit(MongoBase):
    async def _start_audit(self) -> None:
        await self._call(self.audit.create_index([("tenant", ASCENDING), ("_id", ASCENDING)]))
        # No two entries of a tenant share a number. Partial: documents an older version
        # wrote have none until _number_legacy_audit gives them one.
        await self._call(
            self.audit.create_index(
                [("tenant", ASCENDING), ("seq", ASCENDING)],
                unique=True,
                partialFilterExpression={"seq": {"$gt": 0}},
            )
        )
        # Finds those unnumbered documents (seq: null) without scanning the trail.
        await self._call(
            self.audit.create_index([("tenant", ASCENDING), ("seq", ASCENDING), ("_id", ASCENDING)])
        )

    # -- audit trail ---------------------------------------------------------
    # ``audit`` documents: _id = "<tenant>/<audit_id>", seq = the entry's number in its
    # tenant's trail. A number is taken by writing the entry that has it: one after the
    # tenant's highest, and on a duplicate key (another entry took it since) the next.
    # So an entry exists before any later number is taken: a reader paging with
    # ``after`` never passes a number whose entry is still being written, as it did
    # when numbers came from a counter first and the entries were written after (a
    # later entry could land first). A failed write takes no number.
    # Documents older versions wrote have ObjectId ids (time + a per-process counter,
    # which told a tenant how busy the others were); each is numbered, in ObjectId order,
    # before a new entry of its tenant is numbered or its trail is read. Older versions
    # numbered from the tenant's ``audit_counters`` document (_id "<tenant>/audit"),
    # which is kept at the highest number so they still can during a rolling upgrade.
    async def _last_audit_number(self, tenant: str) -> int:
        last = await self._call(
            self.audit.find_one(
                {"tenant": tenant, "seq": {"$gt": 0}}, {"seq": 1}, sort=[("seq", -1)]
            )
        )
        return 0 if last is None else int(last["seq"])

    async def _took_audit_number(self, tenant: str, number: int) -> None:
        for attempt in range(3):
            try:
                await self._call(
                    self.audit_counters.update_one(
                        _key(tenant, "audit"), {"$max": {"n": number}}, upsert=True
                    )
                )
                return
            except DuplicateKeyError:  # two processes upserted the tenant's first entry
                if attempt == 2:
                    raise

    async def _number_legacy_audit(self, tenant: str) -> None:
        while True:
            unnumbered = self.audit.find({"tenant": tenant, "seq": None}, {"_id": 1})
            docs = await self._call(unnumbered.sort("_id", ASCENDING).limit(100).to_list(100))
            for d in docs:
                # One at a time, each only while it is still unnumbered, so the numbers
                # keep the ObjectId order when two processes number them at once.
                number = await self._last_audit_number(tenant)
                while True:
                    number += 1
                    try:
                        done = await self._call(
                            self.audit.update_one(
                                {"_id": d["_id"], "tenant": tenant, "seq": None},
                                {"$set": {"seq": number}},
                            )
                        )
                    except DuplicateKeyError:  # the number is taken: the next one
                        continue
                    if done.modified_count:  # else another process numbered it
                        await self._took_audit_number(tenant, number)
                    break
            if len(docs) < 100:
                return

    async def append_audit(self, tenant: str, entry: AuditEntry) -> str:
        await self._number_legacy_audit(tenant)
        number = await self._last_audit_number(tenant)
        while True:
            number += 1
            entry_id = audit_id(number)
            try:
                await self._call(
                    self.audit.insert_one(
                        {
                            "_id": _doc_id(tenant, entry_id),
                            "tenant": tenant,
                            "seq": number,
                            "at": entry.at,
                            "actor": entry.actor,
                            "client_id": entry.client_id,
                            "action": entry.action,
                            "target": entry.target,
                            "before": entry.before,
                            "after": entry.after,
                        }
                    )
                )
            except DuplicateKeyError:  # an entry written since the read took it
                continue
            await self._took_audit_number(tenant, number)
            return entry_id

    async def list_audit(self, tenant: str, *, after: str | None, limit: int) -> list[AuditEntry]:
        number = 0 if after is None else audit_number(after)
        if number is None and not ObjectId.is_valid(after):
            raise InvalidCursor(after)
        await self._number_legacy_audit(tenant)
        if number is None:
            # An older version's cursor (an ObjectId): after the last entry it could have
            # shown up to it. Entries written since have string ids, outside the range.
            last = await self._call(
                self.audit.find_one(
                    {"tenant": tenant, "_id": {"$lte": ObjectId(after)}, "seq": {"$gt": 0}},
                    {"seq": 1},
                    sort=[("_id", -1)],
                )
            )
            number = 0 if last is None else int(last["seq"])
        query = {"tenant": tenant, "seq": {"$gt": number}}
        cursor = self.audit.find(query).sort("seq", ASCENDING).limit(limit)
        docs = await self._call(cursor.to_list(length=limit))
        return [
            AuditEntry(
                id=audit_id(d["seq"]),
                tenant=d["tenant"],
                at=_aware(d["at"]),
                actor=d["actor"],
                client_id=d["client_id"],
                action=d["action"],
                target=d["target"],
                before=d.get("before"),
                after=d.get("after"),
            )
            for d in docs
        ]
