"""Audit ids count a tenant's own entries: nothing in them moves with another tenant's
or the platform's activity, and paging by them keeps the trail's order."""

from __future__ import annotations

import pytest

from storage import PLATFORM, AuditEntry, Store
from storage.errors import InvalidCursor
from tests.contract.test_store import make_entry


def audit_id(n: int) -> str:
    """The documented id of a tenant's n-th entry (docs/audit-and-usage.md, Audit trail)."""
    return f"{n:019d}"


async def pages(store: Store, tenant: str, limit: int) -> list[list[AuditEntry]]:
    """The tenant's whole trail, a page at a time, each page after the last one's id."""
    out: list[list[AuditEntry]] = []
    after = None
    while True:
        page = await store.list_audit(tenant, after=after, limit=limit)
        if not page:
            return out
        out.append(page)
        after = page[-1].id


async def test_a_tenants_ids_are_its_own_count_whatever_others_do(store: Store) -> None:
    # acme's changes interleaved with globex's and the platform's, unevenly, so a shared
    # counter (a global autoincrement, an ObjectId's time and counter) shows in acme's ids.
    script = ["acme", "globex", "globex", PLATFORM, "acme", PLATFORM, "globex", "acme"]
    script += ["globex"] * 5 + ["acme", PLATFORM, "acme"]
    ids: dict[str, list[str]] = {"acme": [], "globex": [], PLATFORM: []}
    for i, tenant in enumerate(script):
        ids[tenant].append(await store.append_audit(tenant, make_entry(f"{tenant}-{i}")))

    for tenant, count in (("acme", 5), ("globex", 8), (PLATFORM, 3)):
        expected = [audit_id(n) for n in range(1, count + 1)]
        assert ids[tenant] == expected, tenant
        listed = await store.list_audit(tenant, after=None, limit=100)
        assert [e.id for e in listed] == expected, tenant
        assert [e.action for e in listed] == [
            f"{tenant}-{i}" for i, t in enumerate(script) if t == tenant
        ]
    # A tenant that starts now sees what it would have seen alone on an empty store.
    late = [await store.append_audit("initech", make_entry(f"i{i}")) for i in range(3)]
    assert late == [audit_id(n) for n in (1, 2, 3)]


async def test_paging_keeps_the_order_while_others_write_between_pages(store: Store) -> None:
    for i in range(3):
        await store.append_audit("acme", make_entry(f"a{i}"))
        await store.append_audit("globex", make_entry(f"g{i}"))
    first = await store.list_audit("acme", after=None, limit=2)
    assert [e.action for e in first] == ["a0", "a1"]
    # Between two page reads: the platform, globex and acme itself write.
    await store.append_audit(PLATFORM, make_entry("p0"))
    await store.append_audit("globex", make_entry("g3"))
    await store.append_audit("acme", make_entry("a3"))
    await store.append_audit("globex", make_entry("g4"))
    await store.append_audit("acme", make_entry("a4"))

    second = await store.list_audit("acme", after=first[-1].id, limit=2)
    assert [e.action for e in second] == ["a2", "a3"]
    third = await store.list_audit("acme", after=second[-1].id, limit=2)
    assert [e.action for e in third] == ["a4"]
    assert await store.list_audit("acme", after=third[-1].id, limit=2) == []
    trail = [e for page in await pages(store, "acme", 2) for e in page]
    assert [e.id for e in trail] == [audit_id(n) for n in range(1, 6)]
    assert [e.id for e in trail] == sorted(e.id for e in trail)  # text order is trail order
    assert [e.action for e in trail] == [f"a{i}" for i in range(5)]


async def test_a_cursor_names_a_place_in_the_own_trail_only(store: Store) -> None:
    for i in range(4):
        await store.append_audit("globex", make_entry(f"g{i}"))
    await store.append_audit("acme", make_entry("a0"))
    await store.append_audit("acme", make_entry("a1"))
    # globex's 4th id means "after acme's 4th entry" to acme, which has two: nothing.
    globex_last = (await store.list_audit("globex", after=None, limit=10))[-1].id
    assert await store.list_audit("acme", after=globex_last, limit=10) == []
    first = (await store.list_audit("acme", after=None, limit=1))[0].id
    assert [e.action for e in await store.list_audit("acme", after=first, limit=10)] == ["a1"]


async def test_a_reused_slug_continues_its_trail_and_never_reuses_an_id(store: Store) -> None:
    await store.append_audit("acme", make_entry("a0"))
    await store.delete_tenant("acme", with_data=True)
    # The trail outlives the tenant (docs/audit-and-usage.md), so a cursor a client kept
    # stays valid.
    assert await store.append_audit("acme", make_entry("a1")) == audit_id(2)
    assert [e.id for e in await store.list_audit("acme", after=None, limit=10)] == [
        audit_id(1),
        audit_id(2),
    ]


@pytest.mark.parametrize("cursor", ["9223372036854775808", "9999999999999999999"])
async def test_an_id_past_int64_is_no_cursor(store: Store, cursor: str) -> None:
    # 19 digits, the shape of an id, but no store can hold the number (SQLite's INTEGER,
    # BSON's int64): refused as a cursor no version issued, not a failed query.
    await store.append_audit("acme", make_entry("a"))
    with pytest.raises(InvalidCursor):
        await store.list_audit("acme", after=cursor, limit=10)
    assert [e.id for e in await store.list_audit("acme", after=audit_id(0), limit=10)] == [
        audit_id(1)
    ]
