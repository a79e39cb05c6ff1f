"""The console in a real browser (Playwright driving Debian's chromium) against a real
``tally serve``: an operator and a tenant sign in, look around and sign out.

The guard fails a test on any request that leaves the server's origin, any JavaScript
error, any console or docs response without a CSP, or a token in any URL requested.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.console.browser import Guard
from tests.console.conftest import OpenPage
from tests.e2e.conftest import cli, running_server, server_env

pytestmark = pytest.mark.e2e


def onboard(env: dict[str, str], slug: str) -> dict[str, Any]:
    result = cli(env, "tenants", "create", slug, "--name", f"{slug.title()} Ltd", "--json")
    assert result.returncode == 0, result.stderr
    creds: dict[str, Any] = json.loads(result.stdout)
    return creds


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A server with two tenants and a platform-admin client, made by the real CLI."""
    env = server_env(Path(tmp_path_factory.mktemp("console-server")))
    acme, globex = onboard(env, "acme"), onboard(env, "globex")
    admin = json.loads(cli(env, "admin", "clients", "create", "--json").stdout)
    with running_server(env) as url:
        yield {"url": url, "acme": acme, "globex": globex, "admin": admin}


def api_token(url: str, creds: dict[str, Any]) -> str:
    r = httpx.post(
        f"{url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(creds["client_id"], creds["client_secret"]),
        timeout=30,
    )
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token


def take(url: str, token: str, sequence: str, count: int) -> dict[str, Any]:
    r = httpx.post(
        f"{url}/v1/sequences/{sequence}/next",
        json={"count": count},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def sign_in(guard: Guard, creds: dict[str, Any]) -> str:
    """Sign in through the form; the session token, read from the browser's cookie jar."""
    page = guard.page
    page.goto("/console")
    page.wait_for_url("**/console/sign-in")
    page.get_by_label("Client ID").fill(creds["client_id"])
    page.get_by_label("Client secret").fill(creds["client_secret"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    session = [c for c in guard.context.cookies() if c["name"] == "tally_console"]
    assert len(session) == 1
    cookie = session[0]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
    # Script can read neither the token nor any copy of it.
    assert page.evaluate("document.cookie") == ""
    assert page.evaluate("window.localStorage.length + window.sessionStorage.length") == 0
    return cookie["value"]


def sign_out(guard: Guard) -> None:
    guard.page.get_by_role("button", name="Sign out").click()
    guard.page.wait_for_url("**/console/sign-in?signed_out=1")
    assert guard.page.get_by_text("You are signed out.").is_visible()
    assert not [c for c in guard.context.cookies() if c["name"] == "tally_console"]
    guard.page.goto("/console/sequences")  # the session is gone, not just hidden
    guard.page.wait_for_url("**/console/sign-in")


def test_operator_signs_in_sees_tenants_and_a_tenants_usage_chart(
    instance: dict[str, Any], guarded: OpenPage
) -> None:
    url = instance["url"]
    token = api_token(url, instance["acme"])
    take(url, token, "default", 40)
    take(url, token, "default", 2)
    guard = guarded(url)
    page = guard.page
    guard.shot("sign-in")
    session = sign_in(guard, instance["admin"])
    page.wait_for_url("**/console/tenants")
    table = page.get_by_role("table")
    assert table.get_by_role("link", name="acme").is_visible()
    assert table.get_by_role("link", name="globex").is_visible()
    acme_row = page.get_by_role("row").filter(has=page.get_by_role("link", name="acme"))
    # status, plan, sequences, numbers today, numbers over 30 days
    assert re.search(r"active\s+standard\s+1\s+42\s+42", acme_row.inner_text()), (
        acme_row.inner_text()
    )
    guard.shot("operator-tenants")

    page.get_by_role("link", name="acme").click()
    page.wait_for_url("**/console/tenants/acme")
    assert page.get_by_role("heading", name=re.compile("Acme Ltd")).is_visible()
    chart = page.get_by_role("img", name="Numbers issued by acme per day")
    assert chart.is_visible()
    assert chart.get_attribute("data-bars") == "30"
    heights = page.locator("#usage-chart rect.bar").evaluate_all(
        "bars => bars.map(b => Number(b.getAttribute('height')))"
    )
    assert len(heights) == 30 and heights[-1] > 0 and sum(heights[:-1]) == 0
    page.get_by_role("link", name="hour (last 24)").click()
    page.wait_for_url("**/console/tenants/acme?granularity=hour")
    assert page.locator("#usage-chart").get_attribute("data-bars") == "24"
    assert page.get_by_role("cell", name="default").first.is_visible()
    guard.shot("operator-tenant")

    # A new client: its secret shown once, working at the token endpoint; then revoked.
    page.get_by_label("Client name").fill("billing")
    page.get_by_label("sequences:write").uncheck()
    page.get_by_role("button", name="Create client").click()
    page.wait_for_url("**/console/tenants/acme/clients")
    client_id = page.locator("#new-client-id").inner_text()
    secret = page.get_by_label("Client secret").input_value()
    guard.shot("operator-client-created")
    granted = httpx.post(
        f"{url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
        timeout=30,
    )
    assert granted.status_code == 200 and granted.json()["scope"] == "sequences:read sequences:next"
    page.goto("/console/tenants/acme")
    assert secret not in page.content()
    page.once("dialog", lambda dialog: dialog.accept())  # "Revoke …?" (console.js)
    page.get_by_role("button", name=f"Revoke {client_id}").click()
    page.wait_for_url("**/console/tenants/acme?done=revoked")
    revoked = page.get_by_role("row").filter(has_text=client_id)
    assert "revoked" in revoked.inner_text()

    # Suspend asks first (dismissed: nothing happens), then suspends; resume lifts it.
    page.goto("/console/tenants/globex")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Suspend tenant").click()
    assert page.get_by_role("button", name="Suspend tenant").is_visible()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Suspend tenant").click()
    page.wait_for_url("**/console/tenants/globex?done=suspended")
    page.get_by_role("button", name="Resume tenant").click()
    page.wait_for_url("**/console/tenants/globex?done=resumed")

    page.get_by_role("link", name="Overview").click()
    page.wait_for_url("**/console/overview")
    assert page.locator('dd[data-field="today"]').inner_text() == "42"
    top = page.get_by_role("row").filter(has=page.get_by_role("link", name="acme"))
    assert re.search(r"acme\s+Acme Ltd\s+42\s+42", top.inner_text())
    guard.shot("operator-overview")

    page.get_by_role("link", name="API docs").click()
    page.locator(".opblock").first.wait_for(timeout=20_000)
    page.go_back()
    sign_out(guard)
    guard.assert_clean(secrets=(session, token, secret))


def test_tenant_creates_a_sequence_takes_numbers_by_api_and_sees_them(
    instance: dict[str, Any], guarded: OpenPage
) -> None:
    url = instance["url"]
    guard = guarded(url)
    page = guard.page
    session = sign_in(guard, instance["globex"])
    page.wait_for_url("**/console/sequences")
    guard.shot("tenant-sequences-empty")
    # Names and formats are identifiers: no red squiggles, no capital first letter.
    name_box = page.get_by_label("Name", exact=True)
    assert name_box.evaluate("e => [e.spellcheck, e.autocapitalize, e.required]") == [
        False, "none", True
    ]  # fmt: skip
    assert page.get_by_label("Format").evaluate("e => e.spellcheck") is False

    # A bad format first: the API's own message, next to its field.
    page.get_by_label("Name", exact=True).fill("invoices")
    page.get_by_label("Format").fill("INV-{yyyy}-{bogus}")
    page.get_by_role("button", name="Create sequence").click()
    page.wait_for_load_state()
    error = page.locator("#format-error")
    assert "unknown token {bogus}" in error.inner_text()
    assert page.get_by_label("Format").get_attribute("aria-invalid") == "true"
    guard.shot("tenant-form-error")

    page.get_by_label("Format").fill("INV-{yyyy}-{n:05}")
    page.get_by_label("Max", exact=True).fill("1000")
    page.get_by_role("button", name="Create sequence").click()
    page.wait_for_url("**/console/sequences/invoices?done=created")
    assert page.get_by_text("Sequence created.").is_visible()

    token = api_token(url, instance["globex"])
    taken = [take(url, token, "invoices", n) for n in (5, 7)]
    assert taken[-1]["last"] == 12

    page.goto("/console/sequences")
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name="invoices"))
    assert row.locator('[data-field="last"]').inner_text() == "12"
    assert re.search(r"INV-\d{4}-00013", row.locator('[data-field="next"]').inner_text())
    assert "988" in row.inner_text()  # headroom: 1000 - 13 + 1
    guard.shot("tenant-sequences")

    page.get_by_role("link", name="invoices").click()
    page.wait_for_url("**/console/sequences/invoices")
    page.get_by_label("Next number").fill("500")
    page.get_by_role("button", name="Advance").click()
    page.wait_for_url("**/console/sequences/invoices?done=advanced")
    assert page.locator('dd[data-field="next"]').inner_text().startswith("500")
    guard.shot("tenant-sequence")

    page.get_by_role("link", name="Usage").click()
    page.wait_for_url("**/console/usage")
    assert page.get_by_role("img", name="Numbers issued per day").is_visible()
    assert page.get_by_role("row", name=re.compile(r"invoices\s+12\s+2")).is_visible()
    guard.shot("tenant-usage")

    page.get_by_role("link", name="Audit trail").click()
    invoices = page.get_by_role("row").filter(has_text="sequences/invoices")
    assert invoices.filter(has_text="sequence.created").count() == 1
    assert invoices.filter(has_text="sequence.advanced").count() == 1
    guard.shot("tenant-audit")

    # Keyboard only: the sign-out button is reachable and works with Enter.
    page.get_by_role("link", name="Audit trail").focus()
    for _ in range(3):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Sign out":
            break
    assert page.evaluate("document.activeElement.textContent") == "Sign out"
    page.keyboard.press("Enter")
    page.wait_for_url("**/console/sign-in?signed_out=1")
    assert not [c for c in guard.context.cookies() if c["name"] == "tally_console"]
    guard.assert_clean(secrets=(session, token))


def test_tenant_reserves_commits_voids_and_downloads_the_gap_report(
    instance: dict[str, Any], guarded: OpenPage, tmp_path: Path
) -> None:
    url = instance["url"]
    guard = guarded(url)
    page = guard.page
    session = sign_in(guard, instance["acme"])
    page.get_by_label("Name", exact=True).fill("receipts")
    page.get_by_label("Format").fill("R-{n:04}")
    page.get_by_label(re.compile("Keep a ledger")).check()
    page.get_by_role("button", name="Create sequence").click()
    page.wait_for_url("**/console/sequences/receipts?done=created")
    page.get_by_role("link", name="reservations, ledger and gap report").click()
    page.wait_for_url("**/console/sequences/receipts/ledger")

    for reference in ("draft-7", "draft-8"):
        page.get_by_label("Reference", exact=True).fill(reference)
        page.get_by_role("button", name="Reserve", exact=True).click()
        page.wait_for_url("**/ledger?done=reserved")
    assert page.get_by_role("row").filter(has_text="draft-8").count() == 2  # open + ledger
    guard.shot("tenant-reservations")
    page.get_by_label("Reference for 1").fill("INV-7")
    page.get_by_role("button", name="Commit 1").click()
    page.wait_for_url("**/ledger?done=committed")
    page.get_by_label("Reason to void 2").fill("draft deleted")
    page.get_by_role("button", name="Void 2").click()
    page.wait_for_url("**/ledger?done=voided")

    token = api_token(url, instance["acme"])
    take(url, token, "receipts", 1)  # a committed number straight from `next`
    page.reload()
    report = {
        field: page.locator(f'#gap-report [data-field="{field}"]').inner_text()
        for field in ("issued", "committed", "voided", "reserved", "unaccounted")
    }
    assert report == {
        "issued": "3", "committed": "2", "voided": "1", "reserved": "0", "unaccounted": "0"
    }  # fmt: skip
    guard.shot("tenant-ledger")

    with page.expect_download() as download:
        page.get_by_role("link", name="Download the gap report (CSV)").click()
    gaps = tmp_path / "gaps.csv"
    download.value.save_as(gaps)
    lines = gaps.read_text().splitlines()
    assert lines[0] == "value,formatted,state,reason,at,reservation"
    assert len(lines) == 2 and lines[1].startswith("2,R-0002,voided,draft deleted,")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the ledger (CSV)").click()
    ledger = tmp_path / "ledger.csv"
    download.value.save_as(ledger)
    rows = list(csv.DictReader(io.StringIO(ledger.read_text())))
    assert [(r["value"], r["state"], r["reference"]) for r in rows] == [
        ("1", "committed", "INV-7"),
        ("2", "voided", "draft-8"),
        ("3", "committed", ""),
    ]
    sign_out(guard)
    guard.assert_clean(secrets=(session, token))


def api_post(url: str, token: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = httpx.post(
        f"{url}/v1/sequences{path}",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert r.status_code in (200, 201), r.text
    out: dict[str, Any] = r.json()
    return out


def test_the_ledger_filters_any_state_shows_the_whole_ledger(
    instance: dict[str, Any], guarded: OpenPage
) -> None:
    url = instance["url"]
    token = api_token(url, instance["acme"])
    api_post(url, token, "", {"name": "orders", "ledger": True})
    api_post(url, token, "/orders/reservations", {"reference": "held"})
    take(url, token, "orders", 1)
    guard = guarded(url)
    page = guard.page
    session = sign_in(guard, instance["acme"])
    page.goto("/console/sequences/orders/ledger")
    ledger = page.locator("section", has=page.get_by_role("heading", name="Ledger", exact=True))
    page.get_by_label("State").select_option("committed")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**/ledger?period=&state=committed")
    assert ledger.locator("tbody tr").count() == 1
    page.get_by_label("State").select_option(label="any")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**/ledger?period=&state=")
    assert page.get_by_role("heading", level=1).inner_text().startswith("Ledger of")
    assert ledger.locator("tbody tr").count() == 2
    assert page.get_by_label("State").input_value() == ""
    guard.assert_clean(secrets=(session, token))


def test_landing_page_renders_its_brand_under_the_csp(
    instance: dict[str, Any], guarded: OpenPage
) -> None:
    # The page used an inline <style> and had no CSP; the guard fails on any CSP
    # violation (a console error) and on a landing response without a policy.
    guard = guarded(instance["url"])
    page = guard.page
    page.goto("/")
    header = page.locator("header")
    assert header.is_visible()
    background = header.evaluate("e => getComputedStyle(e).backgroundColor")
    brand = httpx.get(f"{instance['url']}/console/brand.css", timeout=30).text
    hex_color = re.search(r"--brand: #([0-9a-f]{6})", brand)
    assert hex_color is not None
    r, g, b = (int(hex_color[1][i : i + 2], 16) for i in (0, 2, 4))
    assert background == f"rgb({r}, {g}, {b})"
    assert page.get_by_role("link", name="Console").is_visible()
    guard.shot("landing")
