"""Bigtable: the audit trail.

Entries are rows ``<tenant>#aud#<id>``, so ids sort in insertion order and listing is
one range scan after the cursor. A number is taken by creating its entry's row (a
CheckAndMutateRow that writes only a row with no cells): one past the highest number
the tenant's ``<tenant>#meta`` row notes, and the next while a row exists. An entry is
thus in place before any later number is taken, so a reader paging with ``after``
never passes one still being written, as it could when a ReadModifyWriteRow counter
handed out the number first and the row was written after (a later entry could land
first). A failed write takes no number.
"""

from __future__ import annotations

from storage.base import AuditEntry, audit_id, audit_number
from storage.bigtable_base import DOC, BigtableBase, _after, _set
from storage.bigtable_rows import (
    COUNTS,
    at_least,
    cells,
    doc,
    i64,
    key,
    prefix,
    replace_cell,
    u64,
    undoc,
    unwhen,
    when,
)
from storage.errors import InvalidCursor

_AUD = b"aud"


class BigtableAudit(BigtableBase):
    # -- audit trail ---------------------------------------------------------------------
    async def append_audit(self, tenant: str, entry: AuditEntry) -> str:
        # The meta row's number is a hint that may lag (a writer that failed between its
        # entry and the note): taken numbers are skipped. It is the tenant's own row, so
        # no other tenant's writes move it, and it only grows, so older versions, which
        # increment it for their next number, number past it in a rolling upgrade.
        meta = f"{prefix(tenant)}meta".encode()
        noted = (await self._read(meta)).get(_AUD)
        number = 0 if noted is None else u64(noted)
        body = doc(
            {
                "at": when(entry.at),
                "actor": entry.actor,
                "client_id": entry.client_id,
                "action": entry.action,
                "target": entry.target,
                "before": entry.before,
                "after": entry.after,
            }
        )
        while True:
            number += 1
            entry_id = audit_id(number)
            if await self._create(key(tenant, "aud", entry_id), _set(DOC, body)):
                break
        await self._call(
            self.table.check_and_mutate_row(
                meta,
                at_least(COUNTS, _AUD, i64(number)),
                false_case_mutations=replace_cell(COUNTS, _AUD, i64(number)),
            )
        )
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
