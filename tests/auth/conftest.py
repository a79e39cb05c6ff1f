"""Fixtures shared by the auth tests."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

Headers = Callable[..., dict[str, str]]


@pytest.fixture
async def seeded(client: httpx.AsyncClient, auth_headers: Headers) -> dict[str, str]:
    h = auth_headers()
    await client.post("/v1/sequences", json={"name": "invoices"}, headers=h)
    await client.post("/v1/sequences/invoices/next", headers=h)
    return h
