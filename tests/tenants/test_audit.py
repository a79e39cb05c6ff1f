"""Tenant and API-client administration leaves entries in the audit trail.

Through the service on every backend, over the admin API, and through the real
`tally` CLI. No entry may hold a client secret or a secret hash.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from audit.service import SYSTEM, Actor
from core.clock import FrozenClock
from storage import PLATFORM, AlreadyExists, AuditEntry, ClientRecord, Store
from tenants import cli as tenants_cli
from tenants.errors import ClientRevoked, TenantNotSuspended
from tenants.schemas import ClientCreate, TenantCreate, TenantUpdate
from tenants.service import TenantService
from tests.conftest import bearer
from tests.e2e.conftest import cli, running_server, server_env
from tests.tenants.builders import make_tenant, token_for

ALICE = Actor(subject="alice", client_id="admin.00000000000000aa")


@pytest.fixture
def service(store: Store) -> TenantService:
    return TenantService(store, clock=FrozenClock(datetime(2026, 5, 1, tzinfo=UTC)))


async def trail(service: TenantService, tenant: str = "acme") -> list[AuditEntry]:
    return await service.audit.list(tenant, after=None, limit=500)


def actions(entries: list[AuditEntry]) -> list[str]:
    return [e.action for e in entries]


async def assert_no_secrets(store: Store, entries: Any, *secrets: str) -> None:
    """Neither a secret given out nor any stored secret hash appears anywhere in ``entries``."""
    text = json.dumps(entries, default=str)
    hashes = [c.secret_hash for t in ("acme", PLATFORM) for c in await store.list_clients(t)]
    assert "scrypt$" not in text and "secret" not in text
    for value in (*secrets, *hashes):
        assert value not in text


def dumped(entries: list[AuditEntry]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(e) for e in entries]


# -- through the service, on every backend ---------------------------------------------------
async def test_onboarding_records_tenant_default_sequence_and_first_client(
    service: TenantService, store: Store
) -> None:
    spec = TenantCreate(slug="acme", name="Acme", timezone="Europe/Berlin")
    done = await service.onboard(spec, actor=ALICE)

    entries = await trail(service)
    assert actions(entries) == ["tenant.created", "sequence.created", "client.created"]
    assert {(e.tenant, e.actor, e.client_id) for e in entries} == {
        ("acme", "alice", "admin.00000000000000aa")
    }
    tenant, sequence, client = entries
    assert (tenant.target, tenant.before) == ("tenants/acme", None)
    assert tenant.after is not None
    assert (tenant.after["name"], tenant.after["timezone"], tenant.after["status"]) == (
        "Acme",
        "Europe/Berlin",
        "active",
    )
    assert sequence.target == "sequences/default"
    assert (client.target, client.before) == (f"clients/{done.client_id}", None)
    assert client.after == {
        "name": "default",
        "scopes": ["sequences:read", "sequences:next", "sequences:write"],
        "status": "active",
    }
    await assert_no_secrets(store, dumped(entries), done.client_secret)


async def test_an_onboarding_that_is_undone_leaves_no_entry(
    service: TenantService, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(tenant: str, record: ClientRecord) -> None:
        raise AlreadyExists("simulated failure")

    monkeypatch.setattr(store, "create_client", broken)
    with pytest.raises(AlreadyExists):
        await make_tenant(service, "acme")
    assert await trail(service) == []


async def test_creating_a_tenant_alone_records_tenant_created(service: TenantService) -> None:
    await service.create(TenantCreate(slug="acme", name="Acme"), actor=ALICE)
    [entry] = await trail(service)
    assert (entry.action, entry.actor, entry.target, entry.before) == (
        "tenant.created",
        "alice",
        "tenants/acme",
        None,
    )


async def test_an_update_records_the_settings_before_and_after(service: TenantService) -> None:
    await make_tenant(service, "acme", branding={"primary_color": "#112233"})
    patch = TenantUpdate.model_validate(
        {"plan": "enterprise", "branding": {"display_name": "ACME"}}
    )
    await service.update("acme", patch, actor=ALICE)
    await service.update("acme", TenantUpdate(plan="enterprise"), actor=ALICE)  # a no-op

    entry = (await trail(service))[-1]
    assert (entry.action, entry.actor, entry.target) == ("tenant.updated", "alice", "tenants/acme")
    assert entry.before is not None and entry.after is not None
    assert (entry.before["plan"], entry.after["plan"]) == ("standard", "enterprise")
    assert entry.before["branding"]["display_name"] is None
    assert entry.after["branding"]["display_name"] == "ACME"
    assert entry.after["branding"]["primary_color"] == "#112233"
    assert actions(await trail(service)).count("tenant.updated") == 1


async def test_suspend_and_resume_record_the_status_change_once(service: TenantService) -> None:
    await make_tenant(service, "acme")
    await service.suspend("acme", actor=ALICE)
    await service.suspend("acme", actor=ALICE)  # already suspended: nothing changes
    await service.resume("acme", actor=ALICE)

    suspended, resumed = (await trail(service))[-2:]
    assert (suspended.action, suspended.actor, suspended.target) == (
        "tenant.suspended",
        "alice",
        "tenants/acme",
    )
    assert suspended.before is not None and suspended.after is not None
    assert (suspended.before["status"], suspended.after["status"]) == ("active", "suspended")
    assert resumed.action == "tenant.resumed"
    assert resumed.before is not None and resumed.after is not None
    assert (resumed.before["status"], resumed.after["status"]) == ("suspended", "active")
    assert actions(await trail(service)).count("tenant.suspended") == 1


async def test_deleting_a_tenant_records_it_and_keeps_its_trail(
    service: TenantService, store: Store
) -> None:
    await make_tenant(service, "acme", name="Acme")
    with pytest.raises(TenantNotSuspended):
        await service.delete("acme", actor=ALICE)  # refused: no entry
    await service.suspend("acme", actor=ALICE)
    await service.delete("acme", actor=ALICE)

    assert await store.get_tenant("acme") is None
    entries = await trail(service)
    assert actions(entries) == [
        "tenant.created",
        "sequence.created",
        "client.created",
        "tenant.suspended",
        "tenant.deleted",
    ]
    deleted = entries[-1]
    assert (deleted.actor, deleted.target, deleted.after) == ("alice", "tenants/acme", None)
    assert deleted.before is not None
    assert (deleted.before["name"], deleted.before["status"]) == ("Acme", "suspended")


async def test_client_create_revoke_and_rotate_name_the_client_never_its_secret(
    service: TenantService, store: Store
) -> None:
    first = await make_tenant(service, "acme")
    spec = ClientCreate(name="billing", scopes=["sequences:next"])
    billing = await service.create_client("acme", spec, actor=ALICE)
    rotated = await service.rotate_client("acme", billing.client_id, actor=ALICE)
    await service.revoke_client("acme", billing.client_id, actor=ALICE)
    with pytest.raises(ClientRevoked):
        await service.revoke_client("acme", billing.client_id, actor=ALICE)  # no entry

    entries = (await trail(service))[3:]
    assert actions(entries) == ["client.created", "client.rotated", "client.revoked"]
    assert {(e.actor, e.target) for e in entries} == {("alice", f"clients/{billing.client_id}")}
    created, rotation, revoked = entries
    view = {"name": "billing", "scopes": ["sequences:next"], "status": "active"}
    assert (created.before, created.after) == (None, view)
    assert (rotation.before, rotation.after) == (None, None)
    assert (revoked.before, revoked.after) == (view, {**view, "status": "revoked"})
    await assert_no_secrets(
        store,
        dumped(await trail(service)),
        first.client_secret,
        billing.client_secret,
        rotated.client_secret,
    )


async def test_platform_admin_clients_go_into_the_platform_trail(
    service: TenantService, store: Store
) -> None:
    await make_tenant(service, "acme")
    ops = await service.create_admin_client("ops", actor=ALICE)
    rotated = await service.rotate_client(PLATFORM, ops.client_id, actor=ALICE)
    await service.revoke_client(PLATFORM, ops.client_id, actor=ALICE)

    entries = await trail(service, PLATFORM)
    assert actions(entries) == ["client.created", "client.rotated", "client.revoked"]
    assert {(e.tenant, e.actor, e.target) for e in entries} == {
        (PLATFORM, "alice", f"clients/{ops.client_id}")
    }
    assert entries[0].after == {"name": "ops", "scopes": ["platform:admin"], "status": "active"}
    assert actions(await trail(service)) == ["tenant.created", "sequence.created", "client.created"]
    await assert_no_secrets(store, dumped(entries), ops.client_secret, rotated.client_secret)


async def test_callers_that_name_no_actor_are_recorded_as_tally(service: TenantService) -> None:
    await make_tenant(service, "acme")
    await service.suspend("acme")
    assert {(e.actor, e.client_id) for e in await trail(service)} == {
        (SYSTEM.subject, SYSTEM.client_id)
    }


# -- over the admin API --------------------------------------------------------------------
async def test_admin_api_changes_are_recorded_with_the_admins_token_and_readable(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    ops = await app.state.tenants.create_admin_client("ops")
    admin = bearer(await token_for(client, ops))
    r = await client.post("/admin/v1/tenants", json={"slug": "acme", "name": "Acme"}, headers=admin)
    assert r.status_code == 201, r.text
    onboarded = r.json()
    await client.patch("/admin/v1/tenants/acme", json={"timezone": "Asia/Tokyo"}, headers=admin)
    await client.post("/admin/v1/tenants/acme/suspend", headers=admin)
    await client.post("/admin/v1/tenants/acme/resume", headers=admin)
    r = await client.post("/admin/v1/tenants/acme/clients", json={"name": "b"}, headers=admin)
    new = r.json()
    await client.post(f"/admin/v1/tenants/acme/clients/{new['client_id']}/revoke", headers=admin)

    r = await client.get("/admin/v1/audit", params={"tenant": "acme"}, headers=admin)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [e["action"] for e in items] == [
        "tenant.created",
        "sequence.created",
        "client.created",
        "tenant.updated",
        "tenant.suspended",
        "tenant.resumed",
        "client.created",
        "client.revoked",
    ]
    assert {(e["actor"], e["client_id"]) for e in items} == {(ops.client_id, ops.client_id)}
    updated = items[3]
    assert (updated["before"]["timezone"], updated["after"]["timezone"]) == ("UTC", "Asia/Tokyo")
    assert items[-1]["target"] == f"clients/{new['client_id']}"

    # The platform trail: `?tenant=` empty. The fixture's admin client was made by Tally.
    r = await client.get("/admin/v1/audit", params={"tenant": ""}, headers=admin)
    assert r.status_code == 200, r.text
    [entry] = r.json()["items"]
    assert (entry["tenant"], entry["action"], entry["actor"], entry["target"]) == (
        "",
        "client.created",
        "tally",
        f"clients/{ops.client_id}",
    )

    # The tenant reads the same entries about itself.
    token = await token_for(client, SimpleNamespace(**onboarded))
    own = (await client.get("/v1/audit", headers=bearer(token))).json()["items"]
    assert [e["id"] for e in own] == [e["id"] for e in items]
    store = app.state.tenants.store
    await assert_no_secrets(
        store, [items, entry], onboarded["client_secret"], new["client_secret"], ops.client_secret
    )


async def test_a_tenants_audit_ids_do_not_move_with_other_tenants_or_the_platform(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    ops = await app.state.tenants.create_admin_client("ops")
    admin = bearer(await token_for(client, ops))
    r = await client.post("/admin/v1/tenants", json={"slug": "acme", "name": "Acme"}, headers=admin)
    acme = bearer(await token_for(client, SimpleNamespace(**r.json())))
    await client.post("/admin/v1/tenants", json={"slug": "globex", "name": "G"}, headers=admin)
    await app.state.tenants.create_admin_client("ops2")
    await client.post("/admin/v1/tenants/globex/suspend", headers=admin)
    await client.patch("/admin/v1/tenants/acme", json={"timezone": "Asia/Tokyo"}, headers=admin)

    first = (await client.get("/v1/audit", params={"limit": 2}, headers=acme)).json()
    assert [e["id"] for e in first["items"]] == ["0000000000000000001", "0000000000000000002"]
    # Between two pages, globex, the platform and acme itself change.
    await client.post("/admin/v1/tenants/globex/resume", headers=admin)
    await app.state.tenants.create_admin_client("ops3")
    await client.post("/admin/v1/tenants/acme/clients", json={"name": "b"}, headers=admin)
    params = {"limit": 2, "after": first["next_cursor"]}
    second = (await client.get("/v1/audit", params=params, headers=acme)).json()
    params["after"] = second["next_cursor"]
    third = (await client.get("/v1/audit", params=params, headers=acme)).json()
    assert [(e["id"], e["action"]) for e in second["items"] + third["items"]] == [
        ("0000000000000000003", "client.created"),
        ("0000000000000000004", "tenant.updated"),
        ("0000000000000000005", "client.created"),
    ]
    assert third["next_cursor"] is None
    # globex and the platform count their own changes just the same.
    r = await client.get("/admin/v1/audit", params={"tenant": "globex"}, headers=admin)
    assert [int(e["id"]) for e in r.json()["items"]] == [1, 2, 3, 4, 5]
    r = await client.get("/admin/v1/audit", params={"tenant": ""}, headers=admin)
    assert [int(e["id"]) for e in r.json()["items"]] == [1, 2, 3]


# -- through the real CLI ------------------------------------------------------------------
@pytest.mark.e2e
def test_cli_changes_are_recorded_as_the_operator(tmp_path: Path) -> None:
    env = server_env(tmp_path, TALLY_STATUS_CACHE_SECONDS="1")
    env.update(LOGNAME="alice", USER="alice")

    def tally(*args: str) -> dict[str, Any]:
        result = cli(env, *args, "--json")
        assert result.returncode == 0, result.stderr
        out: dict[str, Any] = json.loads(result.stdout)
        return out

    acme = tally("tenants", "create", "acme", "--name", "Acme")
    billing = tally("clients", "create", "--tenant", "acme", "--name", "billing")
    rotated = tally("clients", "rotate", billing["client_id"], "--tenant", "acme")
    tally("clients", "revoke", billing["client_id"], "--tenant", "acme")
    tally("tenants", "update", "acme", "--plan", "free")
    tally("tenants", "suspend", "acme")
    tally("tenants", "resume", "acme")
    tally("tenants", "suspend", "acme")
    tally("tenants", "delete", "acme", "--yes")
    ops = tally("admin", "clients", "create", "--name", "ops")

    with running_server(env) as url, httpx.Client(base_url=url, timeout=30) as http:
        r = http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(ops["client_id"], ops["client_secret"]),
        )
        admin = bearer(r.json()["access_token"])
        items = http.get("/admin/v1/audit", params={"tenant": "acme"}, headers=admin).json()
        platform = http.get("/admin/v1/audit", params={"tenant": ""}, headers=admin).json()

    assert [e["action"] for e in items["items"]] == [
        "tenant.created",
        "sequence.created",
        "client.created",
        "client.created",
        "client.rotated",
        "client.revoked",
        "tenant.updated",
        "tenant.suspended",
        "tenant.resumed",
        "tenant.suspended",
        "tenant.deleted",
    ]
    assert {(e["actor"], e["client_id"]) for e in items["items"]} == {("cli:alice", "")}
    assert items["items"][4]["target"] == f"clients/{billing['client_id']}"
    [created] = platform["items"]
    assert (created["action"], created["actor"], created["target"]) == (
        "client.created",
        "cli:alice",
        f"clients/{ops['client_id']}",
    )
    text = json.dumps([items, platform])
    assert "scrypt$" not in text and "secret" not in text
    for secret in (acme["client_secret"], billing["client_secret"], rotated["client_secret"]):
        assert secret not in text
    assert ops["client_secret"] not in text


def test_cli_operator_falls_back_when_the_login_name_is_unknown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_user() -> str:
        raise OSError("no login name")

    monkeypatch.setattr(tenants_cli.getpass, "getuser", no_user)
    assert tenants_cli._operator() == Actor(subject="cli:unknown")
    monkeypatch.setattr(tenants_cli.getpass, "getuser", lambda: "bob")
    assert tenants_cli._operator() == Actor(subject="cli:bob")
