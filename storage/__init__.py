"""The only package that talks to a database.

Every function takes the tenant as its first argument, so a call that forgets tenant
scoping does not type-check. ``open_store`` picks the backend from ``TALLY_STORE_URL``.
"""

from storage.base import (
    COMMITTED,
    EXPIRED,
    PLATFORM,
    RESERVED,
    STATES,
    VOIDED,
    AuditEntry,
    ClientRecord,
    Counter,
    IdempotencyRecord,
    Increment,
    LedgerCounts,
    LedgerDraft,
    LedgerEntry,
    Rider,
    SequenceRecord,
    Store,
    TenantRecord,
    UsageRow,
)
from storage.errors import AlreadyExists, InvalidCursor, StoreUnavailable
from storage.factory import open_store

__all__ = [
    "COMMITTED",
    "EXPIRED",
    "PLATFORM",
    "RESERVED",
    "STATES",
    "VOIDED",
    "AlreadyExists",
    "AuditEntry",
    "ClientRecord",
    "Counter",
    "IdempotencyRecord",
    "Increment",
    "InvalidCursor",
    "LedgerCounts",
    "LedgerDraft",
    "LedgerEntry",
    "Rider",
    "SequenceRecord",
    "Store",
    "StoreUnavailable",
    "TenantRecord",
    "UsageRow",
    "open_store",
]
