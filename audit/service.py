"""Recording and reading administrative changes.

Entries are appended after the change they describe has been stored. The store
offers no transaction across the two writes, so if the store fails in between, the
change stands and the caller gets a 503 for the audit write; it is never the other
way round (an entry for a change that did not happen).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from auth.schemas import TokenPrincipal
from core.clock import Clock, SystemClock
from core.errors import Unprocessable
from storage import AuditEntry, InvalidCursor, Store


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made a change: the token's ``sub`` and its OAuth client."""

    subject: str
    client_id: str = ""

    @classmethod
    def of(cls, principal: TokenPrincipal) -> Actor:
        return cls(subject=principal.subject, client_id=principal.client_id)


# Changes Tally makes on its own, e.g. the `default` sequence created by /getCounter.
SYSTEM = Actor(subject="tally", client_id="tally")


class AuditLog:
    def __init__(self, store: Store, *, clock: Clock | None = None) -> None:
        self.store = store
        self.clock = clock or SystemClock()

    def entry(
        self,
        tenant: str,
        actor: Actor,
        action: str,
        target: str,
        *,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> AuditEntry:
        """An entry stamped with the current instant (not yet written)."""
        return AuditEntry(
            at=self.clock.now(),
            actor=actor.subject,
            client_id=actor.client_id,
            action=action,
            target=target,
            before=before,
            after=after,
            tenant=tenant,
        )

    async def record(
        self,
        tenant: str,
        actor: Actor,
        action: str,
        target: str,
        *,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> AuditEntry:
        """Append one entry to the tenant's trail, stamped with the current instant."""
        entry = self.entry(tenant, actor, action, target, before=before, after=after)
        entry_id = await self.store.append_audit(tenant, entry)
        return replace(entry, id=entry_id)

    async def list(self, tenant: str, *, after: str | None, limit: int) -> list[AuditEntry]:
        """The tenant's entries, oldest first, strictly after the cursor ``after``."""
        try:
            return await self.store.list_audit(tenant, after=after, limit=limit)
        except InvalidCursor:
            raise Unprocessable("after: not a cursor from a previous page.") from None
