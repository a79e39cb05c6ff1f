"""The audit trail over HTTP: every administrative change, readable by tenant and admin."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from core.clock import FrozenClock
from core.settings import Settings
from storage import Store
from tests.sequences.support import Api, running_api


@pytest.fixture
async def api(settings: Settings, clock: FrozenClock, store: Store) -> AsyncIterator[Api]:
    async with running_api(settings, clock, store=store) as a:
        yield a


async def trail(
    api: Api, tenant: str = "acme", params: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    r = await api.client.get("/v1/audit", params=params or {}, headers=api.headers(tenant))
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def test_every_admin_change_leaves_an_audit_entry(api: Api) -> None:
    alice = api.headers(subject="alice")
    api.clock.set(datetime(2026, 5, 4, 10, 0, tzinfo=UTC))
    await api.client.post("/v1/sequences", json={"name": "inv", "max": 99}, headers=alice)
    await api.next("inv", count=5)  # taking numbers is not an administrative change
    api.clock.set(datetime(2026, 5, 4, 10, 1, tzinfo=UTC))
    await api.client.patch("/v1/sequences/inv", json={"format": "I{n}"}, headers=alice)
    await api.client.post("/v1/sequences/inv/advance", json={"to": 50}, headers=alice)
    api.clock.set(datetime(2026, 5, 4, 10, 2, tzinfo=UTC))
    await api.client.delete("/v1/sequences/inv", headers=alice)

    entries = await trail(api)
    assert [e["action"] for e in entries] == [
        "sequence.created",
        "sequence.updated",
        "sequence.advanced",
        "sequence.deleted",
    ]
    assert {(e["actor"], e["tenant"], e["target"]) for e in entries} == {
        ("alice", "acme", "sequences/inv")
    }
    created, updated, advanced, deleted = entries
    assert created["at"] == "2026-05-04T10:00:00Z"
    assert created["before"] is None and created["after"]["max"] == 99
    assert updated["at"] == "2026-05-04T10:01:00Z"
    assert (updated["before"]["format"], updated["after"]["format"]) == (None, "I{n}")
    assert updated["after"]["max"] == 99
    assert advanced["before"] == {"last": 5, "next": 6} and advanced["after"] == {"next": 50}
    assert deleted["before"]["format"] == "I{n}" and deleted["after"] is None


async def test_refused_and_no_op_changes_leave_no_entry(api: Api) -> None:
    await api.create(name="inv", max=10)
    await api.next("inv", count=5)
    h = api.headers()
    assert (await api.client.patch("/v1/sequences/inv", json={"max": 2}, headers=h)).is_error
    assert (await api.client.patch("/v1/sequences/inv", json={"step": 0}, headers=h)).is_error
    assert (await api.client.patch("/v1/sequences/inv", json={"max": 10}, headers=h)).is_success
    r = await api.client.post("/v1/sequences/inv/advance", json={"to": 3}, headers=h)
    assert r.status_code == 409
    r = await api.client.post("/v1/sequences/inv/advance", json={"to": 6}, headers=h)
    assert r.status_code == 200
    assert (await api.create(name="inv")).status_code == 409
    assert [e["action"] for e in await trail(api)] == ["sequence.created"]


async def test_a_reset_sequences_advance_names_the_period(api: Api) -> None:
    await api.create(name="r", reset="yearly")
    api.clock.set(datetime(2026, 2, 1, tzinfo=UTC))
    await api.client.post("/v1/sequences/r/advance", json={"to": 7}, headers=api.headers())
    entry = (await trail(api))[-1]
    assert entry["before"] == {"period": "2026", "last": None, "next": 1}
    assert entry["after"] == {"period": "2026", "next": 7}


async def test_the_default_sequence_made_by_get_counter_is_audited_as_tally(api: Api) -> None:
    await api.client.get("/getCounter", headers=api.headers())
    [entry] = await trail(api)
    assert (entry["action"], entry["actor"], entry["target"]) == (
        "sequence.created",
        "tally",
        "sequences/default",
    )


async def test_a_tenant_reads_only_its_own_trail(api: Api) -> None:
    await api.create("acme", name="a")
    await api.create("globex", name="g")
    assert [e["target"] for e in await trail(api, "acme")] == ["sequences/a"]
    # A tenant named in the query is ignored: the token decides.
    assert [e["target"] for e in await trail(api, "globex", {"tenant": "acme"})] == ["sequences/g"]


async def test_the_tenant_trail_needs_the_read_scope(api: Api) -> None:
    r = await api.client.get("/v1/audit", headers=api.headers(scopes="sequences:next"))
    assert r.status_code == 403
    r = await api.client.get("/v1/audit", headers=api.admin_headers())
    assert r.status_code == 403


async def test_a_platform_admin_reads_any_tenants_trail_a_page_at_a_time(api: Api) -> None:
    for name in ("a", "b", "c"):
        await api.create("acme", name=name)
    await api.create("globex", name="g")
    admin = api.admin_headers()
    r = await api.client.get(
        "/admin/v1/audit", params={"tenant": "acme", "limit": 2}, headers=admin
    )
    assert r.status_code == 200
    page = r.json()
    assert [e["target"] for e in page["items"]] == ["sequences/a", "sequences/b"]
    assert page["next_cursor"] == page["items"][-1]["id"]
    r = await api.client.get(
        "/admin/v1/audit",
        params={"tenant": "acme", "limit": 2, "after": page["next_cursor"]},
        headers=admin,
    )
    assert [e["target"] for e in r.json()["items"]] == ["sequences/c"]
    assert r.json()["next_cursor"] is None
    r = await api.client.get("/admin/v1/audit", params={"tenant": "globex"}, headers=admin)
    assert [e["tenant"] for e in r.json()["items"]] == ["globex"]


async def test_the_admin_trail_needs_platform_admin(api: Api) -> None:
    await api.create(name="a")
    r = await api.client.get("/admin/v1/audit", params={"tenant": "acme"}, headers=api.headers())
    assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
    assert (await api.client.get("/admin/v1/audit", params={"tenant": "acme"})).status_code == 401


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"tenant": "ACME"},
        {"tenant": "-"},
        {"tenant": "acme", "limit": 0},
        {"tenant": "acme", "limit": 501},
        {"tenant": "acme", "after": "not-a-cursor"},
        {"tenant": "acme", "after": "x" * 65},
        {"tenant": "acme", "after": "9223372036854775808"},
    ],
)
async def test_bad_admin_audit_queries_422(api: Api, params: dict[str, Any]) -> None:
    await api.create(name="a")
    r = await api.client.get("/admin/v1/audit", params=params, headers=api.admin_headers())
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"


async def test_a_bad_cursor_on_the_tenant_trail_422s(api: Api) -> None:
    r = await api.client.get("/v1/audit", params={"after": "zz"}, headers=api.headers())
    assert r.status_code == 422 and "after" in r.json()["detail"]
