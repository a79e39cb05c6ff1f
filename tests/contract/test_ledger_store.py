"""The ledger contract, on every backend: entries ride on the increment, reservations
close once, reads see expiry from its instant, listings and counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from storage import (
    COMMITTED,
    EXPIRED,
    RESERVED,
    VOIDED,
    Counter,
    IdempotencyRecord,
    LedgerDraft,
    Rider,
    Store,
)
from tests.contract.test_store import define

# The real present (millisecond precision, as BSON keeps it): idempotency keys expire
# by the wall clock on MongoDB.
NOW = datetime.now(UTC).replace(microsecond=0)
SHAPE = Counter(base=100, step=10, cap=1000)


@pytest.fixture(autouse=True)
async def sequences(store: Store) -> None:
    """Counters are founded only while their definition exists."""
    if not getattr(store, "atomic_riders", False):
        pytest.skip(f"{store.kind} keeps no ledger (refused at creation: tests/ledger)")
    for tenant in ("acme", "globex"):
        await define(store, tenant, "inv", "plain")


def draft(state: str = COMMITTED, **fields: object) -> LedgerDraft:
    values: dict[str, object] = {
        "sequence": "inv",
        "period": "",
        "state": state,
        "actor": "alice",
        "issued_at": NOW,
        "render": lambda v: f"INV-{v}",
    }
    values.update(fields)
    return LedgerDraft(**values)  # type: ignore[arg-type]


def reservation(rid: str, ttl: float = 900, **fields: object) -> Rider:
    return Rider(
        1, draft(RESERVED, reservation=rid, expires_at=NOW + timedelta(seconds=ttl), **fields)
    )


async def test_every_number_of_an_allocation_gets_its_entry(store: Store) -> None:
    riders = [Rider(2, draft(reference="a")), Rider(1), Rider(3, draft(reference="c"))]
    assert await store.allocate("acme", "inv", "inv", SHAPE, 6, riders=riders) == 6
    entries = await store.list_ledger("acme", "inv", period="", now=NOW, limit=100)
    assert [(e.value, e.formatted, e.reference) for e in entries] == [
        (100, "INV-100", "a"),
        (110, "INV-110", "a"),
        (130, "INV-130", "c"),
        (140, "INV-140", "c"),
        (150, "INV-150", "c"),
    ]  # 120 went to a rider without a ledger draft
    first = entries[0]
    assert (first.state, first.actor, first.issued_at, first.sequence) == (
        COMMITTED,
        "alice",
        NOW,
        "inv",
    )
    assert await store.read_counter("acme", "inv") == Counter(100, 10, 1000, 6)


async def test_riders_must_add_up_to_the_allocation(store: Store) -> None:
    with pytest.raises(ValueError):
        await store.allocate("acme", "inv", "inv", SHAPE, 3, riders=[Rider(2, draft())])
    assert await store.read_counter("acme", "inv") is None


async def test_a_refused_allocation_writes_no_entry(store: Store) -> None:
    await store.allocate("acme", "inv", "inv", SHAPE, 1, riders=[Rider(1, draft())])
    stale = Counter(base=1, step=1, cap=1000)
    assert await store.allocate("acme", "inv", "inv", stale, 1, riders=[Rider(1, draft())]) is None
    assert (
        await store.allocate("acme", "inv", "inv", SHAPE, 1000, riders=[Rider(1000, draft())])
        is None
    )
    missing = await store.allocate(
        "acme", "new", "inv", SHAPE, 1, create=False, riders=[Rider(1, draft())]
    )
    assert missing is None
    assert len(await store.list_ledger("acme", "inv", period="", now=NOW, limit=100)) == 1


async def test_an_idempotency_key_records_what_it_took(store: Store) -> None:
    record = IdempotencyRecord("k", "fp", NOW, NOW + timedelta(days=1), NOW + timedelta(minutes=1))
    assert await store.claim_idempotency("acme", record) is None
    riders = [Rider(2), Rider(3, idempotency_key="k", note={"period": ""})]
    await store.allocate("acme", "plain", "plain", SHAPE, 5, riders=riders)
    held = await store.claim_idempotency("acme", record)
    assert held is not None and held.allocation == {"period": "", "first": 120, "last": 140}
    # A key that holds numbers is never released: a retry must not take new ones.
    await store.release_idempotency("acme", "k")
    assert await store.claim_idempotency("acme", record) is not None


async def test_a_reservation_commits_once(store: Store) -> None:
    await store.allocate(
        "acme", "inv", "inv", SHAPE, 1, riders=[reservation("r1", reference="draft-7")]
    )
    got = await store.get_reservation("acme", "inv", "r1", now=NOW)
    assert got is not None and (got.state, got.value, got.reference) == (RESERVED, 100, "draft-7")
    at = NOW + timedelta(seconds=5)
    done = await store.close_reservation(
        "acme", "inv", "r1", state=COMMITTED, at=at, actor="bob", reference="INV-100", reason=None
    )
    assert done is not None
    assert (done.state, done.closed_at, done.closed_by, done.reference) == (
        COMMITTED,
        at,
        "bob",
        "INV-100",
    )
    again = await store.close_reservation(
        "acme", "inv", "r1", state=VOIDED, at=at, actor="bob", reference=None, reason="x"
    )
    assert again is None
    assert await store.get_reservation("acme", "inv", "r1", now=at) == done


async def test_a_void_keeps_the_reference_and_records_the_reason(store: Store) -> None:
    await store.allocate("acme", "inv", "inv", SHAPE, 1, riders=[reservation("r1", reference="d")])
    voided = await store.close_reservation(
        "acme", "inv", "r1", state=VOIDED, at=NOW, actor="bob", reference=None, reason="cancelled"
    )
    assert voided is not None and (voided.state, voided.reason, voided.reference) == (
        VOIDED,
        "cancelled",
        "d",
    )


async def test_a_reservation_reads_as_expired_from_its_expiry_on(store: Store) -> None:
    await store.allocate("acme", "inv", "inv", SHAPE, 1, riders=[reservation("r1", ttl=60)])
    expiry = NOW + timedelta(seconds=60)
    before = await store.get_reservation(
        "acme", "inv", "r1", now=expiry - timedelta(milliseconds=1)
    )
    assert before is not None and before.state == RESERVED
    after = await store.get_reservation("acme", "inv", "r1", now=expiry)
    assert after is not None
    assert (after.state, after.reason, after.closed_at) == (EXPIRED, "expired", expiry)
    late = await store.close_reservation(
        "acme", "inv", "r1", state=COMMITTED, at=expiry, actor="bob", reference=None, reason=None
    )
    assert late is None
    [entry] = await store.list_ledger(
        "acme", "inv", period="", now=expiry, states=[EXPIRED], limit=9
    )
    assert entry.value == 100
    assert (
        await store.list_ledger("acme", "inv", period="", now=expiry, states=[RESERVED], limit=9)
        == []
    )
    counts = await store.count_ledger("acme", "inv", period="", now=expiry)
    assert counts.states == {EXPIRED: 1}


async def test_reservations_are_scoped_by_tenant_and_sequence(store: Store) -> None:
    await store.allocate("acme", "inv", "inv", SHAPE, 1, riders=[reservation("r1")])
    assert await store.get_reservation("globex", "inv", "r1", now=NOW) is None
    assert await store.get_reservation("acme", "other", "r1", now=NOW) is None
    assert (
        await store.close_reservation(
            "globex", "inv", "r1", state=VOIDED, at=NOW, actor="x", reference=None, reason="x"
        )
        is None
    )
    kept = await store.get_reservation("acme", "inv", "r1", now=NOW)
    assert kept is not None and kept.state == RESERVED


async def test_the_ledger_pages_filters_and_counts(store: Store) -> None:
    later = NOW + timedelta(hours=1)
    await store.allocate("acme", "inv", "inv", SHAPE, 3, riders=[Rider(3, draft())])
    await store.allocate("acme", "inv", "inv", SHAPE, 1, riders=[reservation("r1", ttl=10)])
    await store.allocate(
        "acme", "inv", "inv", SHAPE, 1, riders=[reservation("r2", issued_at=later)]
    )
    await store.allocate("acme", "inv", "inv", SHAPE, 1, riders=[reservation("r3")])
    await store.close_reservation(
        "acme", "inv", "r3", state=VOIDED, at=NOW, actor="bob", reference=None, reason="typo"
    )
    await store.allocate(
        "acme", "inv/2026", "inv", SHAPE, 1, riders=[Rider(1, draft(period="2026"))]
    )
    await store.allocate("globex", "inv", "inv", SHAPE, 2, riders=[Rider(2, draft())])
    now = NOW + timedelta(seconds=30)  # r1 has expired
    page = await store.list_ledger("acme", "inv", period="", now=now, limit=2)
    assert [e.value for e in page] == [100, 110]
    rest = await store.list_ledger("acme", "inv", period="", now=now, after=110, limit=10)
    assert [(e.value, e.state) for e in rest] == [
        (120, COMMITTED),
        (130, EXPIRED),
        (140, RESERVED),
        (150, VOIDED),
    ]
    gaps = await store.list_ledger(
        "acme", "inv", period="", now=now, states=[RESERVED, VOIDED, EXPIRED], limit=10
    )
    assert [e.value for e in gaps] == [130, 140, 150]
    window = await store.list_ledger("acme", "inv", period="", now=now, since=later, limit=10)
    assert [e.value for e in window] == [140]
    early = await store.list_ledger("acme", "inv", period="", now=now, until=later, limit=10)
    assert [e.value for e in early] == [100, 110, 120, 130, 150]
    counts = await store.count_ledger("acme", "inv", period="", now=now)
    assert (counts.first, counts.last) == (100, 150)
    assert counts.states == {COMMITTED: 3, EXPIRED: 1, RESERVED: 1, VOIDED: 1}
    other_period = await store.list_ledger("acme", "inv", period="2026", now=now, limit=10)
    assert [e.period for e in other_period] == ["2026"]
    assert (await store.count_ledger("initech", "inv", period="", now=now)).states == {}
    empty = await store.count_ledger("acme", "nothing", period="", now=now)
    assert (empty.first, empty.last, empty.states) == (None, None, {})


async def test_deleting_a_tenant_with_data_drops_its_ledger(store: Store) -> None:
    from tests.contract.test_tenant_store import make_tenant

    await store.create_tenant("acme", make_tenant("acme"))
    await store.allocate("acme", "inv", "inv", SHAPE, 1, riders=[Rider(1, draft())])
    await store.allocate("globex", "inv", "inv", SHAPE, 1, riders=[Rider(1, draft())])
    assert await store.delete_tenant("acme")
    assert await store.list_ledger("acme", "inv", period="", now=NOW, limit=9) == []
    assert len(await store.list_ledger("globex", "inv", period="", now=NOW, limit=9)) == 1


async def test_no_entry_without_a_live_definition(store: Store) -> None:
    ghost = await store.allocate(
        "acme", "ghost", "ghost", SHAPE, 1, riders=[Rider(1, draft(sequence="ghost"))]
    )
    assert ghost is None
    assert await store.read_counter("acme", "ghost") is None
    assert await store.list_ledger("acme", "ghost", period="", now=NOW, limit=9) == []
