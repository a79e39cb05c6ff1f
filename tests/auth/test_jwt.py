"""Token verification: every bad token gets 401 problem+json and changes nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from auth.keys import KeyRing
from core.settings import Settings
from tests.auth.forge import claims, segment, signed
from tests.conftest import bearer

Headers = Callable[..., dict[str, str]]
IN_AN_HOUR = int(time.time()) + 3600


def claim_id(override: dict[str, Any]) -> str:
    """The test id names the claim, never the timestamp: each xdist worker collects at its
    own second, and every worker must collect the same ids."""
    key, value = next(iter(override.items()))
    return repr((key, "in-an-hour" if value == IN_AN_HOUR else value))


async def assert_rejected(
    client: httpx.AsyncClient, headers: dict[str, str], good: dict[str, str]
) -> None:
    r = await client.post("/v1/sequences/invoices/next", headers=headers)
    assert r.status_code == 401, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["www-authenticate"].startswith("Bearer")
    peek = await client.get("/v1/sequences/invoices", headers=good)
    assert peek.json()["last"] == 1, "a rejected request consumed a number"


async def test_no_token_401_with_bearer_challenge(
    client: httpx.AsyncClient, seeded: dict[str, str]
) -> None:
    await assert_rejected(client, {}, seeded)
    await assert_rejected(client, {"Authorization": "Basic dXNlcjpwYXNz"}, seeded)
    await assert_rejected(client, {"Authorization": "Bearer "}, seeded)


async def test_expired_token_401(
    client: httpx.AsyncClient, seeded: dict[str, str], settings: Settings, ring: KeyRing
) -> None:
    old = int(time.time()) - 3600
    token = signed(ring, claims(settings, iat=old, exp=old + 60))
    await assert_rejected(client, bearer(token), seeded)


@pytest.mark.parametrize(
    "override",
    [
        {"aud": "someone-else"},
        {"aud": None},
        {"iss": "https://evil.test"},
        {"iss": None},
        {"exp": None},
        {"tid": None},
        {"tid": 42},
        {"tid": "../acme"},
        {"sub": None},
        {"nbf": IN_AN_HOUR},
        {"iat": IN_AN_HOUR},
    ],
    ids=claim_id,
)
async def test_bad_claims_401(
    client: httpx.AsyncClient,
    seeded: dict[str, str],
    settings: Settings,
    ring: KeyRing,
    override: dict[str, Any],
) -> None:
    await assert_rejected(client, bearer(signed(ring, claims(settings, **override))), seeded)


async def test_alg_none_401(
    client: httpx.AsyncClient, seeded: dict[str, str], settings: Settings, ring: KeyRing
) -> None:
    payload = segment(claims(settings))
    for alg in ["none", "None", "NONE", ""]:
        header = segment({"alg": alg, "typ": "at+jwt", "kid": ring.active.kid})
        await assert_rejected(client, bearer(f"{header}.{payload}."), seeded)


async def test_token_signed_by_another_key_401(
    client: httpx.AsyncClient, seeded: dict[str, str], settings: Settings, ring: KeyRing
) -> None:
    stranger = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(
        claims(settings),
        stranger,
        algorithm="ES256",
        headers={"kid": ring.active.kid, "typ": "at+jwt"},
    )
    await assert_rejected(client, bearer(token), seeded)


async def test_unknown_kid_401(
    client: httpx.AsyncClient, seeded: dict[str, str], settings: Settings, ring: KeyRing
) -> None:
    await assert_rejected(client, bearer(signed(ring, claims(settings), kid="nope")), seeded)


async def test_garbage_tokens_401(client: httpx.AsyncClient, seeded: dict[str, str]) -> None:
    for token in ["x", "a.b", "a.b.c.d", "!!!.###.$$$", "e30.e30.e30", "a" * 20_000]:
        await assert_rejected(client, bearer(token), seeded)
    raw: Any = {"Authorization": "Bearer é.é.é".encode()}
    await assert_rejected(client, raw, seeded)


async def test_missing_scope_403(
    client: httpx.AsyncClient, seeded: dict[str, str], auth_headers: Headers
) -> None:
    r = await client.post(
        "/v1/sequences/invoices/next", headers=auth_headers(scopes="sequences:read")
    )
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/problem+json"


async def test_valid_token_still_works_after_attacks(
    client: httpx.AsyncClient, seeded: dict[str, str]
) -> None:
    r = await client.post("/v1/sequences/invoices/next", headers=seeded)
    assert r.status_code == 200 and r.json()["value"] == 2


async def test_cached_token_is_refused_after_its_exp(
    app: Any, settings: Settings, ring: KeyRing
) -> None:
    verifier = app.state.verifier
    now = time.time()
    token = signed(ring, claims(settings, iat=int(now), exp=int(now) + 60))
    assert verifier.verify(token, now=now).tenant == "acme"
    assert verifier.verify(token, now=now + 30).tenant == "acme"  # served from the cache
    from auth.errors import InvalidToken

    with pytest.raises(InvalidToken):
        verifier.verify(token, now=now + 120)
    assert token not in verifier._cache


async def test_token_cache_never_serves_a_token_at_or_past_its_exp(
    app: Any, settings: Settings, ring: KeyRing, monkeypatch: pytest.MonkeyPatch
) -> None:
    from auth.errors import InvalidToken

    verifier = app.state.verifier
    now = float(int(time.time()))
    exp = int(now) + 60
    token = signed(ring, claims(settings, iat=int(now), exp=exp))
    full_checks = []
    real = verifier._verify_uncached

    def counting(tok: str, at: float) -> Any:
        full_checks.append(at)
        return real(tok, at)

    monkeypatch.setattr(verifier, "_verify_uncached", counting)
    verifier.verify(token, now=now)
    verifier.verify(token, now=exp - 0.001)
    assert len(full_checks) == 1, "the second call should have been a cache hit"
    verifier.verify(token, now=exp)  # at exp the cache steps aside; leeway is the verifier's
    assert len(full_checks) == 2
    with pytest.raises(InvalidToken):
        verifier.verify(token, now=exp + 3600)


async def test_token_cache_is_bounded_and_can_be_switched_off(
    settings: Settings, ring: KeyRing
) -> None:
    from auth.tokens import TokenVerifier

    now = time.time()
    tokens = [signed(ring, claims(settings, sub=f"c{i}", iat=int(now))) for i in range(5)]
    small = TokenVerifier(
        ring, issuer=settings.jwt_issuer, audience=settings.jwt_audience, cache_size=2
    )
    off = TokenVerifier(
        ring, issuer=settings.jwt_issuer, audience=settings.jwt_audience, cache_size=0
    )
    for t in tokens:
        assert small.verify(t, now=now).subject == off.verify(t, now=now).subject
    assert len(small._cache) == 2 and list(small._cache) == tokens[-2:]
    assert len(off._cache) == 0


async def test_two_authorization_headers_401(
    client: httpx.AsyncClient, seeded: dict[str, str]
) -> None:
    doubled = httpx.Headers([("Authorization", seeded["Authorization"])] * 2)
    r = await client.post("/v1/sequences/invoices/next", headers=doubled)
    assert r.status_code == 401 and "exactly one" in r.json()["detail"]
    peek = await client.get("/v1/sequences/invoices", headers=seeded)
    assert peek.json()["last"] == 1
