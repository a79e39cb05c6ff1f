"""Plan rate limits: 429 with Retry-After past the plan's requests per second."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from fastapi import FastAPI

from core.clock import FrozenClock
from tenants.ratelimit import RateLimited, TenantRateLimiter
from tenants.schemas import TenantCreate


def test_bucket_allows_the_rate_then_refills_with_time() -> None:
    limiter = TenantRateLimiter()
    for _ in range(10):
        limiter.take("acme", 10, now=100.0)
    try:
        limiter.take("acme", 10, now=100.0)
    except RateLimited as exc:
        assert exc.status == 429 and exc.headers["Retry-After"] == "1"
    else:
        raise AssertionError("the 11th request in one second was not limited")
    limiter.take("globex", 10, now=100.0)  # buckets are per tenant
    limiter.take("acme", 10, now=100.2)  # 0.2 s refills two tokens
    limiter.take("acme", 10, now=100.2)


async def test_free_plan_tenant_gets_429_past_10_requests_per_second(
    app: FastAPI,
    client: httpx.AsyncClient,
    clock: FrozenClock,
    auth_headers: Callable[..., dict[str, str]],
) -> None:
    await app.state.tenants.create(TenantCreate(slug="tiny", name="Tiny", plan="free"))
    h = auth_headers("tiny")
    codes = [(await client.get("/getCounter", headers=h)).status_code for _ in range(12)]
    assert codes[:10] == [200] * 10 and codes[10:] == [429, 429]
    limited = await client.get("/getCounter", headers=h)
    assert limited.headers["content-type"] == "application/problem+json"
    assert int(limited.headers["Retry-After"]) >= 1
    clock.advance(1.0)
    r = await client.get("/getCounter", headers=h)
    assert r.status_code == 200 and r.text == "11", "a limited request consumed a number"
