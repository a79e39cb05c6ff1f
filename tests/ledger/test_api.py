"""Ledger sequences through the API, on every backend: every transition and refusal."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from core.clock import FrozenClock
from core.settings import Settings
from storage import Store
from tests.sequences.support import Api, running_api
from tests.tenants.builders import make_tenant

SEQ = "/v1/sequences/inv"


@pytest.fixture
def now_clock() -> FrozenClock:
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
async def api(settings: Settings, now_clock: FrozenClock, store: Store) -> AsyncIterator[Api]:
    if not getattr(store, "atomic_riders", False):
        pytest.skip(f"{store.kind} keeps no ledger (see test_a_store_without_atomic_riders...)")
    async with running_api(settings, now_clock, store=store) as running:
        r = await running.create(name="inv", ledger=True, format="INV-{n:04}")
        assert r.status_code == 201, r.text
        assert r.json()["ledger"] is True
        yield running


async def call(
    api: Api, method: str, path: str, body: Any = None, **headers: str
) -> httpx.Response:
    return await api.client.request(method, path, json=body, headers={**api.headers(), **headers})


async def reserve(api: Api, **body: Any) -> dict[str, Any]:
    r = await call(api, "POST", f"{SEQ}/reservations", body)
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


async def report(api: Api, **params: str) -> dict[str, Any]:
    r = await api.client.get(f"{SEQ}/gaps", params=params, headers=api.headers())
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


@pytest.mark.parametrize(
    "body",
    [{"mode": "cached"}, {"cycle": True, "max": 9}, {"ledger": "yes"}],
    ids=["cached", "cycle", "not-bool"],
)
async def test_a_ledger_is_strict_and_never_cycles(api: Api, body: dict[str, Any]) -> None:
    r = await api.create(name="bad", **{"ledger": True, **body})
    assert r.status_code == 422, r.text


async def test_next_issues_committed_numbers_with_their_reference(api: Api) -> None:
    r = await call(api, "POST", f"{SEQ}/next", {"reference": "order-9"})
    assert r.status_code == 200 and r.json()["formatted"] == "INV-0001"
    await call(api, "POST", f"{SEQ}/next", {"count": 2})
    page = (await api.client.get(f"{SEQ}/ledger", headers=api.headers())).json()
    rows = [(e["value"], e["formatted"], e["state"], e["reference"]) for e in page["items"]]
    assert rows == [
        (1, "INV-0001", "committed", "order-9"),
        (2, "INV-0002", "committed", None),
        (3, "INV-0003", "committed", None),
    ]
    assert page["items"][0]["actor"] == "user-of-acme"
    too_many = await call(api, "POST", f"{SEQ}/next", {"count": 1001})
    assert too_many.status_code == 422
    long_ref = await call(api, "POST", f"{SEQ}/next", {"reference": "x" * 201})
    assert long_ref.status_code == 422
    assert (await api.peek("inv"))["next"] == 4


async def test_ledger_features_on_a_plain_sequence_are_a_409(api: Api) -> None:
    await api.create(name="plain")
    for method, path, body in [
        ("POST", "/v1/sequences/plain/next", {"reference": "x"}),
        ("POST", "/v1/sequences/plain/reservations", {}),
        ("GET", "/v1/sequences/plain/ledger", None),
        ("GET", "/v1/sequences/plain/gaps", None),
    ]:
        r = await call(api, method, path, body)
        assert r.status_code == 409, (path, r.text)
        assert r.json()["type"] == "/problems/not-a-ledger"
    assert (await api.peek("plain"))["next"] == 1


async def test_reserve_then_commit_and_commit_again(api: Api) -> None:
    held = await reserve(api, reference="draft-1", ttl_seconds=600)
    assert held["state"] == "reserved" and held["value"] == 1 and held["formatted"] == "INV-0001"
    assert held["id"].startswith("rsv_") and len(held["id"]) >= 20
    assert datetime.fromisoformat(held["expires_at"]) == api.clock.now().replace(
        microsecond=0
    ) + __import__("datetime").timedelta(seconds=600)
    path = f"{SEQ}/reservations/{held['id']}"
    got = await call(api, "GET", path)
    assert got.json()["state"] == "reserved"
    done = await call(api, "POST", f"{path}/commit", {"reference": "INV-2026-1"})
    assert done.status_code == 200 and done.json()["state"] == "committed"
    assert done.json()["reference"] == "INV-2026-1"
    again = await call(api, "POST", f"{path}/commit")
    assert again.status_code == 200 and again.json() == done.json()
    void = await call(api, "POST", f"{path}/void", {"reason": "too late"})
    assert void.status_code == 409 and void.json()["type"] == "/problems/reservation-closed"


async def test_void_keeps_the_number_with_its_reason_and_actor(api: Api) -> None:
    held = await reserve(api)
    path = f"{SEQ}/reservations/{held['id']}"
    assert (await call(api, "POST", f"{path}/void", {})).status_code == 422  # reason required
    assert (await call(api, "POST", f"{path}/void", {"reason": "x" * 501})).status_code == 422
    voided = await call(api, "POST", f"{path}/void", {"reason": "draft cancelled"})
    assert voided.status_code == 200
    assert (voided.json()["state"], voided.json()["reason"]) == ("voided", "draft cancelled")
    retried = await call(api, "POST", f"{path}/void", {"reason": "draft cancelled"})
    assert retried.status_code == 200
    late = await call(api, "POST", f"{path}/commit")
    assert late.status_code == 409 and late.json()["state"] == "voided"
    trail = (await api.client.get("/v1/audit", headers=api.headers())).json()["items"]
    [entry] = [e for e in trail if e["action"] == "reservation.voided"]
    assert entry["actor"] == "user-of-acme" and entry["after"]["reason"] == "draft cancelled"
    nxt = await call(api, "POST", f"{SEQ}/next")
    assert nxt.json()["value"] == 2  # a voided number is never issued again


async def test_an_unconfirmed_reservation_expires_at_its_instant(api: Api) -> None:
    held = await reserve(api, ttl_seconds=60)
    path = f"{SEQ}/reservations/{held['id']}"
    api.clock.advance(59.999)
    assert (await call(api, "GET", path)).json()["state"] == "reserved"
    api.clock.advance(0.001)
    got = (await call(api, "GET", path)).json()
    assert (got["state"], got["reason"]) == ("expired", "expired")
    assert got["closed_at"] == got["expires_at"]
    late = await call(api, "POST", f"{path}/commit")
    assert late.status_code == 409 and late.json()["state"] == "expired"
    gaps = await report(api)
    assert (gaps["expired"], gaps["reserved"], gaps["unaccounted"]) == (1, 0, 0)


async def test_reservations_of_other_tenants_and_sequences_are_404(api: Api) -> None:
    held = await reserve(api)
    await api.create("globex", name="inv", ledger=True)
    await api.create(name="inv2", ledger=True)
    theirs = await api.client.get(f"{SEQ}/reservations/{held['id']}", headers=api.headers("globex"))
    assert theirs.status_code == 404
    assert theirs.json()["type"] == "/problems/reservation-not-found"
    other_seq = await call(api, "POST", f"/v1/sequences/inv2/reservations/{held['id']}/commit")
    assert other_seq.status_code == 404
    guessed = await call(api, "GET", f"{SEQ}/reservations/rsv_{'A' * 22}")
    assert guessed.status_code == 404
    malformed = await call(api, "GET", f"{SEQ}/reservations/not-an-id")
    assert malformed.status_code == 422


@pytest.mark.parametrize("ttl", [0, 86_401, "60", None])
async def test_a_bad_ttl_is_a_422_and_takes_nothing(api: Api, ttl: Any) -> None:
    r = await call(api, "POST", f"{SEQ}/reservations", {"ttl_seconds": ttl})
    assert r.status_code == 422
    assert (await api.peek("inv"))["next"] == 1


async def test_the_gap_report_accounts_for_every_number(api: Api) -> None:
    await call(api, "POST", f"{SEQ}/next", {"count": 3})
    kept = await reserve(api)  # 4, committed below
    open_ = await reserve(api, ttl_seconds=3600)  # 5, still reserved
    lapsed = await reserve(api, ttl_seconds=10)  # 6, expires
    cancelled = await reserve(api)  # 7, voided
    await call(api, "POST", f"{SEQ}/reservations/{kept['id']}/commit")
    await call(api, "POST", f"{SEQ}/reservations/{cancelled['id']}/void", {"reason": "dup"})
    api.clock.advance(11)
    got = await report(api)
    summary = {k: v for k, v in got.items() if k != "gaps"}
    assert summary == {
        "period": None,
        "first": 1,
        "last": 7,
        "issued": 7,
        "committed": 4,
        "voided": 1,
        "expired": 1,
        "reserved": 1,
        "unaccounted": 0,
    }
    gaps = [(g["value"], g["state"], g["reason"], g["reservation"]) for g in got["gaps"]]
    assert gaps == [
        (5, "reserved", None, open_["id"]),
        (6, "expired", "expired", lapsed["id"]),
        (7, "voided", "dup", cancelled["id"]),
    ]
    assert got["gaps"][1]["at"] == lapsed["expires_at"]
    assert (await api.peek("inv"))["last"] == got["issued"]


async def test_the_ledger_pages_and_filters(api: Api) -> None:
    await call(api, "POST", f"{SEQ}/next", {"count": 5})
    held = await reserve(api)
    h = api.headers()
    first = (await api.client.get(f"{SEQ}/ledger", params={"limit": 2}, headers=h)).json()
    assert [e["value"] for e in first["items"]] == [1, 2] and first["next_cursor"] == "2"
    rest = await api.client.get(f"{SEQ}/ledger", params={"after": 2, "limit": 10}, headers=h)
    assert [e["value"] for e in rest.json()["items"]] == [3, 4, 5, 6]
    assert rest.json()["next_cursor"] is None
    only = await api.client.get(f"{SEQ}/ledger", params={"state": "reserved"}, headers=h)
    assert [e["reservation"] for e in only.json()["items"]] == [held["id"]]
    window = {"from": "2000-01-01T00:00:00Z", "to": api.clock.now().isoformat()}
    assert (await api.client.get(f"{SEQ}/ledger", params=window, headers=h)).json()["items"] == []
    for bad in ({"state": "lost"}, {"after": "x"}, {"from": "yesterday"}, {"limit": 0}):
        r = await api.client.get(f"{SEQ}/ledger", params=bad, headers=h)
        assert r.status_code == 422, bad
    other = await api.client.get(f"{SEQ}/ledger", params={"period": "1999"}, headers=h)
    assert other.json()["items"] == []


def parse_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def as_csv_cells(row: dict[str, Any]) -> dict[str, str]:
    return {k: "" if v is None else str(v) for k, v in row.items()}


async def test_csv_forms_hold_the_same_rows_as_the_json(api: Api) -> None:
    await call(api, "POST", f"{SEQ}/next", {"reference": 'a "quoted", comma'})
    held = await reserve(api, reference="line\nbreak")
    await call(api, "POST", f"{SEQ}/reservations/{held['id']}/void", {"reason": "x,y"})
    await reserve(api)
    h = api.headers()
    for path, key in ((f"{SEQ}/ledger", "items"), (f"{SEQ}/gaps", "gaps")):
        as_json = (await api.client.get(path, headers=h)).json()[key]
        r = await api.client.get(path, headers={**h, "Accept": "text/csv"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert parse_csv(r.text) == [as_csv_cells(row) for row in as_json]
        assert len(as_json) >= 2
    paged = await api.client.get(
        f"{SEQ}/ledger", params={"limit": 1}, headers={**h, "Accept": "text/csv"}
    )
    assert len(parse_csv(paged.text)) == 1 and 'rel="next"' in paged.headers["link"]


async def test_a_ledger_sequence_is_never_deleted_renumbered_or_skipped(api: Api) -> None:
    await call(api, "POST", f"{SEQ}/next")
    deleted = await call(api, "DELETE", SEQ)
    assert deleted.status_code == 409 and deleted.json()["type"] == "/problems/ledger-kept"
    advanced = await call(api, "POST", f"{SEQ}/advance", {"to": 100})
    assert advanced.status_code == 409
    for patch in ({"step": 2}, {"max": 1000}, {"cycle": True}):
        assert (await call(api, "PATCH", SEQ, patch)).status_code == 422, patch
    reformatted = await call(api, "PATCH", SEQ, {"format": "F-{n}"})
    assert reformatted.status_code == 200 and reformatted.json()["next_formatted"] == "F-2"
    gaps = await report(api)
    assert (gaps["issued"], gaps["unaccounted"]) == (1, 0)


async def test_a_retried_reservation_is_the_same_reservation(api: Api) -> None:
    key = {"Idempotency-Key": "draft-77"}
    first = await call(api, "POST", f"{SEQ}/reservations", {"reference": "d77"}, **key)
    again = await call(api, "POST", f"{SEQ}/reservations", {"reference": "d77"}, **key)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    other = await call(api, "POST", f"{SEQ}/reservations", {"reference": "d78"}, **key)
    assert other.status_code == 422
    path = f"{SEQ}/reservations/{first.json()['id']}"
    void_key = {"Idempotency-Key": "void-77"}
    v1 = await call(api, "POST", f"{path}/void", {"reason": "gone"}, **void_key)
    v2 = await call(api, "POST", f"{path}/void", {"reason": "gone"}, **void_key)
    assert v1.status_code == v2.status_code == 200 and v2.headers["idempotent-replayed"] == "true"
    assert (await report(api))["issued"] == 1


async def test_a_key_whose_process_died_after_the_increment_answers_its_numbers(
    api: Api,
) -> None:
    """The numbers are recorded on the key in the increment's own write: a crash before
    the response was stored cannot make the retry take new ones."""
    from starlette.requests import Request

    from idempotency.dependencies import fingerprint
    from idempotency.service import LEASE_SECONDS

    for path, body in ((f"{SEQ}/next", {"count": 2}), (f"{SEQ}/reservations", {})):
        raw = __import__("json").dumps(body).encode()
        scope = {"type": "http", "method": "POST", "path": path, "headers": []}
        key = f"crash-{path}"
        claim = await api.app.state.idempotency.begin("acme", key, fingerprint(Request(scope), raw))
        # The dead process got this far: numbers taken with the key, no response stored.
        if path.endswith("/next"):
            await api.app.state.sequences.next("acme", "inv", 2, idempotency_key=claim.key)
        else:
            await api.app.state.ledger.reserve(
                "acme", "inv", ttl_seconds=900, reference=None, idempotency_key=claim.key
            )
        before = (await report(api))["issued"]
        api.clock.advance(LEASE_SECONDS + 1)
        retry = await call(api, "POST", path, body, **{"Idempotency-Key": key})
        assert retry.status_code in (200, 201), retry.text
        assert (await report(api))["issued"] == before  # nothing new was taken
        if path.endswith("/next"):
            assert (retry.json()["value"], retry.json()["last"]) == (1, 2)
        else:
            assert retry.json()["value"] == 3 and retry.json()["state"] == "reserved"


async def test_admins_read_any_tenants_ledger_and_gaps(api: Api) -> None:
    await make_tenant(api.app.state.tenants, "acme")
    await call(api, "POST", f"{SEQ}/next", {"reference": "r"})
    await reserve(api)
    admin = api.admin_headers()
    for tail in ("ledger", "gaps"):
        mine = await api.client.get(f"{SEQ}/{tail}", headers=api.headers())
        theirs = await api.client.get(f"/admin/v1/tenants/acme/sequences/inv/{tail}", headers=admin)
        assert theirs.status_code == 200 and theirs.json() == mine.json()
        as_csv = await api.client.get(
            f"/admin/v1/tenants/acme/sequences/inv/{tail}", headers={**admin, "Accept": "text/csv"}
        )
        assert as_csv.headers["content-type"].startswith("text/csv")
        unknown = await api.client.get(
            f"/admin/v1/tenants/nope/sequences/inv/{tail}", headers=admin
        )
        assert unknown.status_code == 404
        tenant = await api.client.get(
            f"/admin/v1/tenants/acme/sequences/inv/{tail}", headers=api.headers()
        )
        assert tenant.status_code == 403


async def test_reading_needs_read_and_reserving_needs_next(api: Api) -> None:
    read = api.headers(scopes="sequences:read")
    r = await api.client.post(f"{SEQ}/reservations", json={}, headers=read)
    assert r.status_code == 403
    take = api.headers(scopes="sequences:next")
    assert (await api.client.get(f"{SEQ}/gaps", headers=take)).status_code == 403
    assert (await api.client.post(f"{SEQ}/reservations", json={}, headers=take)).status_code == 201


async def test_a_store_without_atomic_riders_refuses_ledger_sequences(
    settings: Settings, now_clock: FrozenClock, store: Store
) -> None:
    """Bigtable (one-row atomicity) refuses a ledger at creation, never weakens it; here
    every other backend is made to look like it, and Bigtable is itself."""
    if getattr(store, "atomic_riders", False):
        store.atomic_riders = False  # type: ignore[misc]
    async with running_api(settings, now_clock, store=store) as api:
        r = await api.create(name="inv", ledger=True)
        assert r.status_code == 422 and "atomically" in r.json()["detail"]
        assert "SQLite or MongoDB" in r.json()["detail"]  # which backend keeps one
        assert r.headers["content-type"] == "application/problem+json"
        # Idempotency keys still work: a stored response is replayed.
        assert (await api.create(name="plain")).status_code == 201
        key = {"Idempotency-Key": "k"}
        first = await call(api, "POST", "/v1/sequences/plain/next", **key)
        again = await call(api, "POST", "/v1/sequences/plain/next", **key)
        assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"


@pytest.mark.parametrize("period", ["日", 'x";a=', "2026\r\nX: 1", "2026-00", "26"])
async def test_a_period_outside_the_reset_grammar_is_a_422(api: Api, period: str) -> None:
    for path in (f"{SEQ}/ledger", f"{SEQ}/gaps"):
        for accept in ("application/json", "text/csv"):
            r = await api.client.get(
                path, params={"period": period}, headers={**api.headers(), "Accept": accept}
            )
            assert r.status_code == 422, (path, accept, r.text)
            assert "YYYY-MM-DD" in r.json()["detail"]


FORMULAS = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\r=1"]


async def test_csv_text_a_spreadsheet_would_run_starts_with_a_quote(api: Api) -> None:
    for reference in FORMULAS:
        await call(api, "POST", f"{SEQ}/next", {"reference": reference})
    held = await reserve(api, reference="plain")
    await call(
        api, "POST", f"{SEQ}/reservations/{held['id']}/void", {"reason": "=cmd|' /C calc'!A0"}
    )
    h = {**api.headers(), "Accept": "text/csv"}
    rows = parse_csv((await api.client.get(f"{SEQ}/ledger", headers=h)).text)
    assert [r["reference"] for r in rows] == [*("'" + f for f in FORMULAS), "plain"]
    assert rows[-1]["reason"] == "'=cmd|' /C calc'!A0"
    gaps = parse_csv((await api.client.get(f"{SEQ}/gaps", headers=h)).text)
    assert [g["reason"] for g in gaps] == ["'=cmd|' /C calc'!A0"]
    # Numbers stay numbers: negative values, and a formatted value that is a plain number.
    r = await api.create(name="credit", ledger=True, start=-2, format="{n}")
    assert r.status_code == 201, r.text
    await call(api, "POST", "/v1/sequences/credit/next", {"count": 2, "reference": "-1"})
    credit = parse_csv((await api.client.get("/v1/sequences/credit/ledger", headers=h)).text)
    assert [(c["value"], c["formatted"], c["reference"]) for c in credit] == [
        ("-2", "-2", "-1"),
        ("-1", "-1", "-1"),
    ]
