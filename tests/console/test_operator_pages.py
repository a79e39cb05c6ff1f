"""The operator's console pages over ASGI: tenants, overview, suspend / resume, API
clients (secret shown once, revoke), each form refused without its CSRF token."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from sequences.schemas import SequenceCreate
from tenants.schemas import Onboarded
from tests.console.support import Browser, assert_csp, csrf_of

OPERATOR_FORMS = [
    "/console/tenants/acme/suspend",
    "/console/tenants/acme/resume",
    "/console/tenants/acme/clients",
]


@pytest.mark.parametrize("path", OPERATOR_FORMS)
async def test_every_operator_form_refuses_a_missing_csrf_token(
    app: FastAPI, operator_browser: Browser, acme: Onboarded, path: str
) -> None:
    r = await operator_browser.post(path, {"name": "x"})
    assert r.status_code == 403
    assert (await app.state.tenants.get("acme")).status == "active"
    assert len(await app.state.tenants.list_clients("acme")) == 1
    revoke = f"/console/tenants/acme/clients/{acme.client_id}/revoke"
    r = await operator_browser.post(revoke, {"csrf": "forged"})
    assert r.status_code == 403
    assert (await app.state.tenants.list_clients("acme"))[0].status == "active"


async def test_operator_sees_tenants_with_usage_and_can_suspend_and_resume(
    app: FastAPI, operator_browser: Browser, acme: Onboarded
) -> None:
    await app.state.sequences.next("acme", "default", 7)
    page = await operator_browser.get("/console/tenants")
    assert page.status_code == 200
    assert_csp(page)
    assert '<a href="/console/tenants/acme">acme</a>' in page.text
    assert '<td class="num">7</td>' in page.text  # today and over 30 days
    tenant = await operator_browser.get("/console/tenants/acme?granularity=hour")
    assert tenant.status_code == 200 and 'data-bars="24"' in tenant.text
    assert acme.client_id in tenant.text and acme.client_secret not in tenant.text
    csrf = csrf_of(tenant)
    r = await operator_browser.post("/console/tenants/acme/suspend", {"csrf": csrf})
    assert r.status_code == 303
    assert (await app.state.tenants.get("acme")).status == "suspended"
    r = await operator_browser.post("/console/tenants/acme/resume", {"csrf": csrf})
    assert (await app.state.tenants.get("acme")).status == "active"


async def test_a_new_client_secret_is_shown_once_and_revoke_works(
    app: FastAPI, operator_browser: Browser
) -> None:
    page = await operator_browser.get("/console/tenants/acme")
    r = await operator_browser.post(
        "/console/tenants/acme/clients",
        {"csrf": csrf_of(page), "name": "billing", "scopes": ["sequences:read"]},
    )
    assert r.status_code == 201 and r.headers["cache-control"] == "no-store"
    clients = await app.state.tenants.list_clients("acme")
    new = next(c for c in clients if c.name == "billing")
    assert new.scopes == ["sequences:read"] and new.client_id in r.text
    secret = r.text.split('id="new-client-secret"')[1].split('value="')[1].split('"')[0]
    assert (await app.state.tenants.authenticate_client(new.client_id, secret)).name == "billing"
    again = await operator_browser.get("/console/tenants/acme")
    assert secret not in again.text
    none = await operator_browser.post(
        "/console/tenants/acme/clients", {"csrf": csrf_of(page), "name": "x"}
    )
    assert none.status_code == 422 and none.text.count("at least 1 item") == 1
    revoke = f"/console/tenants/acme/clients/{new.client_id}/revoke"
    assert (await operator_browser.post(revoke, {"csrf": csrf_of(page)})).status_code == 303
    assert (
        next(c for c in await app.state.tenants.list_clients("acme") if c.name == "billing").status
        == "revoked"
    )


async def test_operator_overview_shows_volumes_and_sequences_near_their_max(
    app: FastAPI, operator_browser: Browser
) -> None:
    await app.state.sequences.create("acme", SequenceCreate(name="tight", max=20))
    await app.state.sequences.next("acme", "tight", 19)
    r = await operator_browser.get("/console/overview")
    assert r.status_code == 200
    assert_csp(r)
    assert '<dd data-field="today">19</dd>' in r.text
    near = r.text.split('id="near-heading"')[1]
    assert '<a href="/console/tenants/acme">acme</a></th><td>tight</td>' in near
    assert '<td class="num low">1</td><td class="num">20</td><td class="num">5.0</td>' in near
