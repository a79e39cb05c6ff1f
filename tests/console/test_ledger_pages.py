"""A ledger sequence in the console: reserve, commit and void through forms; the gap
report and the ledger, with CSV downloads equal to the API's CSV."""

from __future__ import annotations

import csv
import io

import httpx
from fastapi import FastAPI

from audit.service import Actor
from ledger.schemas import Gap
from sequences.schemas import SequenceCreate
from tenants.schemas import ClientCreate, Onboarded
from tests.console.support import Browser, csrf_of


def bearer(b: Browser) -> dict[str, str]:
    return {"Authorization": f"Bearer {b.cookies['tally_console']}"}


async def reservations(app: FastAPI, state: str = "reserved") -> list[str]:
    entries = await app.state.ledger.entries(
        "acme", "invoices", period=None, states=[state], since=None, until=None, after=None,
        limit=100,
    )  # fmt: skip
    return [e.reservation for e in entries]


async def test_reserve_commit_and_void_through_the_forms(
    app: FastAPI, tenant_browser: Browser
) -> None:
    page = await tenant_browser.get("/console/sequences")
    created = await tenant_browser.post(
        "/console/sequences",
        {"csrf": csrf_of(page), "name": "invoices", "format": "F-{n:04}", "ledger": "on"},
    )
    assert created.status_code == 303
    assert (await app.state.sequences.get("acme", "invoices")).ledger
    csrf = csrf_of(await tenant_browser.get("/console/sequences/invoices/ledger"))
    for reference in ("draft-1", "draft-2", ""):
        r = await tenant_browser.post(
            "/console/sequences/invoices/reservations",
            {"csrf": csrf, "ttl_seconds": "600", "reference": reference},
        )
        assert r.status_code == 303, r.text
    first, second, third = await reservations(app)
    bad = await tenant_browser.post(
        "/console/sequences/invoices/reservations", {"csrf": csrf, "ttl_seconds": "0"}
    )
    assert bad.status_code == 422 and "greater than or equal to 1" in bad.text

    r = await tenant_browser.post(
        f"/console/sequences/invoices/reservations/{first}/commit",
        {"csrf": csrf, "reference": "INV-1"},
    )
    assert r.status_code == 303
    no_reason = await tenant_browser.post(
        f"/console/sequences/invoices/reservations/{second}/void", {"csrf": csrf, "reason": " "}
    )
    assert no_reason.status_code == 422 and "at least 1 character" in no_reason.text
    r = await tenant_browser.post(
        f"/console/sequences/invoices/reservations/{second}/void",
        {"csrf": csrf, "reason": "draft deleted"},
    )
    assert r.status_code == 303
    again = await tenant_browser.post(
        f"/console/sequences/invoices/reservations/{second}/commit", {"csrf": csrf}
    )
    assert again.status_code == 409 and "voided" in again.text
    await app.state.sequences.next("acme", "invoices", 2)  # committed numbers by next

    page = await tenant_browser.get("/console/sequences/invoices/ledger")
    assert page.status_code == 200
    for field, count in [("issued", 5), ("committed", 3), ("voided", 1), ("reserved", 1)]:
        assert f'<dd data-field="{field}">{count}</dd>' in page.text, field
    assert '<dd data-field="unaccounted">0</dd>' in page.text
    assert "draft deleted" in page.text and third in page.text
    audit = await tenant_browser.get("/console/audit")
    assert "reservation.voided" in audit.text


async def test_csv_downloads_are_the_apis_csv(
    app: FastAPI, client: httpx.AsyncClient, tenant_browser: Browser
) -> None:
    await app.state.sequences.create("acme", SequenceCreate(name="invoices", ledger=True))
    for _ in range(3):
        await app.state.ledger.reserve("acme", "invoices", ttl_seconds=600, reference=None)
    await app.state.sequences.next("acme", "invoices", 2)
    first, *_ = await reservations(app)
    await app.state.ledger.void(
        "acme", "invoices", first, reason="typo, re-issued", actor=Actor("tester")
    )

    ledger = await tenant_browser.get("/console/sequences/invoices/ledger.csv")
    assert ledger.status_code == 200 and ledger.headers["content-type"].startswith("text/csv")
    assert ledger.headers["content-disposition"] == 'attachment; filename="invoices-ledger.csv"'
    assert "default-src 'self'" in ledger.headers["content-security-policy"]
    api = await client.get(
        "/v1/sequences/invoices/ledger", headers={**bearer(tenant_browser), "Accept": "text/csv"}
    )
    assert api.status_code == 200 and ledger.text == api.text
    assert len(list(csv.DictReader(io.StringIO(ledger.text)))) == 5

    gaps = await tenant_browser.get("/console/sequences/invoices/gaps.csv")
    api_gaps = await client.get(
        "/v1/sequences/invoices/gaps", headers={**bearer(tenant_browser), "Accept": "text/csv"}
    )
    assert gaps.text == api_gaps.text
    rows = list(csv.DictReader(io.StringIO(gaps.text)))
    assert list(rows[0]) == list(Gap.model_fields)
    assert [r["state"] for r in rows] == ["voided", "reserved", "reserved"]
    assert rows[0]["reason"] == "typo, re-issued"


async def test_a_sequence_without_a_ledger_has_no_ledger_page(tenant_browser: Browser) -> None:
    r = await tenant_browser.get("/console/sequences/default/ledger")
    assert r.status_code == 409 and "text/html" in r.headers["content-type"]
    unknown = await tenant_browser.get("/console/sequences/nope/gaps.csv")
    assert unknown.status_code == 404


async def test_a_period_that_is_no_period_is_a_422_page_not_a_header(
    app: FastAPI, tenant_browser: Browser
) -> None:
    await app.state.sequences.create("acme", SequenceCreate(name="invoices", ledger=True))
    for path in ("ledger", "ledger.csv", "gaps.csv"):
        ok = await tenant_browser.get(f"/console/sequences/invoices/{path}?period=2026-03")
        assert ok.status_code == 200, (path, ok.text)
        for period in ("%E6%97%A5", "x%22%3B%20a%3D", "2026%0D%0AX-Evil:%201", "2026-13"):
            r = await tenant_browser.get(f"/console/sequences/invoices/{path}?period={period}")
            assert r.status_code == 422, (path, period, r.status_code)
            assert r.headers["content-type"].startswith("text/html")
            assert "content-disposition" not in r.headers
            assert "YYYY-MM-DD" in r.text
    csv_ = await tenant_browser.get("/console/sequences/invoices/ledger.csv?period=2026-03")
    assert csv_.headers["content-disposition"] == (
        'attachment; filename="invoices-ledger-2026-03.csv"'
    )
    blank = await tenant_browser.get("/console/sequences/invoices/gaps.csv?period=")
    assert blank.headers["content-disposition"] == 'attachment; filename="invoices-gaps.csv"'


async def test_the_filter_forms_any_state_is_the_unfiltered_ledger(
    app: FastAPI, tenant_browser: Browser
) -> None:
    await app.state.sequences.create("acme", SequenceCreate(name="invoices", ledger=True))
    await app.state.ledger.reserve("acme", "invoices", ttl_seconds=600, reference="held")
    await app.state.sequences.next("acme", "invoices", 1)
    for path in ("ledger", "ledger.csv"):
        anything = await tenant_browser.get(f"/console/sequences/invoices/{path}?period=&state=")
        assert anything.status_code == 200, (path, anything.text)
    page = await tenant_browser.get("/console/sequences/invoices/ledger?period=&state=")
    assert "<td>reserved</td>" in page.text and "<td>committed</td>" in page.text
    rows = (await tenant_browser.get("/console/sequences/invoices/ledger.csv?state=")).text
    assert len(list(csv.DictReader(io.StringIO(rows)))) == 2
    bad = await tenant_browser.get("/console/sequences/invoices/ledger?state=lost")
    assert bad.status_code == 422 and "state" in bad.text


async def test_commit_and_void_failures_say_why_where_the_form_was(
    app: FastAPI, tenant_browser: Browser
) -> None:
    await app.state.sequences.create("acme", SequenceCreate(name="invoices", ledger=True))
    for _ in range(3):
        await app.state.ledger.reserve("acme", "invoices", ttl_seconds=600, reference=None)
    first, second, third = await reservations(app)
    csrf = csrf_of(await tenant_browser.get("/console/sequences/invoices/ledger"))

    too_long = await tenant_browser.post(
        f"/console/sequences/invoices/reservations/{first}/commit",
        {"csrf": csrf, "reference": "r" * 201},
    )
    assert too_long.status_code == 422
    assert 'id="commit-1" name="reference"' in too_long.text
    assert 'aria-invalid="true" aria-describedby="commit-1-error"' in too_long.text
    assert '<p class="field-error" id="commit-1-error">String should have at most 200' in (
        too_long.text
    )

    # Closed in another tab: its row is gone, so the message is the page's.
    actor = Actor("other-tab")
    await app.state.ledger.void("acme", "invoices", second, reason="dup", actor=actor)
    await app.state.ledger.commit("acme", "invoices", third, reference=None, actor=actor)
    for reservation, action, body, state in (
        (second, "commit", {}, "voided"),
        (third, "void", {"reason": "cancelled"}, "committed"),
    ):
        r = await tenant_browser.post(
            f"/console/sequences/invoices/reservations/{reservation}/{action}",
            {"csrf": csrf, **body},
        )
        assert r.status_code == 409
        assert (
            f'<div class="alert alert-error" role="alert">Reservation &#39;{reservation}&#39;'
            f" is {state}" in r.text
        )
    gone = await tenant_browser.post(
        f"/console/sequences/invoices/reservations/{second}/void", {"csrf": csrf, "reason": " "}
    )
    assert gone.status_code == 422
    assert '<div class="alert alert-error" role="alert">String should have at least 1' in gone.text


async def test_csv_downloads_defuse_formulas_as_the_api_does(
    app: FastAPI, client: httpx.AsyncClient, tenant_browser: Browser
) -> None:
    await app.state.sequences.create("acme", SequenceCreate(name="invoices", ledger=True))
    await app.state.ledger.reserve("acme", "invoices", ttl_seconds=600, reference="=1+1")
    (held,) = await reservations(app)
    await app.state.ledger.void("acme", "invoices", held, reason="@SUM(A1)", actor=Actor("t"))
    for path, column, text in (("ledger", "reference", "'=1+1"), ("gaps", "reason", "'@SUM(A1)")):
        download = await tenant_browser.get(f"/console/sequences/invoices/{path}.csv")
        (row,) = list(csv.DictReader(io.StringIO(download.text)))
        assert row[column] == text
        api = await client.get(
            f"/v1/sequences/invoices/{path}",
            headers={**bearer(tenant_browser), "Accept": "text/csv"},
        )
        assert download.text == api.text


async def test_a_read_only_client_sees_reservations_without_commit_or_void_columns(
    app: FastAPI, browser: Browser, acme: Onboarded
) -> None:
    await app.state.sequences.create("acme", SequenceCreate(name="invoices", ledger=True))
    reader = await app.state.tenants.create_client(
        "acme", ClientCreate(name="reader", scopes=["sequences:read"])
    )
    assert (await browser.sign_in(reader.client_id, reader.client_secret)).status_code == 303
    page = await browser.get("/console/sequences/invoices/ledger")
    assert page.status_code == 200 and ">Commit</th>" not in page.text
    assert '<td colspan="3" class="muted">No open reservations.</td>' in page.text
