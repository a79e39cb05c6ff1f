"""MongoDB: the documents of the ledger, its journal and idempotency keys.

Pure conversions for ``storage.mongo``: the journal items an increment pushes into its
counter document (entries fully formed, so settling them is a plain copy), the queries
that read a reservation past its expiry as expired, and documents back to records.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any

from storage.base import EXPIRED, RESERVED, Counter, IdempotencyRecord, LedgerEntry, Rider


def _aware(value: datetime) -> datetime:
    # BSON dates come back naive (UTC) unless the client is tz_aware.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _aware_or_none(value: datetime | None) -> datetime | None:
    return _aware(value) if value is not None else None


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
        expires_at=_aware_or_none(doc.get("expires_at")),
        reservation=doc.get("reservation"),
        closed_at=_aware_or_none(doc.get("closed_at")),
        closed_by=doc.get("closed_by"),
        reason=doc.get("reason"),
    )


def idempotency(doc: dict[str, Any]) -> IdempotencyRecord:
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
