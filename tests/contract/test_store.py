"""One contract, every backend: SQLite file, mongomock-motor, real MongoDB (MONGODB_URI)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from storage import (
    AlreadyExists,
    AuditEntry,
    Counter,
    Increment,
    InvalidCursor,
    SequenceRecord,
    Store,
    UsageRow,
)

INT64_MAX = 2**63 - 1
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def make_record(name: str = "invoices", incarnation: str = "", **config: object) -> SequenceRecord:
    cfg = {"start": 1, "step": 1, **config}
    return SequenceRecord(
        name=name, config=cfg, created_at=NOW, updated_at=NOW, incarnation=incarnation
    )


async def define(store: Store, tenant: str, *names: str) -> None:
    """Definitions for counters to belong to (a counter is only founded for one)."""
    for name in names:
        await store.create_sequence(tenant, make_record(name))


async def test_create_then_get_round_trips(store: Store) -> None:
    await store.create_sequence("acme", make_record(format="INV-{n}"))
    got = await store.get_sequence("acme", "invoices")
    assert got is not None
    assert got.config == {"start": 1, "step": 1, "format": "INV-{n}"}
    assert got.created_at == NOW and got.revision == 1


async def test_create_twice_raises_already_exists(store: Store) -> None:
    await store.create_sequence("acme", make_record())
    with pytest.raises(AlreadyExists):
        await store.create_sequence("acme", make_record())


async def test_same_name_in_two_tenants_is_two_sequences(store: Store) -> None:
    await store.create_sequence("acme", make_record(start=1))
    await store.create_sequence("globex", make_record(start=500))
    acme, globex = (
        await store.get_sequence("acme", "invoices"),
        await store.get_sequence("globex", "invoices"),
    )
    assert acme and globex and acme.config["start"] == 1 and globex.config["start"] == 500
    assert await store.get_sequence("initech", "invoices") is None


async def test_list_pages_in_name_order_within_the_tenant(store: Store) -> None:
    for name in ["c", "a", "b", "d"]:
        await store.create_sequence("acme", make_record(name))
    await store.create_sequence("globex", make_record("aa"))
    first = await store.list_sequences("acme", after=None, limit=3)
    assert [r.name for r in first] == ["a", "b", "c"]
    rest = await store.list_sequences("acme", after="c", limit=3)
    assert [r.name for r in rest] == ["d"]


async def test_update_applies_only_at_the_expected_revision(store: Store) -> None:
    await store.create_sequence("acme", make_record())
    changed = SequenceRecord("invoices", {"start": 1, "step": 5}, NOW, NOW, revision=2)
    assert await store.update_sequence("acme", changed, expected_revision=1)
    assert not await store.update_sequence("acme", changed, expected_revision=1)
    got = await store.get_sequence("acme", "invoices")
    assert got and got.config["step"] == 5 and got.revision == 2


async def test_delete_removes_definition_and_counters(store: Store) -> None:
    await store.create_sequence("acme", make_record())
    await store.allocate("acme", "invoices", "invoices", Counter(1, 1, 100), 5)
    await store.allocate("acme", "invoices/2026", "invoices", Counter(1, 1, 100), 5)
    await define(store, "acme", "invoices-2")
    await store.allocate("acme", "invoices-2", "invoices-2", Counter(1, 1, 100), 5)
    assert await store.delete_sequence("acme", "invoices")
    assert await store.get_sequence("acme", "invoices") is None
    assert await store.read_counter("acme", "invoices") is None
    assert await store.read_counter("acme", "invoices/2026") is None
    assert await store.read_counter("acme", "invoices-2") is not None
    assert not await store.delete_sequence("acme", "invoices")


async def test_allocate_creates_then_increments(store: Store) -> None:
    await define(store, "acme", "k")
    shape = Counter(base=1, step=1, cap=1000)
    assert await store.allocate("acme", "k", "k", shape, 3) == 3
    assert await store.allocate("acme", "k", "k", shape, 2) == 5
    assert await store.read_counter("acme", "k") == Counter(1, 1, 1000, 5)


async def test_allocate_is_tenant_scoped(store: Store) -> None:
    await define(store, "acme", "k")
    await define(store, "globex", "k")
    shape = Counter(base=1, step=1, cap=1000)
    await store.allocate("acme", "k", "k", shape, 7)
    assert await store.allocate("globex", "k", "k", shape, 1) == 1
    assert await store.read_counter("globex", "k") == Counter(1, 1, 1000, 1)


async def test_get_sequences_returns_the_existing_definitions_of_this_tenant(
    store: Store,
) -> None:
    await store.create_sequence("acme", make_record("a", incarnation="i-a", format="A-{n}"))
    await store.create_sequence("acme", make_record("b.2", incarnation="i-b"))
    await store.create_sequence("globex", make_record("c"))
    got = await store.get_sequences("acme", ["a", "b.2", "c", "missing", "a"])
    assert got == {
        "a": await store.get_sequence("acme", "a"),
        "b.2": await store.get_sequence("acme", "b.2"),
    }
    assert got["a"].config == {"start": 1, "step": 1, "format": "A-{n}"}
    assert (got["a"].incarnation, got["b.2"].incarnation) == ("i-a", "i-b")
    assert await store.get_sequences("acme", []) == {}
    assert await store.get_sequences("initech", ["a"]) == {}
    assert await store.update_sequence(
        "acme",
        SequenceRecord("a", {"start": 1, "step": 2}, NOW, NOW, revision=2, incarnation="i-a"),
        expected_revision=1,
    )
    assert (await store.get_sequences("acme", ["a"]))["a"].revision == 2


async def test_read_counters_returns_the_existing_ones_of_this_tenant(store: Store) -> None:
    await define(store, "acme", "a", "b")
    await define(store, "globex", "c")
    await store.allocate("acme", "a", "a", Counter(1, 1, 1000), 3)
    await store.allocate("acme", "b/2026", "b", Counter(10, 5, 1000), 2)
    await store.allocate("globex", "c", "c", Counter(1, 1, 1000), 9)
    got = await store.read_counters("acme", ["a", "b/2026", "c", "missing", "a"])
    assert got == {"a": Counter(1, 1, 1000, 3), "b/2026": Counter(10, 5, 1000, 2)}
    assert await store.read_counters("acme", []) == {}
    many = [f"k{i}" for i in range(600)]  # more keys than a whole page of sequences
    for key in many[::100]:
        await define(store, "acme", key)
        await store.allocate("acme", key, key, Counter(1, 1, 1000), 1)
    assert sorted(await store.read_counters("acme", many)) == sorted(many[::100])


async def test_usage_adds_up_per_sequence_and_hour_within_the_tenant(store: Store) -> None:
    h10, h11, h12 = (datetime(2026, 3, 1, h, tzinfo=UTC) for h in (10, 11, 12))
    for tenant, row in [
        ("acme", UsageRow("a", h10, 2, 20)),
        ("acme", UsageRow("b", h10, 1, 1)),
        ("acme", UsageRow("a", h10, 3, 3)),
        ("acme", UsageRow("a", h11, 1, 5)),
        ("globex", UsageRow("a", h10, 7, 7)),
    ]:
        await store.add_usage(tenant, [row])
    got = await store.read_usage("acme", sequence=None, since=h10, until=h12)
    assert got == [UsageRow("a", h10, 5, 23), UsageRow("b", h10, 1, 1), UsageRow("a", h11, 1, 5)]
    assert all(r.hour.utcoffset() is not None for r in got)  # aware, so comparable
    only_a = await store.read_usage("acme", sequence="a", since=h11, until=h12)
    assert only_a == [UsageRow("a", h11, 1, 5)]  # since inclusive
    assert await store.read_usage("acme", sequence=None, since=h12, until=h12) == []
    assert await store.read_usage("initech", sequence=None, since=h10, until=h12) == []


async def test_usage_reads_up_to_the_last_hour_datetime_can_hold(store: Store) -> None:
    last = datetime(9999, 12, 31, 23, tzinfo=UTC)  # an hour past it is no datetime
    await store.add_usage(
        "acme", [UsageRow("a", last, 1, 4), UsageRow("a", last.replace(hour=22), 1, 1)]
    )
    assert await store.read_usage(
        "acme", sequence=None, since=last, until=datetime.max.replace(tzinfo=UTC)
    ) == [UsageRow("a", last, 1, 4)]
    assert await store.read_usage(
        "acme", sequence="a", since=last.replace(hour=20), until=last
    ) == [UsageRow("a", last.replace(hour=22), 1, 1)]


async def test_usage_rows_of_one_call_all_add_up(store: Store) -> None:
    h10 = datetime(2026, 3, 1, 10, tzinfo=UTC)
    rows = [UsageRow("a", h10, 1, 2), UsageRow("b", h10, 1, 1), UsageRow("a", h10, 2, 3)]
    await store.add_usage("acme", rows)
    await store.add_usage("acme", [])
    got = await store.read_usage("acme", sequence=None, since=h10, until=NOW)
    assert got == [UsageRow("a", h10, 3, 5), UsageRow("b", h10, 1, 1)]


async def test_concurrent_usage_additions_are_never_lost(store: Store) -> None:
    hour = datetime(2026, 3, 1, 10, tzinfo=UTC)
    await asyncio.gather(*(store.add_usage("acme", [UsageRow("a", hour, 1, 2)]) for _ in range(50)))
    assert await store.read_usage("acme", sequence="a", since=hour, until=NOW) == [
        UsageRow("a", hour, 50, 100)
    ]


async def test_allocate_with_a_stale_shape_changes_nothing(store: Store) -> None:
    await define(store, "acme", "k")
    await store.allocate("acme", "k", "k", Counter(1, 1, 10), 2)
    assert await store.allocate("acme", "k", "k", Counter(1, 2, 10), 1) is None
    assert await store.allocate("acme", "k", "k", Counter(5, 1, 10), 1) is None
    assert await store.read_counter("acme", "k") == Counter(1, 1, 10, 2)


async def test_allocate_past_cap_is_refused_whole(store: Store) -> None:
    await define(store, "acme", "k")
    shape = Counter(base=1, step=1, cap=10)
    assert await store.allocate("acme", "k", "k", shape, 8) == 8
    assert await store.allocate("acme", "k", "k", shape, 3) is None
    assert await store.allocate("acme", "k", "k", shape, 2) == 10
    assert await store.allocate("acme", "k", "k", shape, 1) is None
    assert await store.read_counter("acme", "k") == Counter(1, 1, 10, 10)


async def test_allocate_many_gives_each_item_what_allocate_would_in_order(store: Store) -> None:
    await define(store, "acme", "a", "b", "full", "stale")
    await define(store, "globex", "a")
    shape = Counter(base=1, step=1, cap=10)
    await store.allocate("acme", "full", "full", shape, 9)
    results = await store.allocate_many(
        [
            Increment("acme", "a", "a", shape, 3),
            Increment("globex", "a", "a", shape, 2),  # same key, another tenant
            Increment("acme", "a", "a", shape, 4),  # the same counter again: after the first
            Increment("acme", "full", "full", shape, 2),  # no room: fails alone
            Increment("acme", "stale", "stale", Counter(1, 2, 10), 1, create=False),
            Increment("acme", "b", "b", Counter(10, 5, 100), 1),
        ]
    )
    assert results == [3, 2, 7, None, None, 1]
    assert await store.read_counter("acme", "a") == Counter(1, 1, 10, 7)
    assert await store.read_counter("globex", "a") == Counter(1, 1, 10, 2)
    assert await store.read_counter("acme", "full") == Counter(1, 1, 10, 9)
    assert await store.read_counter("acme", "stale") is None
    assert await store.read_counter("acme", "b") == Counter(10, 5, 100, 1)
    assert await store.allocate_many([]) == []


async def test_allocation_near_int64_max_stays_exact(store: Store) -> None:
    await define(store, "acme", "big")
    base = INT64_MAX - 4
    shape = Counter(base=base, step=1, cap=5)
    assert await store.allocate("acme", "big", "big", shape, 4) == 4
    counter = await store.read_counter("acme", "big")
    assert counter == Counter(base, 1, 5, 4)
    assert isinstance(counter.base, int) and counter.value_at(3) == INT64_MAX - 1
    assert await store.allocate("acme", "big", "big", shape, 2) is None
    assert await store.allocate("acme", "big", "big", shape, 1) == 5
    final = await store.read_counter("acme", "big")
    assert final is not None and final.value_at(final.ticks - 1) == INT64_MAX


async def test_replace_counter_is_compare_and_set(store: Store) -> None:
    await define(store, "acme", "k")
    assert await store.replace_counter("acme", "k", "k", None, Counter(1, 1, 10, 0))
    assert not await store.replace_counter("acme", "k", "k", None, Counter(9, 1, 10, 0))
    current = Counter(1, 1, 10, 0)
    await store.allocate("acme", "k", "k", current, 4)
    assert not await store.replace_counter("acme", "k", "k", current, Counter(100, 1, 10, 0))
    now = Counter(1, 1, 10, 4)
    assert await store.replace_counter("acme", "k", "k", now, Counter(100, 1, 10, 0))
    assert await store.read_counter("acme", "k") == Counter(100, 1, 10, 0)


async def test_concurrent_allocations_never_overlap(store: Store) -> None:
    await define(store, "acme", "k")
    shape = Counter(base=1, step=1, cap=1_000_000)
    results = await asyncio.gather(
        *(store.allocate("acme", "k", "k", shape, 3) for _ in range(100))
    )
    assert all(r is not None for r in results)
    assert sorted(r for r in results if r is not None) == list(range(3, 301, 3))


async def test_concurrent_first_allocations_race_safely(store: Store) -> None:
    # Many callers creating the same counter at once: one creates, the rest retry.
    await define(store, "acme", "new")
    shape = Counter(base=1, step=1, cap=1000)
    results = await asyncio.gather(
        *(store.allocate("acme", "new", "new", shape, 1) for _ in range(20))
    )
    won = [r for r in results if r is not None]
    counter = await store.read_counter("acme", "new")
    assert counter is not None and counter.ticks == len(won)
    assert sorted(won) == list(range(1, len(won) + 1))


async def test_ping_answers(store: Store) -> None:
    await store.ping()


def make_entry(action: str = "sequence.created", **overrides: object) -> AuditEntry:
    fields: dict[str, object] = {
        "at": datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=UTC),
        "actor": "alice",
        "client_id": "acme-backoffice",
        "action": action,
        "target": "sequences/invoices",
        "before": None,
        "after": {"start": 1, "max": INT64_MAX, "format": "INV-{n}", "cycle": False},
    }
    fields.update(overrides)
    return AuditEntry(**fields)  # type: ignore[arg-type]


async def test_audit_round_trips_exactly(store: Store) -> None:
    before = {"next": INT64_MAX - 1, "nested": {"a": [1, None, "x"]}}
    entry_id = await store.append_audit("acme", make_entry(before=before))
    [got] = await store.list_audit("acme", after=None, limit=10)
    assert got.id == entry_id and got.tenant == "acme"
    assert got == make_entry(before=before, id=entry_id, tenant="acme")
    assert isinstance(got.after and got.after["max"], int)


async def test_audit_lists_in_insertion_order_and_pages_by_id(store: Store) -> None:
    ids = [await store.append_audit("acme", make_entry(f"a{i}")) for i in range(5)]
    first = await store.list_audit("acme", after=None, limit=3)
    assert [e.action for e in first] == ["a0", "a1", "a2"]
    assert [e.id for e in first] == ids[:3]
    rest = await store.list_audit("acme", after=first[-1].id, limit=3)
    assert [e.action for e in rest] == ["a3", "a4"]
    assert await store.list_audit("acme", after=ids[-1], limit=3) == []


async def test_audit_is_tenant_scoped(store: Store) -> None:
    await store.append_audit("acme", make_entry("mine"))
    globex_id = await store.append_audit("globex", make_entry("theirs"))
    assert [e.action for e in await store.list_audit("acme", after=None, limit=10)] == ["mine"]
    assert [e.tenant for e in await store.list_audit("globex", after=None, limit=10)] == ["globex"]
    # Another tenant's cursor reveals nothing.
    assert await store.list_audit("initech", after=globex_id, limit=10) == []


@pytest.mark.parametrize(
    "cursor", ["nope", "-1", "1.5", "", "9" * 40, "zz" * 12, "0" * 19 + "\n", "+1", " 1"]
)
async def test_audit_rejects_a_malformed_cursor(store: Store, cursor: str) -> None:
    await store.append_audit("acme", make_entry())
    with pytest.raises(InvalidCursor):
        await store.list_audit("acme", after=cursor, limit=10)


async def test_allocate_without_create_never_founds_a_counter(store: Store) -> None:
    await define(store, "acme", "k")
    shape = Counter(base=1, step=1, cap=1000)
    assert await store.allocate("acme", "k", "k", shape, 1, create=False) is None
    assert await store.read_counter("acme", "k") is None
    assert await store.allocate("acme", "k", "k", shape, 1, create=True) == 1
    assert await store.allocate("acme", "k", "k", shape, 1, create=False) == 2


async def test_a_batch_that_would_pass_int64_max_is_refused_whole(store: Store) -> None:
    # Bigtable's increment wraps silently past 2^63-1: the store must refuse, not wrap.
    await define(store, "acme", "k")
    full = Counter(base=1, step=1, cap=INT64_MAX)
    assert await store.replace_counter("acme", "k", "k", None, replace(full, ticks=INT64_MAX - 2))
    assert await store.allocate("acme", "k", "k", full, 5, create=False) is None
    assert await store.read_counter("acme", "k") == replace(full, ticks=INT64_MAX - 2)
    assert await store.allocate("acme", "k", "k", full, 2, create=False) == INT64_MAX
    assert await store.allocate("acme", "k", "k", full, 1, create=False) is None
    assert await store.read_counter("acme", "k") == replace(full, ticks=INT64_MAX)


async def test_concurrent_allocations_at_the_cap_hand_out_exactly_the_cap(store: Store) -> None:
    # Refused batches must not crowd out ones that fit: every tick below cap is handed
    # out exactly once, whatever the interleaving.
    await define(store, "acme", "k")
    shape = Counter(base=1, step=1, cap=50)
    sizes = [1, 2, 3, 5, 1, 4] * 8
    results = await asyncio.gather(*(store.allocate("acme", "k", "k", shape, n) for n in sizes))
    taken: list[int] = []
    for n, ticks in zip(sizes, results, strict=True):
        if ticks is not None:
            taken.extend(range(ticks - n, ticks))
    assert len(taken) == len(set(taken)) and max(taken) < 50
    counter = await store.read_counter("acme", "k")
    assert counter is not None and counter.ticks == len(taken)
    # What is left is less than the smallest batch that was refused.
    refused = [n for n, ticks in zip(sizes, results, strict=True) if ticks is None]
    assert all(n > 50 - len(taken) for n in refused)
