"""The sequences API through the ASGI app (real SQLite file, real tokens)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from tests.conftest import ALL_SCOPES

Headers = Callable[..., dict[str, str]]


async def create(
    client: httpx.AsyncClient, headers: dict[str, str], **body: object
) -> httpx.Response:
    return await client.post("/v1/sequences", json=body, headers=headers)


async def test_create_then_take_numbers(client: httpx.AsyncClient, auth_headers: Headers) -> None:
    h = auth_headers()
    r = await create(client, h, name="invoices")
    assert r.status_code == 201
    assert r.json()["next"] == 1 and r.json()["last"] is None
    r = await client.post("/v1/sequences/invoices/next", headers=h)
    assert r.status_code == 200
    assert r.json() == {
        "sequence": "invoices",
        "value": 1,
        "last": 1,
        "count": 1,
        "formatted": None,
        "formatted_range": None,
        "period": None,
    }
    r = await client.post("/v1/sequences/invoices/next", json={"count": 5}, headers=h)
    assert (r.json()["value"], r.json()["last"], r.json()["count"]) == (2, 6, 5)


async def test_start_and_step_shape_the_numbers(
    client: httpx.AsyncClient, auth_headers: Headers
) -> None:
    h = auth_headers()
    await create(client, h, name="orders", start=1000, step=10)
    r = await client.post("/v1/sequences/orders/next", json={"count": 3}, headers=h)
    assert (r.json()["value"], r.json()["last"]) == (1000, 1020)
    r = await client.post("/v1/sequences/orders/next", headers=h)
    assert r.json()["value"] == 1030


async def test_create_existing_name_409s(client: httpx.AsyncClient, auth_headers: Headers) -> None:
    h = auth_headers()
    await create(client, h, name="invoices")
    r = await create(client, h, name="invoices")
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"].endswith("/sequence-exists")


@pytest.mark.parametrize(
    "name", ["", "Invoices", "a b", "x" * 65, "-lead", "a/b", "ünï", "a%2Fb", "../etc"]
)
async def test_bad_names_422(client: httpx.AsyncClient, auth_headers: Headers, name: str) -> None:
    r = await create(client, auth_headers(), name=name)
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["status"] == 422 and body["title"] and "name" in body["detail"]


@pytest.mark.parametrize("count", [0, -1, 1.5, "3", None, True, 100_001, 10**30])
async def test_bad_counts_422_and_consume_nothing(
    client: httpx.AsyncClient, auth_headers: Headers, count: object
) -> None:
    h = auth_headers()
    await create(client, h, name="invoices")
    r = await client.post("/v1/sequences/invoices/next", json={"count": count}, headers=h)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    peek = await client.get("/v1/sequences/invoices", headers=h)
    assert peek.json()["next"] == 1


async def test_malformed_json_body_422(client: httpx.AsyncClient, auth_headers: Headers) -> None:
    h = {**auth_headers(), "content-type": "application/json"}
    await create(client, auth_headers(), name="invoices")
    r = await client.post("/v1/sequences/invoices/next", content=b"{nope", headers=h)
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"


async def test_next_on_unknown_sequence_404s(
    client: httpx.AsyncClient, auth_headers: Headers
) -> None:
    r = await client.post("/v1/sequences/missing/next", headers=auth_headers())
    assert r.status_code == 404
    assert r.json()["type"].endswith("/sequence-not-found")


async def test_past_max_409s_and_consumes_nothing(
    client: httpx.AsyncClient, auth_headers: Headers
) -> None:
    h = auth_headers()
    await create(client, h, name="tickets", max=3)
    r = await client.post("/v1/sequences/tickets/next", json={"count": 2}, headers=h)
    assert r.json()["last"] == 2
    r = await client.post("/v1/sequences/tickets/next", json={"count": 2}, headers=h)
    assert r.status_code == 409
    assert r.json()["type"].endswith("/sequence-exhausted")
    r = await client.post("/v1/sequences/tickets/next", headers=h)
    assert r.json()["value"] == 3
    r = await client.post("/v1/sequences/tickets/next", headers=h)
    assert r.status_code == 409


async def test_get_shows_last_issued_without_consuming(
    client: httpx.AsyncClient, auth_headers: Headers
) -> None:
    h = auth_headers()
    await create(client, h, name="invoices")
    await client.post("/v1/sequences/invoices/next", json={"count": 4}, headers=h)
    for _ in range(3):
        r = await client.get("/v1/sequences/invoices", headers=h)
        assert (r.json()["last"], r.json()["next"]) == (4, 5)
    r = await client.post("/v1/sequences/invoices/next", headers=h)
    assert r.json()["value"] == 5


async def test_list_is_paginated(client: httpx.AsyncClient, auth_headers: Headers) -> None:
    h = auth_headers()
    for name in ["a", "b", "c"]:
        await create(client, h, name=name)
    r = await client.get("/v1/sequences", params={"limit": 2}, headers=h)
    page = r.json()
    assert [i["name"] for i in page["items"]] == ["a", "b"] and page["next_cursor"] == "b"
    r = await client.get("/v1/sequences", params={"limit": 2, "after": "b"}, headers=h)
    assert [i["name"] for i in r.json()["items"]] == ["c"] and r.json()["next_cursor"] is None


async def test_list_items_match_what_get_shows_for_each_sequence(
    client: httpx.AsyncClient, auth_headers: Headers
) -> None:
    h = auth_headers()
    await create(client, h, name="fresh", start=100)
    await create(client, h, name="stepped", start=10, step=5)
    await create(client, h, name="yearly", reset="yearly", format="Y{yyyy}-{n}")
    await create(client, h, name="full", max=2)
    for name, n in [("stepped", 3), ("yearly", 2), ("full", 2)]:
        r = await client.post(f"/v1/sequences/{name}/next", json={"count": n}, headers=h)
        assert r.status_code == 200, r.text
    listed = (await client.get("/v1/sequences", headers=h)).json()["items"]
    shown = [(await client.get(f"/v1/sequences/{i['name']}", headers=h)).json() for i in listed]
    assert listed == shown
    by_name = {i["name"]: i for i in listed}
    assert by_name["fresh"]["last"] is None and by_name["fresh"]["next"] == 100
    assert by_name["stepped"]["last"] == 20 and by_name["stepped"]["next"] == 25
    assert by_name["yearly"]["last"] == 2 and by_name["yearly"]["next"] == 3
    assert by_name["full"]["last"] == 2 and by_name["full"]["next"] is None


async def test_delete_then_404(client: httpx.AsyncClient, auth_headers: Headers) -> None:
    h = auth_headers()
    await create(client, h, name="invoices")
    assert (await client.delete("/v1/sequences/invoices", headers=h)).status_code == 204
    assert (await client.get("/v1/sequences/invoices", headers=h)).status_code == 404
    assert (await client.delete("/v1/sequences/invoices", headers=h)).status_code == 404


async def test_500_concurrent_nexts_get_exactly_1_to_500(
    client: httpx.AsyncClient, auth_headers: Headers
) -> None:
    h = auth_headers()
    await create(client, h, name="burst")
    responses = await asyncio.gather(
        *(client.post("/v1/sequences/burst/next", headers=h) for _ in range(500))
    )
    assert all(r.status_code == 200 for r in responses)
    assert sorted(r.json()["value"] for r in responses) == list(range(1, 501))


async def test_two_tenants_count_independently(
    client: httpx.AsyncClient, auth_headers: Headers
) -> None:
    acme, globex = auth_headers("acme"), auth_headers("globex")
    await create(client, acme, name="invoices")
    await create(client, globex, name="invoices", start=100)
    for _ in range(3):
        await client.post("/v1/sequences/invoices/next", headers=acme)
    r = await client.post("/v1/sequences/invoices/next", headers=globex)
    assert r.json()["value"] == 100
    r = await client.post("/v1/sequences/invoices/next", headers=acme)
    assert r.json()["value"] == 4


async def test_a_tenant_cannot_see_or_touch_another_tenants_sequences(
    client: httpx.AsyncClient, auth_headers: Headers
) -> None:
    acme, globex = auth_headers("acme"), auth_headers("globex")
    await create(client, acme, name="secret")
    await client.post("/v1/sequences/secret/next", headers=acme)
    assert (await client.get("/v1/sequences/secret", headers=globex)).status_code == 404
    assert (await client.post("/v1/sequences/secret/next", headers=globex)).status_code == 404
    assert (await client.delete("/v1/sequences/secret", headers=globex)).status_code == 404
    listing = await client.get("/v1/sequences", headers=globex)
    assert listing.json()["items"] == []
    # The tenant in a query string or body is ignored, never trusted.
    r = await client.get("/v1/sequences", params={"tenant": "acme", "tid": "acme"}, headers=globex)
    assert r.json()["items"] == []
    r = await client.post(
        "/v1/sequences/secret/next", json={"count": 1, "tenant": "acme"}, headers=globex
    )
    assert r.status_code == 422
    mine = await client.get("/v1/sequences/secret", headers=acme)
    assert mine.json()["last"] == 1


async def test_get_counter_answers_plain_text_from_default(
    client: httpx.AsyncClient, auth_headers: Headers
) -> None:
    h = auth_headers()
    values = [(await client.get("/getCounter", headers=h)) for _ in range(3)]
    assert all(r.headers["content-type"].startswith("text/plain") for r in values)
    assert [r.text for r in values] == ["1", "2", "3"]
    r = await client.get("/v1/sequences/default", headers=h)
    assert r.json()["last"] == 3
    assert (await client.get("/getCounter", headers=auth_headers("other"))).text == "1"


async def test_scopes_are_enforced_per_endpoint(
    client: httpx.AsyncClient, auth_headers: Headers
) -> None:
    await create(client, auth_headers(), name="invoices")
    read_only = auth_headers(scopes="sequences:read")
    r = await client.post("/v1/sequences/invoices/next", headers=read_only)
    assert r.status_code == 403
    assert r.json()["type"].endswith("/insufficient-scope")
    assert (await client.get("/getCounter", headers=read_only)).status_code == 403
    assert (await create(client, read_only, name="x")).status_code == 403
    next_only = auth_headers(scopes="sequences:next")
    assert (await client.get("/v1/sequences", headers=next_only)).status_code == 403
    assert (await client.delete("/v1/sequences/invoices", headers=next_only)).status_code == 403
    assert (await client.post("/v1/sequences/invoices/next", headers=next_only)).status_code == 200
    assert ALL_SCOPES


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    r = await client.get("/readyz")
    assert r.status_code == 200 and r.json()["store"] == "sqlite"
    for probe in ("/healthz", "/readyz"):  # some load balancers probe with HEAD
        r = await client.head(probe)
        assert r.status_code == 200 and r.content == b""


async def test_unknown_route_and_method_are_problem_json(client: httpx.AsyncClient) -> None:
    r = await client.get("/nope")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    r = await client.put("/healthz")
    assert r.status_code == 405 and r.headers["content-type"] == "application/problem+json"


async def test_first_batch_larger_than_the_whole_range_409s_not_503(
    client: httpx.AsyncClient, auth_headers: Headers
) -> None:
    h = auth_headers()
    await create(client, h, name="small", max=3)
    r = await client.post("/v1/sequences/small/next", json={"count": 5}, headers=h)
    assert r.status_code == 409 and r.json()["type"].endswith("/sequence-exhausted")
    r = await client.post("/v1/sequences/small/next", json={"count": 3}, headers=h)
    assert (r.json()["value"], r.json()["last"]) == (1, 3)


async def test_an_oversized_next_body_is_413_problem_json(
    client: httpx.AsyncClient, auth_headers: Headers
) -> None:
    h = {**auth_headers(), "content-type": "application/json"}
    await create(client, auth_headers(), name="invoices")
    body = b'{"count": 1, "pad": "' + b"x" * 100_000 + b'"}'
    r = await client.post("/v1/sequences/invoices/next", content=body, headers=h)
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"
    peek = await client.get("/v1/sequences/invoices", headers=auth_headers())
    assert peek.json()["next"] == 1


async def test_a_tenants_plan_caps_the_batch_size(
    app: object, client: httpx.AsyncClient, auth_headers: Headers
) -> None:
    from tenants.schemas import TenantCreate

    await app.state.tenants.create(TenantCreate(slug="tiny", name="Tiny", plan="free"))  # type: ignore[attr-defined]
    h = auth_headers("tiny")
    await create(client, h, name="s")
    r = await client.post("/v1/sequences/s/next", json={"count": 101}, headers=h)
    assert r.status_code == 422 and "at most 100" in r.json()["detail"]
    r = await client.post("/v1/sequences/s/next", json={"count": 100}, headers=h)
    assert (r.json()["value"], r.json()["last"]) == (1, 100)
