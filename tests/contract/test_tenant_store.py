"""The tenant registry and OAuth clients: one contract, every backend."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from storage import PLATFORM, AlreadyExists, ClientRecord, Counter, Store, TenantRecord
from tests.contract.test_store import make_record

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def make_tenant(slug: str = "acme", **config: object) -> TenantRecord:
    cfg = {"name": slug.title(), "status": "active", "timezone": "UTC", **config}
    return TenantRecord(slug=slug, config=cfg, created_at=NOW, updated_at=NOW)


def make_client(tenant: str = "acme", client_id: str = "acme.c1", **fields: object) -> ClientRecord:
    record = ClientRecord(
        client_id=client_id,
        tenant=tenant,
        name="first",
        secret_hash="scrypt$x",
        scopes=("sequences:read", "sequences:next"),
        created_at=NOW,
    )
    return replace(record, **fields)  # type: ignore[arg-type]


async def test_tenant_create_then_get_round_trips(store: Store) -> None:
    await store.create_tenant("acme", make_tenant(branding={"primary_color": "#112233"}))
    got = await store.get_tenant("acme")
    assert got is not None and got.slug == "acme" and got.revision == 1
    assert got.config["branding"] == {"primary_color": "#112233"}
    assert got.created_at == NOW and got.updated_at == NOW
    assert await store.get_tenant("globex") is None


async def test_tenant_create_twice_raises_already_exists(store: Store) -> None:
    await store.create_tenant("acme", make_tenant())
    with pytest.raises(AlreadyExists):
        await store.create_tenant("acme", make_tenant(name="Other"))
    got = await store.get_tenant("acme")
    assert got and got.config["name"] == "Acme"


async def test_tenants_list_in_slug_order_a_page_at_a_time(store: Store) -> None:
    for slug in ["initech", "acme", "globex", "hooli"]:
        await store.create_tenant(slug, make_tenant(slug))
    first = await store.list_tenants(after=None, limit=3)
    assert [t.slug for t in first] == ["acme", "globex", "hooli"]
    rest = await store.list_tenants(after="hooli", limit=3)
    assert [t.slug for t in rest] == ["initech"]


async def test_tenant_update_applies_only_at_the_expected_revision(store: Store) -> None:
    await store.create_tenant("acme", make_tenant())
    later = NOW + timedelta(minutes=5)
    changed = TenantRecord("acme", {"name": "Acme", "status": "suspended"}, NOW, later, 2)
    assert await store.update_tenant("acme", changed, expected_revision=1)
    assert not await store.update_tenant("acme", changed, expected_revision=1)
    got = await store.get_tenant("acme")
    assert got and got.config["status"] == "suspended" and got.revision == 2
    assert got.updated_at == later and got.created_at == NOW
    assert not await store.update_tenant("globex", changed, expected_revision=1)


async def test_tenant_delete_removes_its_clients_sequences_and_counters_only(
    store: Store,
) -> None:
    for slug in ["acme", "globex"]:
        await store.create_tenant(slug, make_tenant(slug))
        await store.create_client(slug, make_client(slug, f"{slug}.c1"))
        await store.create_sequence(slug, make_record())
        await store.allocate(slug, "invoices", "invoices", Counter(1, 1, 100), 3)
    assert await store.delete_tenant("acme")
    assert await store.get_tenant("acme") is None
    assert await store.list_clients("acme") == []
    assert await store.get_sequence("acme", "invoices") is None
    assert await store.read_counter("acme", "invoices") is None
    assert await store.get_tenant("globex") is not None
    assert len(await store.list_clients("globex")) == 1
    assert await store.read_counter("globex", "invoices") == Counter(1, 1, 100, 3)
    assert not await store.delete_tenant("acme")


async def test_tenant_delete_without_data_keeps_sequences_and_counters(store: Store) -> None:
    await store.create_tenant("acme", make_tenant("acme"))
    await store.create_client("acme", make_client())
    await store.create_sequence("acme", make_record())
    await store.allocate("acme", "invoices", "invoices", Counter(1, 1, 100), 3)
    assert await store.delete_tenant("acme", with_data=False)
    assert await store.get_tenant("acme") is None
    assert await store.list_clients("acme") == []
    assert await store.get_sequence("acme", "invoices") is not None
    assert await store.read_counter("acme", "invoices") == Counter(1, 1, 100, 3)


async def test_client_create_then_get_round_trips(store: Store) -> None:
    await store.create_client("acme", make_client())
    got = await store.get_client("acme", "acme.c1")
    assert got == make_client()
    assert got is not None and got.last_used_at is None and got.revoked_at is None


async def test_client_create_twice_raises_already_exists(store: Store) -> None:
    await store.create_client("acme", make_client())
    with pytest.raises(AlreadyExists):
        await store.create_client("acme", make_client(name="again"))


async def test_clients_are_tenant_scoped(store: Store) -> None:
    await store.create_client("acme", make_client())
    await store.create_client("globex", make_client("globex", "globex.c1"))
    assert await store.get_client("globex", "acme.c1") is None
    assert [c.client_id for c in await store.list_clients("acme")] == ["acme.c1"]


async def test_platform_clients_live_under_the_platform_key(store: Store) -> None:
    admin = make_client(PLATFORM, "admin.c1", scopes=("platform:admin",))
    await store.create_client(PLATFORM, admin)
    assert await store.get_client(PLATFORM, "admin.c1") == admin
    assert [c.client_id for c in await store.list_clients(PLATFORM)] == ["admin.c1"]
    assert await store.get_client("acme", "admin.c1") is None


async def test_clients_list_in_client_id_order(store: Store) -> None:
    for cid in ["acme.c3", "acme.c1", "acme.c2"]:
        await store.create_client("acme", make_client(client_id=cid))
    assert [c.client_id for c in await store.list_clients("acme")] == [
        "acme.c1",
        "acme.c2",
        "acme.c3",
    ]


async def test_revoke_is_once_and_blocks_a_new_secret(store: Store) -> None:
    await store.create_client("acme", make_client())
    assert await store.set_client_secret("acme", "acme.c1", "scrypt$new")
    at = NOW + timedelta(hours=1)
    assert await store.revoke_client("acme", "acme.c1", at)
    assert not await store.revoke_client("acme", "acme.c1", at + timedelta(hours=1))
    assert not await store.set_client_secret("acme", "acme.c1", "scrypt$newer")
    got = await store.get_client("acme", "acme.c1")
    assert got and got.revoked_at == at and got.secret_hash == "scrypt$new"
    assert not await store.revoke_client("acme", "acme.nope", at)


async def test_touch_records_last_use(store: Store) -> None:
    await store.create_client("acme", make_client())
    at = NOW + timedelta(minutes=3)
    await store.touch_client("acme", "acme.c1", at)
    got = await store.get_client("acme", "acme.c1")
    assert got and got.last_used_at == at
