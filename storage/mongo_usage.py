"""MongoDB: usage counts, one document per sequence and UTC hour.

``usage`` documents: _id = "<tenant>/<sequence>/<hour>".
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from storage.base import UsageRow
from storage.errors import UsagePartlyWritten
from storage.mongo_base import MongoBase, _aware


class MongoUsage(MongoBase):
    async def _start_usage(self) -> None:
        usage_index = [("tenant", ASCENDING), ("hour", ASCENDING), ("seq", ASCENDING)]
        await self._call(self.usage.create_index(usage_index))

    async def add_usage(self, tenant: str, rows: Sequence[UsageRow]) -> None:
        for done, row in enumerate(rows):
            try:
                await self._add_usage_row(tenant, row)
            except Exception as exc:
                raise UsagePartlyWritten(done, "MongoDB usage write failed") from exc

    async def _add_usage_row(self, tenant: str, row: UsageRow) -> None:
        hour = row.hour.astimezone(UTC)
        doc_id = f"{tenant}/{row.sequence}/{hour:%Y-%m-%dT%H}"
        update = {
            "$inc": {"requests": row.requests, "numbers": row.numbers},
            "$setOnInsert": {"tenant": tenant, "seq": row.sequence, "hour": hour},
        }
        for attempt in range(3):
            try:
                await self._call(
                    self.usage.update_one({"_id": doc_id, "tenant": tenant}, update, upsert=True)
                )
                return
            except DuplicateKeyError:  # two processes upserted the same new hour: re-run
                if attempt == 2:
                    raise

    async def read_usage(
        self, tenant: str, *, sequence: str | None, since: datetime, until: datetime
    ) -> list[UsageRow]:
        query: dict[str, Any] = {"tenant": tenant, "hour": {"$gte": since, "$lt": until}}
        if sequence is not None:
            query["seq"] = sequence
        cursor = self.usage.find(query).sort([("hour", ASCENDING), ("seq", ASCENDING)])
        docs = await self._call(cursor.to_list(length=None))
        return [
            UsageRow(d["seq"], _aware(d["hour"]), int(d["requests"]), int(d["numbers"]))
            for d in docs
        ]
