"""Request bodies are capped on every route, before authentication reads anything."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx


async def test_declared_oversized_body_is_413_before_auth(client: httpx.AsyncClient) -> None:
    big = b"{" + b" " * 100_000 + b"}"
    # /next authenticates before it reads its body (capped at 4 KiB): 401, nothing read.
    r = await client.post("/v1/sequences/x/next", content=big)
    assert r.status_code == 401
    for path in ["/v1/sequences", "/admin/v1/tenants"]:
        r = await client.post(path, content=big, headers={"content-type": "application/json"})
        assert r.status_code == 413, (path, r.status_code)
        assert r.headers["content-type"] == "application/problem+json"
    for method, path in [("PATCH", "/v1/sequences/x"), ("POST", "/v1/sequences/x/advance")]:
        r = await client.request(method, path, content=big)
        assert r.status_code == 413, (path, r.status_code)
    # The token endpoint answers in OAuth's own error format (RFC 6749 §5.2), capped at 8 KiB.
    r = await client.post(
        "/oauth/token", content=big, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


async def test_streamed_oversized_body_is_413(
    client: httpx.AsyncClient, auth_headers: Callable[..., dict[str, str]]
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "x", "format": "'
        for _ in range(20):
            yield b"a" * 8192
        yield b'"}'

    headers = {**auth_headers(), "content-type": "application/json"}
    r = await client.post("/v1/sequences", content=chunks(), headers=headers)
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"
    assert (await client.get("/v1/sequences", headers=auth_headers())).json()["items"] == []


async def test_normal_bodies_pass(
    client: httpx.AsyncClient, auth_headers: Callable[..., dict[str, str]]
) -> None:
    r = await client.post("/v1/sequences", json={"name": "ok"}, headers=auth_headers())
    assert r.status_code == 201
