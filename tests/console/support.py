"""Driving the console over ASGI like a browser would: its cookies, its CSRF fields."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from http.cookies import SimpleCookie

import httpx

from tenants.schemas import Onboarded, TenantCreate
from tenants.service import TenantService

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def cookies_set(response: httpx.Response) -> dict[str, dict[str, str]]:
    """Each Set-Cookie by name: its value and attributes (lower-cased names)."""
    out: dict[str, dict[str, str]] = {}
    for header in response.headers.get_list("set-cookie"):
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
        for name, morsel in jar.items():
            attrs = {k: str(v) for k, v in morsel.items() if v}
            flags = {f.strip().lower() for f in header.split(";")[1:]}
            attrs.update({f: "true" for f in ("httponly", "secure") if f in flags})
            out[name] = {"value": morsel.value, **attrs}
    return out


def csrf_of(page: httpx.Response) -> str:
    match = CSRF.search(page.text)
    assert match, "the page has no CSRF field"
    return match.group(1)


@dataclass
class Browser:
    """Keeps the console's cookies itself: httpx would not send ``Secure`` ones over the
    plain-http test transport."""

    http: httpx.AsyncClient
    cookies: dict[str, str] = field(default_factory=dict)
    origin: str = "http://tally.test"

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        return headers

    def _keep(self, response: httpx.Response) -> None:
        for name, cookie in cookies_set(response).items():
            if cookie.get("max-age") == "0" or not cookie["value"]:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = cookie["value"]

    async def get(self, path: str) -> httpx.Response:
        r = await self.http.get(path, headers=self._headers())
        self._keep(r)
        return r

    async def post(
        self, path: str, data: dict[str, str | list[str]], headers: dict[str, str] | None = None
    ) -> httpx.Response:
        r = await self.http.post(
            path, data=data, headers=self._headers({"Origin": self.origin, **(headers or {})})
        )
        self._keep(r)
        return r

    async def sign_in(self, client_id: str, secret: str) -> httpx.Response:
        page = await self.get("/console/sign-in")
        return await self.post(
            "/console/sign-in",
            {"csrf": csrf_of(page), "client_id": client_id, "client_secret": secret},
        )


async def onboard(tenants: TenantService, slug: str = "acme") -> Onboarded:
    return await tenants.onboard(TenantCreate(slug=slug, name=slug.title()))


def assert_csp(r: httpx.Response) -> None:
    policy = r.headers.get("content-security-policy", "")
    assert "default-src 'self'" in policy and "script-src 'self'" in policy, r.url
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
