"""Bad input never gets a 500: every operation of the OpenAPI schema, hostile values.

For each path parameter, query parameter and body field the schema declares, and for
whole bodies, the sweep sends values chosen to break parsers and arithmetic: edge
integers, huge and non-finite numbers, edge dates, long, empty and control-character
strings, wrong JSON types, deep nesting, invalid UTF-8. Every answer must be below 500
and, when it is an error, a JSON problem (or OAuth error) document.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx
from fastapi import FastAPI

from tests.conftest import bearer
from tests.tenants.builders import make_tenant, token_for

STRINGS = [
    "",
    " ",
    "a" * 5000,
    "../../etc/passwd",
    "%00",
    "\u0000",
    "😀",
    "null",
    "-1",
    "0",
    "9" * 400,
    "1e309",
    "NaN",
    "-Infinity",
    "true",
    "[]",
    "{}",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00+14:00",
    "2026-13-45T25:61:61Z",
    "'; DROP TABLE counters; --",
    "Z" * 65,
]
JSON_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    2**31,
    2**63 - 1,
    2**63,
    -(2**63) - 1,
    2**64,
    10**400,
    1.5,
    1e308,
    -1e308,
    "",
    "x" * 5000,
    "\u0000",
    [],
    {},
    [1, 2],
    {"a": 1},
    *STRINGS[:8],
]
RAW_BODIES = [
    b"",
    b"null",
    b"[]",
    b"{",
    b'{"a": NaN}',
    b'{"count": Infinity}',
    b"\xff\xfe\xfd",
    b"[" * 5000 + b"]" * 5000,
    b'{"count": 1e309}',
    b'{"count": 1' + b"0" * 5000 + b"}",
]


def _fields(schema: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    ref = schema.get("$ref")
    if ref:
        schema = spec["components"]["schemas"][ref.split("/")[-1]]
    return list(schema.get("properties", {}))


async def test_no_operation_answers_500_to_hostile_input(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    admin = bearer(await token_for(client, await app.state.tenants.create_admin_client("ops")))
    acme = await make_tenant(app.state.tenants, "acme")
    tenant = bearer(await token_for(client, acme))
    # A ledger sequence, so the reservation, ledger and gap routes are swept for real.
    await client.post("/v1/sequences", json={"name": "s", "ledger": True}, headers=tenant)
    valid_path = {
        "name": "s",
        "slug": "acme",
        "client_id": acme.client_id,
        "reservation": "rsv_" + "A" * 22,
    }
    spec = app.openapi()
    seen: list[tuple[str, str, int]] = []

    async def send(method: str, path: str, **kwargs: Any) -> None:
        headers = dict(kwargs.pop("headers", {}))
        headers.update(admin if path.startswith("/admin") else tenant)
        r = await client.request(method, path, headers=headers, **kwargs)
        seen.append((method, path[:60], r.status_code))
        assert r.status_code < 500, (method, path[:200], kwargs, r.text[:300])
        if r.status_code >= 400 and r.content:
            assert r.headers["content-type"] in ("application/problem+json", "application/json")
            json.loads(r.content)

    # Tenant routes first, then admin ones, and last what suspends or revokes the caller.
    def order(item: tuple[str, Any]) -> tuple[bool, bool]:
        template = item[0]
        return (template.endswith(("/suspend", "/revoke")), template.startswith("/admin"))

    for template, operations in sorted(spec["paths"].items(), key=order):
        for method, op in operations.items():
            params = op.get("parameters", [])
            path_names = [p["name"] for p in params if p["in"] == "path"]

            def url(
                override: dict[str, str], template: str = template, names: list[str] = path_names
            ) -> str:
                out = template
                for name in names:
                    out = out.replace(
                        f"{{{name}}}", quote(override.get(name, valid_path[name]), safe="")
                    )
                return out

            for p in params:
                for value in STRINGS:
                    if p["in"] == "path":
                        if value:  # an empty segment is another route
                            await send(method, url({p["name"]: value}))
                    elif p["in"] == "query":
                        await send(method, url({}), params={p["name"]: value})
            body = op.get("requestBody", {}).get("content", {})
            if "application/json" in body:
                fields = _fields(body["application/json"]["schema"], spec)
                for raw in RAW_BODIES:
                    await send(
                        method, url({}), content=raw, headers={"content-type": "application/json"}
                    )
                for field in fields:
                    for value in JSON_VALUES:
                        await send(method, url({}), json={field: value})
            if "application/x-www-form-urlencoded" in body:
                for field in ("grant_type", "client_id", "client_secret", "scope"):
                    for value in STRINGS:
                        await send(method, url({}), data={field: value})
                for raw in RAW_BODIES:
                    headers = {"content-type": "application/x-www-form-urlencoded"}
                    await send(method, url({}), content=raw, headers=headers)
    assert len(seen) > 1500  # the sweep really ran
    # ... and reached the handlers, not just the auth check, for the tenant routes.
    assert sum(1 for m, p, status in seen if p.startswith("/v1") and status in (401, 403)) == 0
