"""The narrow store interface every backend implements, and the records it moves.

Numbering lives in *counters*. A counter is self-describing: it issues
``base + i * step`` for tick ``i`` in ``0 .. cap - 1`` and stores ``ticks``, how many
it has issued. An allocation of ``n`` is one conditional increment of ``ticks`` that
only applies while ``(base, step, cap)`` are what the caller computed with and
``ticks + n <= cap``; so a process holding stale settings, or a request that would
pass the bound, changes nothing and re-reads instead. Administrative moves
(advance, a new step, a cycle back to ``start``) replace the counter with a
compare-and-set on its whole state.

Incarnations. Every definition carries an ``incarnation``: an id unique to one creation
of its name (``""`` for definitions stored before incarnations existed). A counter
carries the incarnation of the definition it belongs to, and every operation on a
counter matches it, so a counter left behind by a deleted sequence (a first ``next``
racing the DELETE, a delete cut short on a backend without multi-document writes) is
never used by a sequence later created with the same name: to that sequence it is
"another shape", which the service replaces. A counter is only *created* (by
``allocate`` or ``replace_counter``) while the definition of its incarnation exists:
in the same transaction where the backend has them, otherwise checked right after the
write and undone if the definition is gone. Leftovers are removed by
``delete_sequence`` (which also cleans up after an earlier, half-done delete) and
``create_sequence``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Counter:
    base: int
    step: int
    cap: int
    ticks: int = 0
    # The incarnation of the sequence this counter belongs to (see the module docstring).
    incarnation: str = ""

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.base, self.step, self.cap)

    def bare(self) -> Counter:
        """This counter's shape and incarnation with nothing issued (what callers pass)."""
        return Counter(self.base, self.step, self.cap, 0, self.incarnation)

    @property
    def remaining(self) -> int:
        return self.cap - self.ticks

    def value_at(self, tick: int) -> int:
        return self.base + tick * self.step


@dataclass(slots=True)
class Increment:
    """One counter's conditional increment in a group commit (``Store.allocate_many``).

    The fields are ``Store.allocate``'s arguments, tenant first. Writes that must
    commit atomically with an increment (ledger entries, idempotency records) become
    fields of this record, applied by each backend inside the group's transaction
    right after the increment they belong to, and only if it applied.

    Not frozen, though nothing changes one once made: a request under a spread load
    makes one, and a frozen dataclass's ``__init__`` (``object.__setattr__`` a field)
    costs twice as much, ~0.6 µs more (docs/performance.md, 2026-12-04).
    """

    tenant: str
    key: str
    seq: str
    shape: Counter
    n: int
    create: bool = True
    # Written in the increment's own transaction, only if it applied (see ``Rider``).
    riders: tuple[Rider, ...] = ()


# Counters of one group commit in flight at once on a store without multi-document
# transactions: enough to fill a server's journal group commit, few enough not to
# queue hundreds of operations on the connection pool.
GROUP_CONCURRENCY = 32

AllocateOne = Callable[[Increment], Awaitable[int | None]]


async def allocate_concurrently(
    allocate: AllocateOne, items: Sequence[Increment], *, limit: int
) -> list[int | None]:
    """``allocate_many`` for a store without multi-document transactions.

    Each counter's increments run in flight with the others' (at most ``limit`` at
    once), a counter's own one after another in order. If any raised, this raises
    (the first error) once all have finished, so the caller hands out none of them.
    """
    results: list[int | None] = [None] * len(items)
    lanes: dict[tuple[str, str], list[int]] = {}
    for i, item in enumerate(items):
        lanes.setdefault((item.tenant, item.key), []).append(i)
    gate = asyncio.Semaphore(limit)

    async def lane(indexes: list[int]) -> None:
        async with gate:
            for i in indexes:
                results[i] = await allocate(items[i])

    outcomes = await asyncio.gather(*(lane(ix) for ix in lanes.values()), return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return results


@dataclass(frozen=True, slots=True)
class SequenceRecord:
    name: str
    config: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    revision: int = 1
    # Unique to this creation of the name; set by the caller of ``create_sequence`` and
    # never changed afterwards (``update_sequence`` leaves it alone).
    incarnation: str = ""


@dataclass(frozen=True, slots=True)
class UsageRow:
    """Numbers issued from one sequence in one UTC hour: ``next`` calls and numbers."""

    sequence: str
    hour: datetime  # aware, UTC, on the hour
    requests: int
    numbers: int


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One administrative change: who did what to which target, before and after."""

    at: datetime
    actor: str
    client_id: str
    action: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    # Assigned by the store: the entry's number in its tenant's trail (``audit_id``),
    # an opaque cursor that sorts in insertion order.
    id: str = ""
    tenant: str = ""


# Audit ids on every backend: the entry's number in its own tenant's trail (1, 2, 3 ...),
# zero-padded to 19 digits (int64) so that text order is trail order. A per-tenant
# number reveals nothing about other tenants' or the platform's activity, as a global
# autoincrement id or an ObjectId (time + per-process counter) did. Ids older versions
# issued are shorter or hexadecimal, so a backend can tell an old cursor from a new one.
_AUDIT_ID = re.compile(r"[0-9]{19}")
_INT64_MAX = 2**63 - 1


def audit_id(number: int) -> str:
    """The id of a tenant's ``number``-th audit entry."""
    return f"{number:019d}"


def audit_number(cursor: str) -> int | None:
    """The trail number of an ``audit_id``, or None if ``cursor`` is not one."""
    if not _AUDIT_ID.fullmatch(cursor):
        return None
    # 19 digits run past int64, which no store can hold or compare a number with.
    number = int(cursor)
    return number if number <= _INT64_MAX else None


# -- tenants and API clients (tenants/) -------------------------------------------
@dataclass(frozen=True, slots=True)
class TenantRecord:
    """A registered tenant; ``config`` holds everything but the keys and times."""

    slug: str
    config: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    revision: int = 1


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """An OAuth client; ``tenant`` is ``""`` for platform-admin clients."""

    client_id: str
    tenant: str
    name: str
    secret_hash: str
    scopes: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """One ``Idempotency-Key`` of a tenant: the request it stands for and, once done,
    the response it got.

    ``locked_until`` bounds how long a claim counts as *in flight*: a process that died
    mid-request leaves a claim that another may take over after it. ``allocation`` is
    what an allocation carrying this key wrote in its own transaction (``{"first",
    "last"}``), so a crash between the increment and ``complete_idempotency`` still
    leaves the numbers the key consumed on record.
    """

    key: str
    fingerprint: str
    created_at: datetime
    expires_at: datetime
    locked_until: datetime
    status: int | None = None
    body: bytes | None = None
    content_type: str | None = None
    allocation: dict[str, Any] | None = None

    @property
    def completed(self) -> bool:
        return self.status is not None


# -- the number ledger (ledger/) --------------------------------------------------
RESERVED, COMMITTED, VOIDED, EXPIRED = "reserved", "committed", "voided", "expired"
STATES = (RESERVED, COMMITTED, VOIDED, EXPIRED)


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """The one record of one number issued by a ledger sequence.

    A reservation past ``expires_at`` is stored as ``reserved`` until something closes
    it; every read shows it as ``expired`` from that instant (``as_of``), so no reader
    depends on a sweep having run.
    """

    sequence: str
    period: str  # "" for a sequence that never resets
    value: int
    formatted: str | None
    state: str
    actor: str
    issued_at: datetime
    reference: str | None = None
    expires_at: datetime | None = None
    reservation: str | None = None
    closed_at: datetime | None = None
    closed_by: str | None = None
    reason: str | None = None

    def as_of(self, now: datetime) -> LedgerEntry:
        if self.state == RESERVED and self.expires_at is not None and self.expires_at <= now:
            return replace(self, state=EXPIRED, closed_at=self.expires_at, reason=EXPIRED)
        return self


@dataclass(frozen=True, slots=True)
class LedgerDraft:
    """The entry each number of one request gets; the store fills in value and formatted.

    ``render`` is pure (the sequence's template at the request's local time), so the
    store may call it inside its transaction.
    """

    sequence: str
    period: str
    state: str  # RESERVED or COMMITTED
    actor: str
    issued_at: datetime
    render: Callable[[int], str | None]
    reference: str | None = None
    expires_at: datetime | None = None
    reservation: str | None = None  # only for a request of one number

    def entry(self, value: int) -> LedgerEntry:
        return LedgerEntry(
            sequence=self.sequence,
            period=self.period,
            value=value,
            formatted=self.render(value),
            state=self.state,
            actor=self.actor,
            issued_at=self.issued_at,
            reference=self.reference,
            expires_at=self.expires_at,
            reservation=self.reservation,
        )


@dataclass(frozen=True, slots=True)
class Rider:
    """What one request of an allocation writes besides the increment, atomically with it.

    An allocation of ``n`` may carry one rider per request it serves (a coalesced
    flight carries many), in arrival order, their ``n`` adding up to the allocation's:
    rider ``i`` gets the numbers after those of riders ``0..i-1``. ``ledger`` makes one
    entry per number; ``idempotency_key`` records ``{**note, "first", "last"}`` as the
    ``allocation`` of that key's (already claimed) record.
    """

    n: int
    ledger: LedgerDraft | None = None
    idempotency_key: str | None = None
    note: Mapping[str, Any] = field(default_factory=dict)

    @property
    def writes(self) -> bool:
        return self.ledger is not None or self.idempotency_key is not None


@dataclass(frozen=True, slots=True)
class LedgerCounts:
    """A ledger period at a glance: lowest and highest number, entries per state."""

    first: int | None
    last: int | None
    states: dict[str, int]


PLATFORM = ""  # the tenant key of platform-admin clients: never a valid slug


class Store(Protocol):
    """What the services need from a database; nothing more.

    A backend that writes ``allocate``'s riders atomically with the increment sets the
    class attribute ``atomic_riders = True`` (SQLite, MongoDB). Without it (read with
    ``getattr(store, "atomic_riders", False)``) the service refuses ledger sequences at
    creation (422) and sends no riders, so an idempotency key then protects a retry
    only once its response is stored.
    """

    kind: str

    async def start(self) -> None:
        """Create tables/indexes; safe to call from several processes at once."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the store answers."""

    # -- sequence definitions ------------------------------------------------
    async def create_sequence(self, tenant: str, record: SequenceRecord) -> None:
        """Insert; raise ``AlreadyExists`` if the name is taken.

        Counters of the name left by earlier incarnations may be removed here.
        """

    async def get_sequence(self, tenant: str, name: str) -> SequenceRecord | None: ...

    async def get_sequences(self, tenant: str, names: Sequence[str]) -> dict[str, SequenceRecord]:
        """The definitions of ``names`` that exist, in one read (missing names are left
        out); what the services' definition cache refreshes a tenant's names with."""
        ...

    async def list_sequences(
        self, tenant: str, *, after: str | None, limit: int
    ) -> list[SequenceRecord]:
        """Names in ascending order, strictly after ``after``."""
        ...

    async def update_sequence(
        self, tenant: str, record: SequenceRecord, *, expected_revision: int
    ) -> bool:
        """Replace config/updated_at/revision if the stored revision matches."""
        ...

    async def delete_sequence(
        self, tenant: str, name: str, *, incarnation: str | None = None
    ) -> bool:
        """Delete the definition and its counters; False if it did not exist.

        With ``incarnation``, only that incarnation of ``name``: False (and nothing
        deleted) if the name was deleted and created again since it was read.

        Atomic where the backend allows; otherwise the definition goes first, so a
        half-done delete leaves only counters of a dead incarnation (never used). Such
        leftovers of ``name`` are removed on every call, also when it answers False.
        """
        ...

    # -- counters -------------------------------------------------------------
    async def read_counter(self, tenant: str, key: str) -> Counter | None: ...

    async def read_counters(self, tenant: str, keys: Sequence[str]) -> dict[str, Counter]:
        """The counters of ``keys`` that exist, in one read (missing keys are left out)."""
        ...

    async def allocate(
        self,
        tenant: str,
        key: str,
        seq: str,
        shape: Counter,
        n: int,
        *,
        create: bool = True,
        riders: Sequence[Rider] = (),
    ) -> int | None:
        """Add ``n`` to ticks iff the counter has ``shape`` and room; return the new ticks.

        ``shape`` includes the incarnation, which must match too. A missing counter is
        created with ``shape`` (ticks ``n``) when ``create`` and the definition ``seq``
        of ``shape.incarnation`` exists; callers pass ``create=False`` unless ``shape``
        comes from a definition they just read, so a cached, outdated shape can never
        found a counter. ``None`` means nothing changed: no such counter (and no
        ``create``, or no such definition), another shape or incarnation, or too few
        ticks left.

        ``riders`` (see ``Rider``) are written atomically with the increment: after a
        crash at any point, either the increment and all its riders' ledger entries and
        idempotency notes are there, or none of them. A backend that cannot keep that
        refuses ledger sequences at creation instead.
        """
        ...

    async def allocate_many(self, items: Sequence[Increment]) -> list[int | None]:
        """Group commit: every item's ``allocate`` in order, all durable at once or none.

        Each result is what ``allocate`` would have returned for that item had the
        items run one after another, so an item that misses (exhausted, another shape)
        changes nothing and fails only itself. A store failure raises and applies none
        where the store has multi-document transactions (SQLite: one ``BEGIN
        IMMEDIATE`` ... ``COMMIT``, one fsync); MongoDB runs the items concurrently
        (bounded) and raises if any failed, after all have finished, so that the
        caller hands out none of them (an applied one is then a gap).
        """
        ...

    async def replace_counter(
        self, tenant: str, key: str, seq: str, expected: Counter | None, new: Counter
    ) -> bool:
        """Compare-and-set the whole counter (``expected=None``: it must not exist).

        ``expected`` is matched with its incarnation; ``new`` is only written while the
        definition ``seq`` of ``new.incarnation`` exists (else False).
        """
        ...

    # -- usage ------------------------------------------------------------------
    async def add_usage(self, tenant: str, rows: Sequence[UsageRow]) -> None:
        """Add each row's ``requests`` and ``numbers`` to its (sequence, hour) totals.

        SQLite: one transaction (one fsync for a whole flush of the tenant). Stores
        without multi-document transactions add the rows in order and, if one fails,
        raise ``UsagePartlyWritten`` with how many were added before it.
        """
        ...

    async def read_usage(
        self, tenant: str, *, sequence: str | None, since: datetime, until: datetime
    ) -> list[UsageRow]:
        """Totals of hours in ``[since, until)``, by hour then sequence (one or all)."""
        ...

    # -- audit trail ----------------------------------------------------------
    async def append_audit(self, tenant: str, entry: AuditEntry) -> str:
        """Append an entry (``id``/``tenant`` of ``entry`` are ignored); return its id.

        The id is ``audit_id(n)``, ``n`` counting the tenant's own entries only: larger
        than every earlier id of the tenant, and independent of other tenants' writes.
        """
        ...

    async def list_audit(self, tenant: str, *, after: str | None, limit: int) -> list[AuditEntry]:
        """Entries in insertion order, strictly after the id ``after``.

        Raise ``InvalidCursor`` if ``after`` is not an id this backend could have made
        (an id an older version of this backend issued still continues where it was).
        """
        ...

    # -- the number ledger (ledger/) ---------------------------------------------
    # Entries are written by ``allocate``'s riders only; these read and close them.
    # Reads take ``now`` so a reservation past its expiry reads as expired (as_of).
    async def get_reservation(
        self, tenant: str, seq: str, reservation: str, *, now: datetime
    ) -> LedgerEntry | None:
        """The entry of a reservation id of this tenant's sequence ``seq``."""
        ...

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
        """Move a reservation that is ``reserved`` and not expired at ``at`` to ``state``
        (``COMMITTED`` or ``VOIDED``), in one conditional write; ``reference`` replaces the
        stored one unless ``None``. ``None`` if it did not apply (unknown id, or closed)."""
        ...

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
        """Entries of one period in number order, strictly after the value ``after``,
        issued in ``[since, until)``, in the given states (as of ``now``)."""
        ...

    async def count_ledger(
        self, tenant: str, seq: str, *, period: str, now: datetime
    ) -> LedgerCounts:
        """Lowest and highest value of a period and its entries per state (as of ``now``)."""
        ...

    # -- idempotency keys (idempotency/) -------------------------------------------
    async def claim_idempotency(
        self, tenant: str, record: IdempotencyRecord
    ) -> IdempotencyRecord | None:
        """Insert ``record`` unless the tenant holds a live record of its key.

        Return ``None`` when this call claimed the key (a record whose ``expires_at``
        is at or before ``record.created_at`` counts as absent and is replaced), else
        the existing record, unchanged.
        """
        ...

    async def relock_idempotency(
        self, tenant: str, key: str, *, expected: datetime, locked_until: datetime
    ) -> bool:
        """Take over an abandoned claim: set ``locked_until`` iff it still is ``expected``
        and the record is not completed."""
        ...

    async def complete_idempotency(
        self, tenant: str, key: str, *, status: int, body: bytes, content_type: str
    ) -> None:
        """Store the response of the key's request (replays answer it from now on)."""

    async def release_idempotency(self, tenant: str, key: str) -> None:
        """Forget a claim that is neither completed nor holds an ``allocation`` (its
        request failed having consumed nothing: a retry runs again)."""

    async def sweep_idempotency(self, now: datetime) -> int:
        """Delete every tenant's records that expired before ``now``; return how many.

        SQLite needs it (the service calls it now and then); MongoDB's TTL index on
        ``expires_at`` deletes them on its own, so there it only speeds that up.
        """
        ...

    # -- tenants (the registry) ------------------------------------------------
    async def create_tenant(self, tenant: str, record: TenantRecord) -> None:
        """Insert; raise ``AlreadyExists`` if the slug is taken."""

    async def get_tenant(self, tenant: str) -> TenantRecord | None: ...

    async def list_tenants(self, *, after: str | None, limit: int) -> list[TenantRecord]:
        """Slugs in ascending order, strictly after ``after`` (platform-wide)."""
        ...

    async def update_tenant(
        self, tenant: str, record: TenantRecord, *, expected_revision: int
    ) -> bool:
        """Replace config/updated_at/revision if the stored revision matches."""
        ...

    async def delete_tenant(self, tenant: str, *, with_data: bool = True) -> bool:
        """Delete the tenant and its clients, and (``with_data``) its sequences and
        counters; False if the tenant was unknown."""
        ...

    # -- API clients --------------------------------------------------------------
    async def create_client(self, tenant: str, record: ClientRecord) -> None:
        """Insert; raise ``AlreadyExists`` if the client id is taken."""

    async def get_client(self, tenant: str, client_id: str) -> ClientRecord | None: ...

    async def list_clients(self, tenant: str) -> list[ClientRecord]:
        """The tenant's clients (``PLATFORM`` for admin clients), by client id."""
        ...

    async def set_client_secret(self, tenant: str, client_id: str, secret_hash: str) -> bool:
        """Replace the secret hash of a client that is not revoked."""
        ...

    async def revoke_client(self, tenant: str, client_id: str, at: datetime) -> bool:
        """Mark revoked (once); False if unknown or already revoked."""
        ...

    async def touch_client(self, tenant: str, client_id: str, at: datetime) -> None:
        """Record a successful authentication."""
