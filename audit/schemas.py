"""Response bodies of the audit API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from storage import AuditEntry

# The tenant slug a token's `tid` may carry (see auth.tokens).
TENANT_PATTERN = r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$"


class AuditEntryOut(BaseModel):
    id: str = Field(
        description="The entry's number in its tenant's trail, 19 digits; pass the last one"
        " as ?after= for the next page."
    )
    at: datetime
    tenant: str
    actor: str = Field(description="The `sub` of the token that made the change.")
    client_id: str
    action: str = Field(description="e.g. sequence.created, sequence.updated, ...")
    target: str = Field(description="What changed, e.g. sequences/invoices.")
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditEntryOut:
        return cls(
            id=entry.id,
            at=entry.at,
            tenant=entry.tenant,
            actor=entry.actor,
            client_id=entry.client_id,
            action=entry.action,
            target=entry.target,
            before=entry.before,
            after=entry.after,
        )


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    next_cursor: str | None = Field(description="Pass as ?after= to get the next page.")


def page(entries: list[AuditEntry], limit: int) -> AuditPage:
    cursor = entries[-1].id if len(entries) == limit else None
    return AuditPage(items=[AuditEntryOut.of(e) for e in entries], next_cursor=cursor)
