"""Bigtable: usage counts, one row per UTC hour and sequence.

Rows ``<tenant>#use#<yyyymmddhh>#<sequence>``: the hour leads, so a time window is one
range scan; requests and numbers are int64 cells added to by ReadModifyWriteRow.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from google.cloud.bigtable.data.read_modify_write_rules import IncrementRule

from storage.base import UsageRow
from storage.bigtable_base import BigtableBase, _after
from storage.bigtable_rows import COUNTS, cells, key, u64
from storage.errors import UsagePartlyWritten


def _hour_key(hour: datetime) -> str:
    h = hour.astimezone(UTC)
    return f"{h.year:04d}{h.month:02d}{h.day:02d}{h.hour:02d}"


class BigtableUsage(BigtableBase):
    # -- usage -------------------------------------------------------------------------
    async def add_usage(self, tenant: str, rows: Sequence[UsageRow]) -> None:
        for done, row in enumerate(rows):
            try:
                await self._add_usage_row(tenant, row)
            except Exception as exc:
                raise UsagePartlyWritten(done, "Bigtable usage write failed") from exc

    async def _add_usage_row(self, tenant: str, row: UsageRow) -> None:
        # ReadModifyWriteRow adds atomically, so concurrent flushes never lose counts. It
        # is not retried: a flush whose outcome is unknown is reported, not doubled.
        await self._call(
            self.table.read_modify_write_row(
                key(tenant, "use", f"{_hour_key(row.hour)}#{row.sequence}"),
                [
                    IncrementRule(COUNTS, b"r", row.requests),
                    IncrementRule(COUNTS, b"n", row.numbers),
                ],
            )
        )

    async def read_usage(
        self, tenant: str, *, sequence: str | None, since: datetime, until: datetime
    ) -> list[UsageRow]:
        if until <= since:
            return []
        base = key(tenant, "use")
        # Up to the keys of the hour holding until's last instant (not "until + 1 hour",
        # which is past datetime's range in the year 9999's last hour).
        last = _hour_key(until - timedelta(microseconds=1))
        rows = await self._scan(base + _hour_key(since).encode(), _after(base + last.encode()))
        out: list[UsageRow] = []
        for row in rows:
            hour_text, name = row.row_key[len(base) :].decode().split("#", 1)
            hour = datetime.strptime(hour_text, "%Y%m%d%H").replace(tzinfo=UTC)
            if not since <= hour < until or (sequence is not None and name != sequence):
                continue
            got = cells(row)
            out.append(UsageRow(name, hour, u64(got.get(b"r", b"")), u64(got.get(b"n", b""))))
        return out
