"""Issue 15, item 3: what a body must be, what 405 says, what a timestamp is."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import app_token

Headers = Callable[..., dict[str, str]]


@pytest.mark.parametrize(
    ("content", "ctype"),
    [
        (b'{"name": "x"}', "text/plain"),
        (b"<name>x</name>", "application/xml"),
        (b"name=x", "application/x-www-form-urlencoded"),
        (b'{"name": "x"}', None),
    ],
)
async def test_a_json_route_answers_415_for_a_body_that_is_not_json(
    client: httpx.AsyncClient, auth_headers: Headers, content: bytes, ctype: str | None
) -> None:
    headers = auth_headers("acme", scopes="sequences:read sequences:write")
    if ctype:
        headers["Content-Type"] = ctype
    r = await client.post("/v1/sequences", content=content, headers=headers)
    assert r.status_code == 415, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"].endswith("/unsupported-media-type")
    assert (await client.get("/v1/sequences/x", headers=headers)).status_code == 404


async def test_every_json_route_refuses_a_body_that_is_not_json(app: FastAPI) -> None:
    """Every operation the OpenAPI document gives a JSON body, new ones included."""
    spec = app.openapi()
    token = app_token(app, tenant="", scopes="platform:admin sequences:read sequences:write")
    transport = httpx.ASGITransport(app=app)
    checked = []
    async with httpx.AsyncClient(transport=transport, base_url="http://tally.test") as c:
        for path, ops in spec["paths"].items():
            for method, op in ops.items():
                content = op.get("requestBody", {}).get("content", {})
                if "application/json" not in content:
                    continue
                url = path.replace("{name}", "x").replace("{slug}", "acme")
                url = url.replace("{client_id}", "acme.0123456789abcdef")
                r = await c.request(
                    method.upper(),
                    url,
                    content=b"{}",
                    headers={"Authorization": f"Bearer {token}", "Content-Type": "text/plain"},
                )
                checked.append((method, path))
                assert r.status_code in (401, 403, 415), (method, path, r.status_code, r.text)
                if r.status_code == 415:
                    assert r.headers["content-type"] == "application/problem+json"
    assert len(checked) >= 5, checked


async def test_a_json_route_takes_a_json_media_type_with_parameters_or_a_suffix(
    client: httpx.AsyncClient, auth_headers: Headers
) -> None:
    headers = auth_headers("acme", scopes="sequences:write")
    for name, ctype in (("a", "application/json; charset=utf-8"), ("b", "application/x+json")):
        r = await client.post(
            "/v1/sequences",
            content=b'{"name": "%s"}' % name.encode(),
            headers={**headers, "Content-Type": ctype},
        )
        assert r.status_code == 201, r.text


async def test_a_null_body_is_a_422_where_an_object_is_expected(
    client: httpx.AsyncClient, auth_headers: Headers
) -> None:
    headers = {**auth_headers("acme"), "Content-Type": "application/json"}
    assert (await client.post("/v1/sequences", json={"name": "n"}, headers=headers)).is_success
    for path in ("/v1/sequences/n/next", "/v1/sequences", "/v1/sequences/n/advance"):
        r = await client.post(path, content=b"null", headers=headers)
        assert r.status_code == 422, (path, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    r = await client.patch("/v1/sequences/n", content=b"null", headers=headers)
    assert r.status_code == 422, r.text


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("OPTIONS", "/v1/sequences/x", {"GET", "DELETE", "PATCH"}),
        ("PUT", "/v1/sequences/x", {"GET", "DELETE", "PATCH"}),
        ("OPTIONS", "/v1/sequences", {"GET", "POST"}),
        ("GET", "/v1/sequences/x/next", {"POST"}),
        ("OPTIONS", "/oauth/token", {"POST"}),
    ],
)
async def test_405_lists_every_method_of_the_path(
    client: httpx.AsyncClient, method: str, path: str, allowed: set[str]
) -> None:
    r = await client.request(method, path)
    assert r.status_code == 405
    assert set(r.headers["allow"].split(", ")) == allowed
    assert r.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "value", ["0.5", "1733000000", "2026-12-01", "2026-12-01T00:00:00", "2026-12-01T00:00Z"]
)
async def test_usage_from_and_to_take_only_rfc_3339(
    client: httpx.AsyncClient, auth_headers: Headers, value: str
) -> None:
    headers = auth_headers("acme", scopes="sequences:read")
    for param in ("from", "to"):
        r = await client.get("/v1/usage", params={param: value}, headers=headers)
        assert r.status_code == 422, (param, value, r.text)
        assert "RFC 3339" in r.text
    good = {"from": "2026-11-30T00:00:00Z", "to": "2026-12-01T00:00:00+01:00"}
    assert (await client.get("/v1/usage", params=good, headers=headers)).status_code == 200


@pytest.mark.parametrize(
    "value", ["0.5", "1733000000", "2026-12-01", "2026-12-01T00:00:00", "2026-12-01T00:00Z"]
)
async def test_ledger_from_and_to_take_only_rfc_3339_too(
    client: httpx.AsyncClient, auth_headers: Headers, value: str
) -> None:
    """The ledger read `from=0.5` as a Unix time and `from=2026-12-01` as naive midnight."""
    headers = auth_headers("acme")
    made = await client.post("/v1/sequences", json={"name": "inv", "ledger": True}, headers=headers)
    assert made.status_code == 201, made.text
    for param in ("from", "to"):
        r = await client.get("/v1/sequences/inv/ledger", params={param: value}, headers=headers)
        assert r.status_code == 422, (param, value, r.text)
        assert "RFC 3339" in r.text
    good = {"from": "2026-11-30T00:00:00Z", "to": "2026-12-01T00:00:00+01:00"}
    r = await client.get("/v1/sequences/inv/ledger", params=good, headers=headers)
    assert r.status_code == 200, r.text
