"""MongoDB: the number ledger, and the settling of the journals allocations leave.

An allocation with riders (``storage.mongo``) pushes them, fully formed, into its
counter document's ``pending`` journal; ``MongoLedger`` copies them into ``ledger`` and
into their idempotency keys, then pulls them from the journal, and every ledger read
first settles what is pending for its sequence. The pure conversions here build the
journal items, the queries that read a reservation past its expiry as expired, and
turn documents back into entries.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import BulkWriteError

from storage.base import EXPIRED, RESERVED, Counter, LedgerCounts, LedgerEntry, Rider
from storage.errors import StoreUnavailable
from storage.mongo_base import MongoBase, _aware, _key, _maybe_aware


def journal(
    tenant: str, shape: Counter, tick: int, riders: Sequence[Rider]
) -> list[dict[str, Any]]:
    """The riders of an increment whose first new tick is ``tick``, as journal items."""
    journal: list[dict[str, Any]] = []
    for rider in riders:
        first, last = shape.value_at(tick), shape.value_at(tick + rider.n - 1)
        entries: list[dict[str, Any]] = []
        if rider.ledger is not None:
            for i in range(rider.n):
                e = rider.ledger.entry(shape.value_at(tick + i))
                entries.append(
                    {
                        "_id": f"{tenant}/{e.sequence}/{e.period}/{e.value}",
                        "tenant": tenant,
                        "seq": e.sequence,
                        "period": e.period,
                        "value": e.value,
                        "formatted": e.formatted,
                        "state": e.state,
                        "actor": e.actor,
                        "issued_at": e.issued_at,
                        "reference": e.reference,
                        "expires_at": e.expires_at,
                        "reservation": e.reservation,
                        "closed_at": None,
                        "closed_by": None,
                        "reason": None,
                    }
                )
        note = {**rider.note, "first": first, "last": last} if rider.idempotency_key else None
        journal.append({"t": tick, "entries": entries, "key": rider.idempotency_key, "note": note})
        tick += rider.n
    return journal


def state_query(states: Collection[str], now: datetime) -> list[dict[str, Any]]:
    """``$or`` clauses for entries in ``states`` as of ``now`` (see LedgerEntry.as_of)."""
    clauses: list[dict[str, Any]] = []
    for state in states:
        if state == RESERVED:
            clauses.append({"state": RESERVED, "expires_at": {"$gt": now}})
        elif state == EXPIRED:
            clauses.append({"state": EXPIRED})
            clauses.append({"state": RESERVED, "expires_at": {"$lte": now}})
        else:
            clauses.append({"state": state})
    return clauses or [{"_id": {"$exists": False}}]


def entry(doc: dict[str, Any]) -> LedgerEntry:
    return LedgerEntry(
        sequence=doc["seq"],
        period=doc["period"],
        value=int(doc["value"]),
        formatted=doc.get("formatted"),
        state=doc["state"],
        actor=doc["actor"],
        issued_at=_aware(doc["issued_at"]),
        reference=doc.get("reference"),
        expires_at=_maybe_aware(doc.get("expires_at")),
        reservation=doc.get("reservation"),
        closed_at=_maybe_aware(doc.get("closed_at")),
        closed_by=doc.get("closed_by"),
        reason=doc.get("reason"),
    )


class MongoLedger(MongoBase):
    async def _start_ledger(self) -> None:
        ledger_order = [("tenant", ASCENDING), ("seq", ASCENDING), ("period", ASCENDING)]
        await self._call(self.ledger.create_index([*ledger_order, ("value", ASCENDING)]))
        await self._call(
            self.ledger.create_index(
                [("tenant", ASCENDING), ("seq", ASCENDING), ("reservation", ASCENDING)]
            )
        )

    async def _settle_journal(
        self, tenant: str, doc_id: str, journal: list[dict[str, Any]]
    ) -> None:
        entries = [e for item in journal for e in item["entries"]]
        if entries:
            try:
                await self._call(self.ledger.insert_many(entries, ordered=False))
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if any(e.get("code") != 11000 for e in errors):
                    raise StoreUnavailable("MongoDB refused ledger entries") from exc
        for item in journal:
            if item["key"] is not None:
                await self._call(
                    self.idempotency.update_one(
                        _key(tenant, item["key"]),
                        {"$set": {"allocation": item["note"]}},
                    )
                )
        ticks = [item["t"] for item in journal]
        await self._call(
            self.counters.update_one(
                {"_id": doc_id, "tenant": tenant}, {"$pull": {"pending": {"t": {"$in": ticks}}}}
            )
        )

    async def _settle_key(self, tenant: str, key: str) -> bool:
        """Finish what allocations under the Idempotency-Key ``key`` left in their
        counters' journals (the numbers they took, noted on the key); True if any."""
        cursor = self.counters.find({"tenant": tenant, "pending.key": key})
        settled = False
        for doc in await self._call(cursor.to_list(length=None)):
            mine = [item for item in doc["pending"] if item["key"] == key]
            if mine:
                await self._settle_journal(tenant, doc["_id"], mine)
                settled = True
        return settled

    async def _settle(self, tenant: str, seq: str) -> None:
        """Finish what crashed allocations of ``seq`` left in their counters' journals."""
        cursor = self.counters.find({"tenant": tenant, "seq": seq, "pending.0": {"$exists": True}})
        for doc in await self._call(cursor.to_list(length=None)):
            await self._settle_journal(tenant, doc["_id"], list(doc["pending"]))

    # -- the number ledger -------------------------------------------------------------
    async def get_reservation(
        self, tenant: str, seq: str, reservation: str, *, now: datetime
    ) -> LedgerEntry | None:
        query = {"tenant": tenant, "seq": seq, "reservation": reservation}
        doc = await self._call(self.ledger.find_one(query))
        if doc is None:
            await self._settle(tenant, seq)
            doc = await self._call(self.ledger.find_one(query))
        return entry(doc).as_of(now) if doc else None

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
        changes: dict[str, Any] = {
            "state": state,
            "closed_at": at,
            "closed_by": actor,
            "reason": reason,
        }
        if reference is not None:
            changes["reference"] = reference
        query = {
            "tenant": tenant,
            "seq": seq,
            "reservation": reservation,
            "state": RESERVED,
            "expires_at": {"$gt": at},
        }
        for _ in range(2):
            doc = await self._call(
                self.ledger.find_one_and_update(
                    query, {"$set": changes}, return_document=ReturnDocument.AFTER
                )
            )
            if doc is not None:
                return entry(doc)
            await self._settle(tenant, seq)  # maybe still pending after a crash
        return None

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
        await self._settle(tenant, seq)
        query: dict[str, Any] = {"tenant": tenant, "seq": seq, "period": period}
        if after is not None:
            query["value"] = {"$gt": after}
        issued: dict[str, Any] = {}
        if since is not None:
            issued["$gte"] = since
        if until is not None:
            issued["$lt"] = until
        if issued:
            query["issued_at"] = issued
        if states is not None:
            query["$or"] = state_query(states, now)
        cursor = self.ledger.find(query).sort("value", ASCENDING).limit(limit)
        docs = await self._call(cursor.to_list(length=limit))
        return [entry(d).as_of(now) for d in docs]

    async def count_ledger(
        self, tenant: str, seq: str, *, period: str, now: datetime
    ) -> LedgerCounts:
        await self._settle(tenant, seq)
        base = {"tenant": tenant, "seq": seq, "period": period}
        states: dict[str, int] = {}
        for state in ("reserved", "committed", "voided", "expired"):
            query = {**base, "$or": state_query([state], now)}
            count = int(await self._call(self.ledger.count_documents(query)))
            if count:
                states[state] = count
        ends: list[int | None] = []
        for direction in (ASCENDING, -1):
            cursor = self.ledger.find(base).sort("value", direction).limit(1)
            docs = await self._call(cursor.to_list(length=1))
            ends.append(int(docs[0]["value"]) if docs else None)
        return LedgerCounts(first=ends[0], last=ends[1], states=states)
