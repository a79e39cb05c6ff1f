"""Tenants' own identity providers: the registration decides the tenant, never the token.

Each provider's JWKS is served by a real HTTP server on 127.0.0.1 that counts requests.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from core.clock import FrozenClock
from core.settings import Settings
from tenants.schemas import IdentityProvider, TenantUpdate
from tests.auth.jwks_server import CountingServer, serving
from tests.conftest import TokenFactory, bearer
from tests.tenants.builders import make_tenant

ISSUER_A = "https://idp-a.example"
ISSUER_B = "https://idp-b.example"


_KEYS: dict[str, tuple[rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey]] = {}


def _keys(issuer: str) -> tuple[rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey]:
    # RSA key generation is slow; one pair per provider per test run is enough.
    if issuer not in _KEYS:
        _KEYS[issuer] = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048),
            ec.generate_private_key(ec.SECP256R1()),
        )
    return _KEYS[issuer]


class Provider:
    """An external IdP: an RSA key, an EC key, and a JWKS on a local server."""

    def __init__(self, issuer: str, server: CountingServer) -> None:
        self.issuer = issuer
        self.server = server
        self.rsa, self.ec = _keys(issuer)
        rsa_jwk = json.loads(RSAAlgorithm.to_jwk(self.rsa.public_key()))
        ec_jwk = json.loads(ECAlgorithm.to_jwk(self.ec.public_key()))
        server.document = {
            "keys": [
                rsa_jwk | {"kid": f"{issuer}#rsa", "use": "sig", "alg": "RS256"},
                ec_jwk | {"kid": f"{issuer}#ec", "use": "sig"},
            ]
        }

    @property
    def jwks_url(self) -> str:
        return f"{self.server.url}/jwks"

    def token(self, *, alg: str = "RS256", kid: str | None = None, **claims: Any) -> str:
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": self.issuer,
            "aud": "tally-api",
            "sub": "machine-1",
            "client_id": "erp-system",
            "scope": "sequences:read sequences:next sequences:write",
            "iat": now,
            "exp": now + 300,
            **claims,
        }
        body = {k: v for k, v in body.items() if v is not None}
        key = self.rsa if alg.startswith(("RS", "PS")) else self.ec
        default_kid = f"{self.issuer}#{'rsa' if key is self.rsa else 'ec'}"
        return jwt.encode(
            body, key, algorithm=alg, headers={"kid": kid or default_kid, "typ": "at+jwt"}
        )


@pytest.fixture
def servers() -> Iterator[tuple[CountingServer, CountingServer]]:
    with serving({"keys": []}) as a, serving({"keys": []}) as b:
        yield a, b


@pytest.fixture
async def idps(
    app: FastAPI, servers: tuple[CountingServer, CountingServer]
) -> tuple[Provider, Provider]:
    a, b = Provider(ISSUER_A, servers[0]), Provider(ISSUER_B, servers[1])
    for slug, provider in (("acme", a), ("globex", b)):
        idp = {"issuer": provider.issuer, "jwks_url": provider.jwks_url, "audience": "tally-api"}
        await make_tenant(app.state.tenants, slug, identity_provider=idp)
    return a, b


async def test_token_from_the_tenants_idp_takes_that_tenants_numbers(
    client: httpx.AsyncClient, idps: tuple[Provider, Provider]
) -> None:
    a, _ = idps
    for alg in ["RS256", "ES256"]:
        r = await client.post("/v1/sequences/default/next", headers=bearer(a.token(alg=alg)))
        assert r.status_code == 200, r.text
    assert r.json()["value"] == 2


async def test_idp_a_token_claiming_tenant_b_gets_no_access_to_b(
    client: httpx.AsyncClient, idps: tuple[Provider, Provider], make_token: TokenFactory
) -> None:
    a, _ = idps
    globex = bearer(make_token("globex"))
    await client.post("/v1/sequences", json={"name": "secret"}, headers=globex)
    claims_b = {"tid": "globex", "tenant": "globex", "org_id": "globex"}
    token = a.token(**claims_b)
    assert (await client.get("/v1/sequences/secret", headers=bearer(token))).status_code == 404
    listed = await client.get("/v1/sequences", headers=bearer(token))
    assert [s["name"] for s in listed.json()["items"]] == ["default"]
    r = await client.post("/v1/sequences/default/next", headers=bearer(token))
    assert r.status_code == 200
    # It took acme's number, not globex's.
    peek = await client.get("/v1/sequences/default", headers=globex)
    assert peek.json()["last"] is None


async def test_a_key_of_idp_a_cannot_sign_for_idp_b(
    client: httpx.AsyncClient, idps: tuple[Provider, Provider]
) -> None:
    a, b = idps
    forged = a.token(iss=ISSUER_B)
    r = await client.post("/v1/sequences/default/next", headers=bearer(forged))
    assert r.status_code == 401
    forged_kid = a.token(iss=ISSUER_B, kid=f"{ISSUER_B}#rsa")
    r = await client.post("/v1/sequences/default/next", headers=bearer(forged_kid))
    assert r.status_code == 401
    assert b.server.count <= 1


async def test_idp_tokens_never_grant_platform_admin(
    client: httpx.AsyncClient, idps: tuple[Provider, Provider]
) -> None:
    a, _ = idps
    token = a.token(scope="platform:admin sequences:read")
    assert (await client.get("/admin/v1/tenants", headers=bearer(token))).status_code == 403


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "someone-else"},
        {"aud": None},
        {"exp": None},
        {"exp": int(time.time()) - 60},
        {"iat": int(time.time()) + 3600},
        {"client_id": None},
        {"scope": 42},
        {"exp": 10**400},  # signed by the tenant's own provider: PyJWT's int() takes it
        {"iat": -(10**400)},
    ],
    ids=[
        "wrong-aud",
        "no-aud",
        "no-exp",
        "expired",
        "future-iat",
        "no-client",
        "bad-scope",
        "exp-beyond-a-float",
        "iat-beyond-a-float",
    ],
)
async def test_idp_tokens_with_bad_claims_are_refused(
    client: httpx.AsyncClient, idps: tuple[Provider, Provider], claims: dict[str, Any]
) -> None:
    a, _ = idps
    r = await client.post("/v1/sequences/default/next", headers=bearer(a.token(**claims)))
    assert r.status_code == 401


async def test_idp_algorithm_is_pinned_by_the_key_type(
    client: httpx.AsyncClient, idps: tuple[Provider, Provider]
) -> None:
    a, _ = idps
    wrong = [
        a.token(alg="PS256", kid=f"{ISSUER_A}#rsa"),  # RSA key, not RS256
        a.token(alg="RS384", kid=f"{ISSUER_A}#rsa"),
        a.token(alg="ES256", kid=f"{ISSUER_A}#rsa"),  # header says EC, key is RSA
    ]
    for token in wrong:
        r = await client.post("/v1/sequences/default/next", headers=bearer(token))
        assert r.status_code == 401


async def test_jku_in_an_idp_token_is_never_fetched(
    client: httpx.AsyncClient, idps: tuple[Provider, Provider]
) -> None:
    attacker = ec.generate_private_key(ec.SECP256R1())
    with serving({"keys": []}) as evil:
        jwk = json.loads(ECAlgorithm.to_jwk(attacker.public_key()))
        evil.document = {"keys": [jwk | {"kid": "evil"}]}
        for header in ["jku", "x5u"]:
            token = jwt.encode(
                {
                    "iss": ISSUER_A,
                    "aud": "tally-api",
                    "client_id": "x",
                    "iat": int(time.time()),
                    "exp": int(time.time()) + 60,
                },
                attacker,
                algorithm="ES256",
                headers={"kid": "evil", header: f"{evil.url}/jwks", "jwk": jwk},
            )
            r = await client.post("/v1/sequences/default/next", headers=bearer(token))
            assert r.status_code == 401
        assert evil.count == 0


async def test_unknown_kids_refetch_at_most_once_per_cooldown(
    client: httpx.AsyncClient,
    idps: tuple[Provider, Provider],
    clock: FrozenClock,
    settings: Settings,
) -> None:
    a, _ = idps
    assert (await client.get("/v1/sequences", headers=bearer(a.token()))).status_code == 200
    assert a.server.count == 1
    for i in range(20):
        token = a.token(kid=f"made-up-{i}")
        assert (await client.get("/v1/sequences", headers=bearer(token))).status_code == 401
    assert a.server.count == 1, "unknown kids inside the cooldown must not refetch"
    clock.advance(settings.jwks_refetch_cooldown_seconds)
    await client.get("/v1/sequences", headers=bearer(a.token(kid="made-up-late")))
    await client.get("/v1/sequences", headers=bearer(a.token(kid="made-up-later")))
    assert a.server.count == 2


async def test_a_new_idp_key_is_picked_up_after_the_cooldown(
    client: httpx.AsyncClient,
    idps: tuple[Provider, Provider],
    clock: FrozenClock,
    settings: Settings,
) -> None:
    a, _ = idps
    assert (await client.get("/v1/sequences", headers=bearer(a.token()))).status_code == 200
    rotated = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(rotated.public_key()))
    a.server.document["keys"].append(jwk | {"kid": "rotated"})
    clock.advance(settings.jwks_refetch_cooldown_seconds)
    now = int(time.time())
    token = jwt.encode(
        {"iss": ISSUER_A, "aud": "tally-api", "client_id": "c", "iat": now, "exp": now + 60}
        | {"scope": "sequences:read"},
        rotated,
        algorithm="RS256",
        headers={"kid": "rotated"},
    )
    assert (await client.get("/v1/sequences", headers=bearer(token))).status_code == 200


async def test_cached_idp_keys_keep_working_while_the_idp_is_down(
    client: httpx.AsyncClient,
    idps: tuple[Provider, Provider],
    clock: FrozenClock,
    settings: Settings,
) -> None:
    a, _ = idps
    assert (await client.get("/v1/sequences", headers=bearer(a.token()))).status_code == 200
    a.server.status = 503
    clock.advance(settings.jwks_cache_seconds + 1)  # the cache is stale: a refetch fails
    fresh = a.token(sub="another-machine")  # not in the verified-token cache
    assert (await client.get("/v1/sequences", headers=bearer(fresh))).status_code == 200
    assert a.server.count == 2


async def test_suspending_an_idp_tenant_refuses_its_idp_tokens(
    client: httpx.AsyncClient, app: FastAPI, idps: tuple[Provider, Provider]
) -> None:
    a, _ = idps
    token = a.token()
    assert (await client.get("/v1/sequences", headers=bearer(token))).status_code == 200
    await app.state.tenants.suspend("acme")
    assert (await client.get("/v1/sequences", headers=bearer(token))).status_code == 401


@pytest.mark.parametrize(
    "jwks_url",
    [
        "http://idp.example/jwks",
        "http://10.0.0.1/jwks",
        "ftp://idp.example/jwks",
        "file:///etc/passwd",
        "https://user:pw@idp.example/jwks",
        "/jwks",
    ],
)
def test_jwks_urls_must_be_https_except_to_loopback(jwks_url: str) -> None:
    with pytest.raises(ValueError, match="jwks_url"):
        IdentityProvider(issuer=ISSUER_A, jwks_url=jwks_url, audience="a")
    for ok in ["https://idp.example/jwks", "http://127.0.0.1:8000/jwks", "http://[::1]/k"]:
        IdentityProvider(issuer=ISSUER_A, jwks_url=ok, audience="a")


async def test_an_issuer_can_belong_to_one_tenant_only_and_never_to_tally(
    app: FastAPI, idps: tuple[Provider, Provider], settings: Settings
) -> None:
    from tenants.errors import IssuerTaken

    a, _ = idps
    taken = {"issuer": ISSUER_A, "jwks_url": a.jwks_url, "audience": "x"}
    with pytest.raises(IssuerTaken):
        await make_tenant(app.state.tenants, "initech", identity_provider=taken)
    ours = {"issuer": settings.jwt_issuer, "jwks_url": a.jwks_url, "audience": "x"}
    with pytest.raises(IssuerTaken):
        await make_tenant(app.state.tenants, "initech", identity_provider=ours)
    assert await app.state.store.get_tenant("initech") is None


async def test_a_cleared_provider_takes_the_tokens_already_seen_with_it(
    client: httpx.AsyncClient,
    app: FastAPI,
    idps: tuple[Provider, Provider],
    settings: Settings,
    clock: FrozenClock,
) -> None:
    a, _ = idps
    seen = a.token()
    assert (await client.post("/v1/sequences/default/next", headers=bearer(seen))).is_success
    await app.state.tenants.update("acme", TenantUpdate(identity_provider=None))
    clock.advance(settings.status_cache_seconds + 1)
    for token in (a.token(sub="never-seen"), seen):
        r = await client.post("/v1/sequences/default/next", headers=bearer(token))
        assert r.status_code == 401, r.text


async def test_a_provider_moved_to_another_tenant_acts_for_that_one_only(
    client: httpx.AsyncClient,
    app: FastAPI,
    idps: tuple[Provider, Provider],
    settings: Settings,
    clock: FrozenClock,
) -> None:
    a, _ = idps
    seen = a.token()
    assert (await client.post("/v1/sequences/default/next", headers=bearer(seen))).is_success
    await app.state.tenants.update("acme", TenantUpdate(identity_provider=None))
    moved = IdentityProvider(issuer=a.issuer, jwks_url=a.jwks_url, audience="tally-api")
    await app.state.tenants.update("globex", TenantUpdate(identity_provider=moved))
    clock.advance(settings.status_cache_seconds + 1)
    for token in (a.token(sub="never-seen"), seen):
        trail = (await client.get("/v1/audit", headers=bearer(token))).json()["items"]
        assert {e["tenant"] for e in trail} == {"globex"}


async def test_a_token_seen_before_its_tenant_was_deleted_never_reaches_a_new_tenant_of_that_slug(
    client: httpx.AsyncClient,
    app: FastAPI,
    idps: tuple[Provider, Provider],
    settings: Settings,
    clock: FrozenClock,
) -> None:
    a, _ = idps
    seen = a.token()
    assert (await client.get("/v1/sequences", headers=bearer(seen))).is_success
    await app.state.tenants.suspend("acme")
    await app.state.tenants.delete("acme")
    await make_tenant(app.state.tenants, "acme")  # another business, no identity provider
    clock.advance(settings.status_cache_seconds + 1)
    r = await client.get("/v1/sequences", headers=bearer(seen))
    assert r.status_code == 401, r.text
