"""Bigtable: the audit trail.

Entries are rows ``<tenant>#aud#<id>``, numbered by a ReadModifyWriteRow counter in the
tenant's own ``<tenant>#meta`` row, so ids sort in insertion order and listing is one
range scan after the cursor.
"""

from __future__ import annotations

from google.cloud.bigtable.data.read_modify_write_rules import IncrementRule

from storage.base import AuditEntry, audit_id, audit_number
from storage.bigtable_base import DOC, BigtableBase, _after, _set
from storage.bigtable_rows import COUNTS, cells, doc, key, prefix, u64, undoc, unwhen, when
from storage.errors import InvalidCursor


class BigtableAudit(BigtableBase):
    # -- audit trail ---------------------------------------------------------------------
    async def append_audit(self, tenant: str, entry: AuditEntry) -> str:
        # Numbers from a per-tenant ReadModifyWriteRow counter (the tenant's own row, so
        # no other tenant's writes move it): they sort in insertion order. A write that
        # fails after the increment leaves a gap in this tenant's numbers, nothing more.
        got = await self._call(
            self.table.read_modify_write_row(
                f"{prefix(tenant)}meta".encode(), IncrementRule(COUNTS, b"aud", 1)
            )
        )
        entry_id = audit_id(u64(cells(got)[b"aud"]))
        body = {
            "at": when(entry.at),
            "actor": entry.actor,
            "client_id": entry.client_id,
            "action": entry.action,
            "target": entry.target,
            "before": entry.before,
            "after": entry.after,
        }
        await self._call(self.table.mutate_row(key(tenant, "aud", entry_id), _set(DOC, doc(body))))
        return entry_id

    async def list_audit(self, tenant: str, *, after: str | None, limit: int) -> list[AuditEntry]:
        if after is not None and audit_number(after) is None:
            raise InvalidCursor(after)
        base = key(tenant, "aud")
        rows = await self._scan(
            base + (after or "").encode(), _after(base), start_inclusive=after is None, limit=limit
        )
        entries = []
        for row in rows:
            d = undoc(cells(row)[DOC])
            at = unwhen(d["at"])
            assert at is not None
            entries.append(
                AuditEntry(
                    id=row.row_key[len(base) :].decode(),
                    tenant=tenant,
                    at=at,
                    actor=d["actor"],
                    client_id=d["client_id"],
                    action=d["action"],
                    target=d["target"],
                    before=d["before"],
                    after=d["after"],
                )
            )
        return entries
