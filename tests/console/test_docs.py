"""``/docs`` works offline: Swagger UI from the installed package, under a strict CSP."""

from __future__ import annotations

import re

import httpx
import pytest

from console.headers import covered


def csp(r: httpx.Response) -> dict[str, str]:
    policy = r.headers["content-security-policy"]
    return {d.split()[0]: d for d in (p.strip() for p in policy.split(";"))}


async def test_docs_page_loads_only_local_assets_under_a_strict_csp(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    policy = csp(r)
    assert policy["default-src"] == "default-src 'self'"
    assert policy["script-src"] == "script-src 'self'"  # no 'unsafe-inline', no host
    assert policy["frame-ancestors"] == "frame-ancestors 'none'"
    # Every script and stylesheet is ours; no inline script at all.
    srcs = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert srcs and all(s.startswith(("/", "#")) for s in srcs), srcs
    assert re.search(r"<script>(?!</script>)", r.text) is None
    assert "cdn" not in r.text.lower()
    for src in re.findall(r'<script src="([^"]+)"', r.text):
        asset = await client.get(src)
        assert asset.status_code == 200, src
        assert asset.headers["content-type"].startswith("text/javascript")
        assert "content-security-policy" in asset.headers


async def test_swagger_bundle_comes_from_the_package_with_an_etag(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/docs/assets/swagger-ui-bundle.js")
    assert r.status_code == 200 and len(r.content) > 500_000  # the real bundle
    assert b"SwaggerUIBundle" in r.content
    again = await client.get(
        "/docs/assets/swagger-ui-bundle.js", headers={"If-None-Match": r.headers["etag"]}
    )
    assert again.status_code == 304 and again.content == b""


@pytest.mark.parametrize(
    "path",
    ["/docs/assets/index.html", "/docs/assets/..%2F__init__.py"],
)
async def test_only_listed_assets_are_served_and_errors_carry_the_csp(
    client: httpx.AsyncClient, path: str
) -> None:
    r = await client.get(path)
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert "default-src 'self'" in r.headers["content-security-policy"]


async def test_api_responses_carry_no_console_headers(client: httpx.AsyncClient) -> None:
    r = await client.get("/openapi.json")
    assert r.status_code == 200 and "content-security-policy" not in r.headers


def test_covered_paths_are_the_console_docs_and_landing_page_only() -> None:
    assert covered("/docs") and covered("/docs/assets/x.js") and covered("/console")
    assert covered("/console/tenants/acme") and covered("/")  # the landing page
    assert not covered("/docsx") and not covered("/consoles") and not covered("/v1/sequences")


async def test_an_unknown_console_asset_is_a_404_page_under_the_csp(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/console/static/nope.js")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in r.headers["content-security-policy"]
