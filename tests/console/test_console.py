"""The console over ASGI: sign-in cookie flags, CSRF refusals, CSP on every response,
and forms that call the same services as the API (with the API's messages)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from api.app import create_app
from core.settings import Settings
from sequences.schemas import SequenceCreate
from tenants.schemas import Onboarded
from tests.console.support import Browser, assert_csp, cookies_set, csrf_of

SESSION = "tally_console"


async def test_sign_in_form_is_labelled_and_sets_a_strict_form_cookie(browser: Browser) -> None:
    r = await browser.get("/console/sign-in")
    assert r.status_code == 200
    assert_csp(r)
    assert r.headers["cache-control"] == "no-store"
    assert '<label for="client_id">Client ID</label>' in r.text
    assert '<label for="client_secret">Client secret</label>' in r.text
    assert ">Sign in</button>" in r.text
    cookie = cookies_set(r)["tally_console_signin"]
    assert cookie["value"] == csrf_of(r)
    assert cookie["httponly"] == "true" and cookie["samesite"].lower() == "strict"
    assert cookie["path"] == "/console" and cookie["secure"] == "true"


async def test_signing_in_sets_a_short_lived_httponly_secure_strict_cookie(
    browser: Browser, acme: Onboarded, settings: Settings
) -> None:
    r = await browser.sign_in(acme.client_id, acme.client_secret)
    assert r.status_code == 303 and r.headers["location"] == "/console"
    assert_csp(r)
    cookie = cookies_set(r)[SESSION]
    token = cookie["value"]
    assert token.count(".") == 2  # the access token itself, never in a URL or the page
    assert cookie["httponly"] == "true" and cookie["secure"] == "true"
    assert cookie["samesite"].lower() == "strict" and cookie["path"] == "/console"
    assert int(cookie["max-age"]) == settings.token_ttl_seconds
    home = await browser.get("/console")
    assert home.status_code == 303 and home.headers["location"] == "/console/sequences"
    page = await browser.get("/console/sequences")
    assert page.status_code == 200 and token not in page.text
    assert token not in page.headers.get("location", "")


async def test_on_loopback_http_the_cookie_is_not_secure(app: FastAPI, acme: Onboarded) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as c:
        b = Browser(c, origin="http://127.0.0.1:8080")
        r = await b.sign_in(acme.client_id, acme.client_secret)
        assert r.status_code == 303
        cookie = cookies_set(r)[SESSION]
        assert "secure" not in cookie and cookie["httponly"] == "true"


async def test_a_wrong_secret_shows_the_token_endpoints_error_and_sets_no_session(
    browser: Browser, acme: Onboarded
) -> None:
    r = await browser.sign_in(acme.client_id, "not-the-secret")
    assert r.status_code == 401
    assert "alert-error" in r.text and SESSION not in cookies_set(r)
    assert f'value="{acme.client_id}"' in r.text  # the id stays filled in, the secret not


@pytest.mark.parametrize(
    ("csrf", "origin"),
    [(None, "http://tally.test"), ("forged", "http://tally.test"), ("real", "https://evil.test")],
)
async def test_sign_in_without_its_csrf_token_or_from_elsewhere_is_refused(
    browser: Browser, acme: Onboarded, csrf: str | None, origin: str
) -> None:
    page = await browser.get("/console/sign-in")
    form = {"client_id": acme.client_id, "client_secret": acme.client_secret}
    if csrf is not None:
        form["csrf"] = csrf_of(page) if csrf == "real" else csrf
    r = await browser.post("/console/sign-in", form, headers={"Origin": origin})
    assert r.status_code == 403 and SESSION not in cookies_set(r)
    assert_csp(r)
    assert "CSRF" in r.text


TENANT_FORMS = [
    ("/console/sequences", {"name": "invoices"}),
    ("/console/sequences/default/settings", {"step": "5"}),
    ("/console/sequences/default/advance", {"to": "100"}),
    ("/console/sign-out", {}),
    ("/console/sequences/default/reservations", {}),
    ("/console/sequences/default/reservations/rsv_AAAAAAAAAAAAAAAAAAAAAA/commit", {}),
    ("/console/sequences/default/reservations/rsv_AAAAAAAAAAAAAAAAAAAAAA/void", {"reason": "x"}),
]


@pytest.mark.parametrize(("path", "form"), TENANT_FORMS)
@pytest.mark.parametrize("csrf", [None, "forged", "other-origin"])
async def test_every_tenant_form_refuses_a_missing_or_wrong_csrf_token(
    app: FastAPI, tenant_browser: Browser, path: str, form: dict[str, str], csrf: str | None
) -> None:
    page = await tenant_browser.get("/console/sequences")
    headers = {}
    if csrf == "forged":
        form = {**form, "csrf": "0" * 64}
    elif csrf == "other-origin":
        form = {**form, "csrf": csrf_of(page)}
        headers = {"Origin": "https://evil.test"}
    before = await app.state.sequences.describe_many(
        "acme", await app.state.sequences.list("acme", after=None, limit=10)
    )
    r = await tenant_browser.post(path, form, headers=headers)
    assert r.status_code == 403, r.text
    assert_csp(r)
    after = await app.state.sequences.describe_many(
        "acme", await app.state.sequences.list("acme", after=None, limit=10)
    )
    assert after == before  # nothing created, changed or advanced
    assert SESSION in tenant_browser.cookies  # and not signed out either


async def test_without_a_session_every_page_sends_the_browser_to_sign_in(
    browser: Browser,
) -> None:
    for path in ("/console", "/console/sequences", "/console/tenants", "/console/audit"):
        r = await browser.get(path)
        assert r.status_code == 303 and r.headers["location"].startswith("/console/sign-in")
        assert_csp(r)
    r = await browser.post("/console/sequences", {"name": "x"})
    assert r.status_code == 303  # no session: sign in first (nothing created)


async def test_a_sequence_created_through_the_form_is_the_apis_sequence(
    app: FastAPI, tenant_browser: Browser
) -> None:
    page = await tenant_browser.get("/console/sequences")
    form = {
        "csrf": csrf_of(page),
        "name": "invoices",
        "start": "100",
        "step": "1",
        "max": "999",
        "format": "INV-{n:05}",
        "reset": "never",
        "mode": "strict",
    }
    r = await tenant_browser.post("/console/sequences", form)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/console/sequences/invoices?done=created"
    seq = await app.state.sequences.describe("acme", "invoices")
    assert (seq.start, seq.max, seq.format, seq.next) == (100, 999, "INV-{n:05}", 100)
    await app.state.sequences.next("acme", "invoices", 5)
    detail = await tenant_browser.get("/console/sequences/invoices")
    assert detail.status_code == 200
    assert_csp(detail)
    assert '<dd data-field="last">104</dd>' in detail.text
    assert "INV-00105" in detail.text
    assert "895</span> below max" in detail.text  # 999 - 105 + 1 numbers still fit
    assert "<svg" in detail.text and 'role="img"' in detail.text
    audit = await tenant_browser.get("/console/audit")
    assert "sequence.created" in audit.text and "sequences/invoices" in audit.text


async def test_form_errors_are_the_apis_messages_shown_by_their_fields(
    client: httpx.AsyncClient, tenant_browser: Browser, acme: Onboarded
) -> None:
    page = await tenant_browser.get("/console/sequences")
    bad = {"csrf": csrf_of(page), "name": "Bad Name", "step": "0", "format": "{bogus}"}
    r = await tenant_browser.post("/console/sequences", bad)
    assert r.status_code == 422
    token = tenant_browser.cookies[SESSION]
    api = await client.post(
        "/v1/sequences",
        json={"name": "Bad Name", "step": 0, "format": "{bogus}"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert api.status_code == 422
    for error in api.json()["errors"]:
        field, message = error["field"], error["message"].removeprefix("Value error, ")
        assert f'id="{field}-error">{message}' in r.text.replace("&#39;", "'"), field
    assert 'aria-invalid="true"' in r.text
    assert 'value="Bad Name"' in r.text  # what was typed stays
    dup = await tenant_browser.post(
        "/console/sequences", {"csrf": csrf_of(page), "name": "default"}
    )
    assert dup.status_code == 409 and "already exists" in dup.text


class Inputs(HTMLParser):
    """Each ``<input>``'s attributes by id, as a browser's parser reads them."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.by_id: dict[str, dict[str, str | None]] = {}
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "input" and (found := dict(attrs)).get("id"):
            self.by_id[str(found["id"])] = found


async def test_name_and_format_fields_turn_spellcheck_and_autocapitalize_off(
    app: FastAPI, tenant_browser: Browser
) -> None:
    await app.state.sequences.create("acme", SequenceCreate(name="invoices"))
    for path, field, expected in (
        ("/console/sequences", "name",
         {"required": None, "spellcheck": "false", "autocapitalize": "none"}),
        ("/console/sequences", "format", {"spellcheck": "false"}),
        ("/console/sequences/invoices", "edit-format", {"spellcheck": "false"}),
    ):  # fmt: skip
        inputs = Inputs((await tenant_browser.get(path)).text).by_id
        assert {k: inputs[field].get(k, "absent") for k in expected} == expected, field
        assert not any("&" in k or '"' in k for k in inputs[field]), inputs[field]
    plain = Inputs((await tenant_browser.get("/console/sequences")).text).by_id["start"]
    assert not {"required", "spellcheck", "autocapitalize"} & set(plain)


async def test_settings_and_advance_forms_use_patch_and_advance_rules(
    app: FastAPI, tenant_browser: Browser
) -> None:
    await app.state.sequences.create("acme", SequenceCreate(name="tickets"))
    await app.state.sequences.next("acme", "tickets", 10)
    page = await tenant_browser.get("/console/sequences/tickets")
    csrf = csrf_of(page)
    low = await tenant_browser.post(
        "/console/sequences/tickets/settings", {"csrf": csrf, "step": "1", "max": "5"}
    )
    assert low.status_code == 409 and "below 10, the last number issued" in low.text
    assert 'value="5"' in low.text  # what was typed stays in the form
    back = await tenant_browser.post(
        "/console/sequences/tickets/advance", {"csrf": csrf, "to": "3"}
    )
    assert back.status_code == 409 and "only moves forward" in back.text
    ok = await tenant_browser.post("/console/sequences/tickets/advance", {"csrf": csrf, "to": "50"})
    assert ok.status_code == 303
    assert (await app.state.sequences.describe("acme", "tickets")).next == 50
    saved = await tenant_browser.post(
        "/console/sequences/tickets/settings",
        {"csrf": csrf, "step": "2", "max": "1000", "format": "T-{n}", "cycle": "on"},
    )
    assert saved.status_code == 303
    seq = await app.state.sequences.describe("acme", "tickets")
    assert (seq.step, seq.max, seq.format, seq.cycle) == (2, 1000, "T-{n}", True)
    cleared = await tenant_browser.post(
        "/console/sequences/tickets/settings", {"csrf": csrf, "step": "2"}
    )
    assert cleared.status_code == 303
    seq = await app.state.sequences.describe("acme", "tickets")
    assert (seq.max, seq.format, seq.cycle) == (None, None, False)


async def test_a_tenant_session_cannot_open_operator_pages_nor_the_reverse(
    tenant_browser: Browser, app: FastAPI
) -> None:
    r = await tenant_browser.get("/console/tenants")
    assert r.status_code == 403 and "platform operators" in r.text
    assert (await tenant_browser.get("/console/tenants/acme")).status_code == 403
    admin = await app.state.tenants.create_admin_client()
    operator = Browser(tenant_browser.http)
    await operator.sign_in(admin.client_id, admin.client_secret)
    r = await operator.get("/console/sequences")
    assert r.status_code == 403 and "tenant clients" in r.text


async def test_sign_out_clears_the_session_cookie(tenant_browser: Browser) -> None:
    page = await tenant_browser.get("/console/sequences")
    r = await tenant_browser.post("/console/sign-out", {"csrf": csrf_of(page)})
    assert r.status_code == 303 and r.headers["location"] == "/console/sign-in?signed_out=1"
    cookie = cookies_set(r)[SESSION]
    assert cookie["value"] == "" and cookie["max-age"] == "0"
    assert cookie["path"] == "/console" and cookie["httponly"] == "true"
    assert SESSION not in tenant_browser.cookies
    again = await tenant_browser.get("/console/sequences")
    assert again.status_code == 303


async def test_a_suspended_tenants_session_ends(app: FastAPI, tenant_browser: Browser) -> None:
    assert (await tenant_browser.get("/console/sequences")).status_code == 200
    await app.state.tenants.suspend("acme")
    r = await tenant_browser.get("/console/sequences")
    assert r.status_code == 303 and r.headers["location"] == "/console/sign-in?expired=1"


async def test_unknown_names_are_html_error_pages_under_the_csp(
    tenant_browser: Browser, app: FastAPI
) -> None:
    for path in ("/console/sequences/nope", "/console/sequences/NOT..VALID!"):
        r = await tenant_browser.get(path)
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
        assert_csp(r)
    admin = await app.state.tenants.create_admin_client()
    operator = Browser(tenant_browser.http)
    await operator.sign_in(admin.client_id, admin.client_secret)
    for path in ("/console/tenants/nope", "/console/tenants/NOT_A_SLUG"):
        r = await operator.get(path)
        assert r.status_code == 404 and "Back to the console" in r.text
        assert_csp(r)


async def test_addresses_the_console_has_no_page_for_are_html_pages(
    client: httpx.AsyncClient, tenant_browser: Browser
) -> None:
    for path in ("/console/nope", "/console/sequences/invoices/nope/deeper"):
        r = await tenant_browser.get(path)
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html"), path
        assert "No such page" in r.text and "Back to the console" in r.text
        assert_csp(r)
    r = await tenant_browser.get("/console/sign-out")
    assert r.status_code == 405 and r.headers["content-type"].startswith("text/html")
    assert r.headers["allow"] == "POST" and "Back to the console" in r.text
    assert_csp(r)
    api = await client.get("/v1/nope")  # the API keeps answering problem+json
    assert api.status_code == 404 and api.headers["content-type"] == "application/problem+json"


@pytest.fixture
async def siloed(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        store_url=f"sqlite:///{tmp_path}/t.db",  # type: ignore[arg-type]
        keys_dir=tmp_path / "keys",
        tenant="acme",
        brand_name="Acme <Invoicing>",
        brand_color="#ffd43b",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            yield c


async def test_the_console_wears_the_instances_brand(siloed: httpx.AsyncClient) -> None:
    r = await siloed.get("/console/sign-in")
    assert "<title>Sign in · Acme &lt;Invoicing&gt; console</title>" in r.text
    assert 'href="/console/brand.css"' in r.text and "<style" not in r.text
    assert "<script>" not in r.text and " style=" not in r.text
