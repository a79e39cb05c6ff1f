"""The tenant registry and API clients, on every store backend."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from auth.errors import ClientAuthFailed
from core.clock import FrozenClock
from sequences.service import SequenceService
from storage import AlreadyExists, AuditEntry, ClientRecord, Store, StoreUnavailable
from tenants.errors import (
    ClientNotFound,
    ClientRevoked,
    DomainTaken,
    TenantExists,
    TenantNotFound,
    TenantNotSuspended,
)
from tenants.schemas import ClientCreate, TenantUpdate
from tenants.service import TenantService, hash_secret, owner_of, verify_secret
from tests.tenants.builders import make_tenant


@pytest.fixture
def service(store: Store) -> TenantService:
    return TenantService(store, clock=FrozenClock(datetime(2026, 5, 1, tzinfo=UTC)))


async def test_onboarding_creates_tenant_default_sequence_and_first_client(
    service: TenantService, store: Store
) -> None:
    done = await make_tenant(
        service,
        "acme",
        name="Acme Corp",
        domain="Numbers.Acme.com",
        plan="enterprise",
        branding={"primary_color": "#112233", "logo_url": "https://cdn.acme.com/logo.svg"},
        timezone="Europe/Berlin",
    )
    t = done.tenant
    assert (t.slug, t.name, t.status, t.domain, t.timezone) == (
        "acme",
        "Acme Corp",
        "active",
        "numbers.acme.com",
        "Europe/Berlin",
    )
    assert (t.plan.name, t.plan.requests_per_second, t.plan.max_batch) == (
        "enterprise",
        5000,
        100_000,
    )
    assert t.branding.model_dump() == {
        "display_name": "Acme Corp",
        "primary_color": "#112233",
        "logo_url": "https://cdn.acme.com/logo.svg",
    }
    assert await store.get_sequence("acme", "default") is not None
    assert owner_of(done.client_id) == "acme"
    assert (await service.authenticate_client(done.client_id, done.client_secret)).tenant == "acme"


async def test_onboarding_that_fails_halfway_leaves_nothing_behind(
    service: TenantService, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(tenant: str, record: ClientRecord) -> None:
        raise AlreadyExists("simulated failure")

    monkeypatch.setattr(store, "create_client", broken)
    with pytest.raises(AlreadyExists):
        await make_tenant(service, "acme")
    assert await store.get_tenant("acme") is None
    assert await store.get_sequence("acme", "default") is None


async def test_onboarding_whose_trail_cannot_be_written_leaves_nothing_and_can_be_rerun(
    service: TenantService, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The trail is written last: a store that fails there (a lock past busy_timeout, a
    # deadline) must not leave a tenant whose first client's secret nobody was shown.
    real = store.append_audit
    calls = 0

    async def fails_once(tenant: str, entry: AuditEntry) -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise StoreUnavailable("injected: append_audit failed")
        return await real(tenant, entry)

    monkeypatch.setattr(store, "append_audit", fails_once)
    with pytest.raises(StoreUnavailable):
        await make_tenant(service, "acme")
    assert await store.get_tenant("acme") is None
    assert await store.get_sequence("acme", "default") is None
    assert await store.list_clients("acme") == []
    done = await make_tenant(service, "acme")
    assert (await service.authenticate_client(done.client_id, done.client_secret)).tenant == "acme"


async def test_failed_onboarding_of_a_tenant_already_taking_numbers_keeps_its_numbers(
    service: TenantService, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An unregistered tenant (allowed in development) already took numbers.
    seqs = SequenceService(store)
    await seqs.next_default("acme")

    async def broken(tenant: str, record: ClientRecord) -> None:
        raise AlreadyExists("simulated failure")

    monkeypatch.setattr(store, "create_client", broken)
    with pytest.raises(AlreadyExists):
        await make_tenant(service, "acme")
    assert await store.get_tenant("acme") is None
    assert (await seqs.next("acme", "default")).first == 2


async def test_existing_slug_is_a_conflict_and_keeps_the_first(service: TenantService) -> None:
    await make_tenant(service, "acme", name="First")
    with pytest.raises(TenantExists):
        await make_tenant(service, "acme", name="Second")
    assert (await service.get("acme")).name == "First"
    assert len(await service.list_clients("acme")) == 1


async def test_a_domain_belongs_to_one_tenant(service: TenantService) -> None:
    await make_tenant(service, "acme", domain="numbers.acme.com")
    with pytest.raises(DomainTaken):
        await make_tenant(service, "globex", domain="numbers.acme.com")
    await make_tenant(service, "globex", domain="numbers.globex.com")
    with pytest.raises(DomainTaken):
        await service.update("globex", TenantUpdate(domain="numbers.acme.com"))
    await service.update("acme", TenantUpdate(domain="numbers.acme.com"))


async def test_update_merges_branding_and_clears_the_domain(service: TenantService) -> None:
    await make_tenant(service, "acme", domain="n.acme.com", branding={"primary_color": "#000000"})
    patch = TenantUpdate.model_validate(
        {"branding": {"logo_url": "https://acme.com/l.png"}, "domain": None, "plan": "free"}
    )
    t = await service.update("acme", patch)
    assert t.branding.primary_color == "#000000" and t.branding.logo_url == "https://acme.com/l.png"
    assert t.domain is None and t.plan.name == "free"
    assert t.updated_at >= t.created_at


async def test_unknown_tenant_is_not_found_everywhere(service: TenantService) -> None:
    calls: list[Any] = [
        service.get("nope"),
        service.suspend("nope"),
        service.update("nope", TenantUpdate(name="x")),
        service.create_client("nope", ClientCreate()),
        service.list_clients("nope"),
        service.delete("nope"),
    ]
    for call in calls:
        with pytest.raises(TenantNotFound):
            await call


async def test_delete_needs_a_suspended_tenant_and_removes_everything(
    service: TenantService, store: Store
) -> None:
    done = await make_tenant(service, "acme")
    with pytest.raises(TenantNotSuspended):
        await service.delete("acme")
    await service.suspend("acme")
    await service.delete("acme")
    assert await store.get_tenant("acme") is None
    assert await store.get_sequence("acme", "default") is None
    with pytest.raises(ClientAuthFailed):
        await service.authenticate_client(done.client_id, done.client_secret)


async def test_a_recreated_slug_starts_fresh_because_delete_purges_counters(
    service: TenantService, store: Store
) -> None:
    await make_tenant(service, "acme")
    seqs = SequenceService(store)
    await seqs.next("acme", "default")
    await service.suspend("acme")
    await service.delete("acme")
    await make_tenant(service, "acme")
    assert (await seqs.next("acme", "default")).first == 1


async def test_rotate_replaces_the_secret_and_revoke_ends_the_client(
    service: TenantService,
) -> None:
    done = await make_tenant(service, "acme")
    rotated = await service.rotate_client("acme", done.client_id)
    assert rotated.client_secret != done.client_secret
    with pytest.raises(ClientAuthFailed):
        await service.authenticate_client(done.client_id, done.client_secret)
    await service.authenticate_client(done.client_id, rotated.client_secret)
    revoked = await service.revoke_client("acme", done.client_id)
    assert revoked.status == "revoked" and revoked.revoked_at is not None
    with pytest.raises(ClientAuthFailed):
        await service.authenticate_client(done.client_id, rotated.client_secret)
    with pytest.raises(ClientRevoked):
        await service.revoke_client("acme", done.client_id)
    with pytest.raises(ClientRevoked):
        await service.rotate_client("acme", done.client_id)


async def test_clients_are_managed_only_through_their_own_tenant(
    service: TenantService,
) -> None:
    acme = await make_tenant(service, "acme")
    await make_tenant(service, "globex")
    with pytest.raises(ClientNotFound):
        await service.revoke_client("globex", acme.client_id)
    with pytest.raises(ClientNotFound):
        await service.rotate_client("globex", acme.client_id)


async def test_suspended_tenants_clients_cannot_authenticate(service: TenantService) -> None:
    done = await make_tenant(service, "acme")
    await service.suspend("acme")
    with pytest.raises(ClientAuthFailed, match="suspended"):
        await service.authenticate_client(done.client_id, done.client_secret)
    await service.resume("acme")
    await service.authenticate_client(done.client_id, done.client_secret)


async def test_admin_clients_have_platform_scope_and_no_tenant(service: TenantService) -> None:
    admin = await service.create_admin_client("ops")
    assert admin.client_id.startswith("admin.") and admin.tenant is None
    assert admin.scopes == ["platform:admin"]
    record = await service.authenticate_client(admin.client_id, admin.client_secret)
    assert record.tenant == "" and record.scopes == ("platform:admin",)
    assert [c.client_id for c in await service.list_clients("")] == [admin.client_id]


def test_secret_hashes_are_salted_scrypt_and_verify_only_the_secret() -> None:
    a, b = hash_secret("s3cret"), hash_secret("s3cret")
    assert a != b and a.startswith("scrypt$32768$8$1$")
    assert verify_secret("s3cret", a) and verify_secret("s3cret", b)
    assert not verify_secret("s3cret!", a)
    assert not verify_secret("s3cret", "bcrypt$whatever")
    assert not verify_secret("s3cret", "scrypt$1$2$3$!!$!!")


@pytest.mark.parametrize(
    ("client_id", "owner"),
    [
        ("acme.0123456789abcdef", "acme"),
        ("admin.0123456789abcdef", ""),
        ("acme.0123456789ABCDEF", None),
        ("acme.short", None),
        ("../x.0123456789abcdef", None),
        ("dev-cli", None),
    ],
)
def test_client_ids_name_their_owner(client_id: str, owner: str | None) -> None:
    assert owner_of(client_id) == owner
