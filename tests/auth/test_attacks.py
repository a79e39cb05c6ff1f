"""The known JWT attacks: each gets 401 invalid_token (problem+json) and changes no counter.

Tokens are built by hand, so each case is exactly the attack it names. ``jku``,
``x5u`` and embedded-``jwk`` cases point at a real local server and prove Tally never
called it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm

from auth.keys import KeyRing
from core.settings import Settings
from tests.auth.forge import b64, claims, segment, signed
from tests.auth.jwks_server import CountingServer, serving
from tests.conftest import bearer

Headers = Callable[..., dict[str, str]]


def hs256(secret: bytes, header: dict[str, Any], payload: dict[str, Any]) -> str:
    signing_input = f"{segment(header)}.{segment(payload)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


@pytest.fixture
def attacker_site() -> Iterator[CountingServer]:
    """Where jku/x5u point: serves the attacker's JWKS and counts every request."""
    with serving({"keys": []}) as server:
        yield server


async def assert_invalid_token(
    client: httpx.AsyncClient, token: str | bytes, good: dict[str, str]
) -> None:
    raw: Any = {
        "Authorization": b"Bearer " + (token if isinstance(token, bytes) else token.encode())
    }
    r = await client.post("/v1/sequences/invoices/next", headers=raw)
    assert r.status_code == 401, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["www-authenticate"] == 'Bearer realm="tally", error="invalid_token"'
    peek = await client.get("/v1/sequences/invoices", headers=good)
    assert peek.json()["last"] == 1, "a rejected request consumed a number"


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", "", None])
async def test_alg_none_in_every_spelling_or_missing_is_refused(
    client: httpx.AsyncClient, seeded: dict[str, str], settings: Settings, ring: KeyRing, alg: Any
) -> None:
    header = {"typ": "at+jwt", "kid": ring.active.kid} | ({} if alg is None else {"alg": alg})
    unsigned = f"{segment(header)}.{segment(claims(settings))}"
    await assert_invalid_token(client, unsigned + ".", seeded)
    # ... and with the signature of a real token pasted on.
    real_sig = signed(ring, claims(settings)).rsplit(".", 1)[1]
    await assert_invalid_token(client, f"{unsigned}.{real_sig}", seeded)


async def test_stripped_truncated_or_garbage_signature_is_refused(
    client: httpx.AsyncClient, seeded: dict[str, str], settings: Settings, ring: KeyRing
) -> None:
    token = signed(ring, claims(settings))
    head, body, sig = token.split(".")
    for bad in [
        f"{head}.{body}.",
        f"{head}.{body}.{sig[:-8]}",
        f"{head}.{body}.{sig[:10]}",
        f"{head}.{body}.{b64(b'x' * 64)}",
        f"{head}.{body}.AAAA",
    ]:
        await assert_invalid_token(client, bad, seeded)


async def test_tampered_payload_under_a_real_signature_is_refused(
    client: httpx.AsyncClient, seeded: dict[str, str], settings: Settings, ring: KeyRing
) -> None:
    head, _, sig = signed(ring, claims(settings, tid="globex")).split(".")
    await assert_invalid_token(client, f"{head}.{segment(claims(settings))}.{sig}", seeded)


async def test_hs256_signed_with_the_public_key_pem_or_jwk_is_refused(
    client: httpx.AsyncClient, seeded: dict[str, str], settings: Settings, ring: KeyRing
) -> None:
    public = ring.active.public
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    jwk_json = ECAlgorithm.to_jwk(public).encode()
    jwks_json = json.dumps(ring.jwks()).encode()
    header = {"alg": "HS256", "typ": "at+jwt", "kid": ring.active.kid}
    for secret in [pem, pem.strip(), jwk_json, jwks_json]:
        await assert_invalid_token(client, hs256(secret, header, claims(settings)), seeded)


@pytest.mark.parametrize("alg", ["ES384", "ES512", "RS256", "PS256", "HS256", "EdDSA", "es256"])
async def test_header_alg_not_matching_the_key_is_refused(
    client: httpx.AsyncClient,
    seeded: dict[str, str],
    settings: Settings,
    ring: KeyRing,
    alg: str,
) -> None:
    await assert_invalid_token(client, signed(ring, claims(settings), alg=alg), seeded)


async def test_rs256_token_from_a_foreign_key_under_our_kid_is_refused(
    client: httpx.AsyncClient, seeded: dict[str, str], settings: Settings, ring: KeyRing
) -> None:
    foreign = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(
        claims(settings),
        foreign,
        algorithm="RS256",
        headers={"kid": ring.active.kid, "typ": "at+jwt"},
    )
    await assert_invalid_token(client, token, seeded)


def _attacker_token(settings: Settings, key: ec.EllipticCurvePrivateKey, **header: Any) -> str:
    return jwt.encode(claims(settings), key, algorithm="ES256", headers={"typ": "at+jwt", **header})


async def test_embedded_jwk_header_is_ignored(
    client: httpx.AsyncClient, seeded: dict[str, str], settings: Settings, ring: KeyRing
) -> None:
    attacker = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(ECAlgorithm.to_jwk(attacker.public_key()))
    for kid in [ring.active.kid, "attacker"]:
        token = _attacker_token(settings, attacker, kid=kid, jwk=jwk | {"kid": kid})
        await assert_invalid_token(client, token, seeded)


@pytest.mark.parametrize("header_name", ["jku", "x5u"])
async def test_jku_and_x5u_are_ignored_and_never_fetched(
    client: httpx.AsyncClient,
    seeded: dict[str, str],
    settings: Settings,
    ring: KeyRing,
    attacker_site: CountingServer,
    header_name: str,
) -> None:
    attacker = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(ECAlgorithm.to_jwk(attacker.public_key()))
    attacker_site.document = {"keys": [jwk | {"kid": "attacker", "alg": "ES256", "use": "sig"}]}
    url = f"{attacker_site.url}/.well-known/jwks.json"
    for kid in [ring.active.kid, "attacker"]:
        token = _attacker_token(settings, attacker, kid=kid, **{header_name: url})
        await assert_invalid_token(client, token, seeded)
    # The same with an issuer that is not ours, so the external-IdP path sees it too.
    foreign = jwt.encode(
        claims(settings, iss=attacker_site.url),
        attacker,
        algorithm="ES256",
        headers={"typ": "at+jwt", "kid": "attacker", header_name: url},
    )
    await assert_invalid_token(client, foreign, seeded)
    assert attacker_site.count == 0, f"Tally fetched {attacker_site.requests}"


@pytest.mark.parametrize(
    "kid",
    [
        "../../../../etc/passwd",
        "../keys/../keys.json",
        "/dev/null",
        "' OR '1'='1",
        "x'; DROP TABLE counters; --",
        "$(touch /tmp/pwned)",
        "`id`",
        "; rm -rf /",
        "",
        "a" * 5000,
        42,
        None,
        True,
        ["kid"],
        {"kid": "x"},
    ],
    ids=lambda k: repr(k)[:30],
)
async def test_kid_injection_or_non_string_kid_is_refused(
    client: httpx.AsyncClient,
    seeded: dict[str, str],
    settings: Settings,
    ring: KeyRing,
    kid: Any,
) -> None:
    token = signed(ring, claims(settings), kid=kid)
    await assert_invalid_token(client, token, seeded)


@pytest.mark.parametrize(
    "override",
    [
        {"exp": int(time.time()) - 60, "iat": int(time.time()) - 600},
        {"nbf": int(time.time()) + 3600},
        {"iat": int(time.time()) + 3600},
        {"exp": None},
        {"iat": None},
        {"exp": "tomorrow"},
        # JSON numbers have no size limit: PyJWT's int() takes these, float() did not.
        {"exp": 10**400},
        {"iat": -(10**400)},
        {"exp": True},
    ],
    ids=[
        "expired",
        "future-nbf",
        "future-iat",
        "missing-exp",
        "missing-iat",
        "string-exp",
        "exp-beyond-a-float",
        "iat-beyond-a-float",
        "boolean-exp",
    ],
)
async def test_time_claims_out_of_bounds_are_refused(
    client: httpx.AsyncClient,
    seeded: dict[str, str],
    settings: Settings,
    ring: KeyRing,
    override: dict[str, Any],
) -> None:
    await assert_invalid_token(client, signed(ring, claims(settings, **override)), seeded)


@pytest.mark.parametrize(
    "aud", ["someone-else", None, "", ["someone-else"], "tally-test-evil", "tally-tes"]
)
async def test_wrong_or_missing_audience_is_refused(
    client: httpx.AsyncClient, seeded: dict[str, str], settings: Settings, ring: KeyRing, aud: Any
) -> None:
    await assert_invalid_token(client, signed(ring, claims(settings, aud=aud)), seeded)


@pytest.mark.parametrize(
    "iss",
    [
        "https://tally.tes",
        "https://tally.test.evil.example",
        "https://tally.test/",
        "https://tally.test/oauth",
        "https://tally.testx",
        "http://tally.test",
        "HTTPS://TALLY.TEST",
        None,
    ],
)
async def test_issuer_that_is_a_prefix_or_extension_of_ours_is_refused(
    client: httpx.AsyncClient, seeded: dict[str, str], settings: Settings, ring: KeyRing, iss: Any
) -> None:
    assert settings.jwt_issuer == "https://tally.test"
    await assert_invalid_token(client, signed(ring, claims(settings, iss=iss)), seeded)


@pytest.mark.parametrize("typ", ["JWT", "jwt", "at+JWT2", "application/jwt", "", None, 1])
async def test_typ_other_than_at_jwt_is_refused(
    client: httpx.AsyncClient, seeded: dict[str, str], settings: Settings, ring: KeyRing, typ: Any
) -> None:
    await assert_invalid_token(client, signed(ring, claims(settings), typ=typ), seeded)


@pytest.mark.parametrize("crit", [["exp"], ["x-tally-magic"], [], "b64"])
async def test_crit_header_is_refused(
    client: httpx.AsyncClient, seeded: dict[str, str], settings: Settings, ring: KeyRing, crit: Any
) -> None:
    token = signed(ring, claims(settings), crit=crit, **{"x-tally-magic": True})
    await assert_invalid_token(client, token, seeded)


async def test_malformed_token_shapes_are_refused(
    client: httpx.AsyncClient, seeded: dict[str, str], settings: Settings, ring: KeyRing
) -> None:
    good = signed(ring, claims(settings))
    head, body, sig = good.split(".")
    huge_header = segment(
        {"alg": "ES256", "kid": ring.active.kid, "typ": "at+jwt", "pad": "x" * 100_000}
    )
    for bad in [
        f"{head}.{body}",  # 2 segments
        f"{head}.{body}.{sig}.{sig}",  # 4 segments
        f"{head}.{body}.{sig}.",
        f"{head}!.{body}.{sig}",  # non-base64url characters
        f"{head}.{body}*.{sig}",
        f"{head}.{body}.{sig}=",
        f"{head}.{body}.{sig.replace('-', '+')}+/",
        f"{huge_header}.{body}.{sig}",  # a 100 KB header
        f"{segment([1, 2])}.{body}.{sig}",  # header not an object
        f"{head}.{b64(b'not json')}.{sig}",
    ]:
        await assert_invalid_token(client, bad, seeded)
    await assert_invalid_token(client, "é.é.é".encode(), seeded)


async def test_tenant_claim_tricks_are_refused(
    client: httpx.AsyncClient, seeded: dict[str, str], settings: Settings, ring: KeyRing
) -> None:
    for tid in ["../globex", "ACME", "acme/", 42, ["acme"], None]:
        await assert_invalid_token(client, signed(ring, claims(settings, tid=tid)), seeded)


async def test_a_valid_token_still_works_after_every_attack(
    client: httpx.AsyncClient, seeded: dict[str, str], settings: Settings, ring: KeyRing
) -> None:
    # Hammer the verifier (and its cache) with a mix of bad tokens first.
    await assert_invalid_token(client, signed(ring, claims(settings), alg="none"), seeded)
    await assert_invalid_token(client, signed(ring, claims(settings), kid="../x"), seeded)
    r = await client.post(
        "/v1/sequences/invoices/next", headers=bearer(signed(ring, claims(settings)))
    )
    assert r.status_code == 200 and r.json()["value"] == 2
    r = await client.post("/v1/sequences/invoices/next", headers=seeded)
    assert r.status_code == 200 and r.json()["value"] == 3
