"""POST /oauth/token (RFC 6749 client credentials), JWKS and RFC 8414 metadata."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI

from core.clock import FrozenClock
from core.settings import Settings
from tenants.schemas import Onboarded
from tests.conftest import bearer
from tests.tenants.builders import basic, make_tenant, request_token, token_for

FORM = {"grant_type": "client_credentials"}


@pytest.fixture
async def acme(app: FastAPI) -> Onboarded:
    return await make_tenant(app.state.tenants, "acme")


def assert_oauth_error(r: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.headers["cache-control"] == "no-store"
    body: dict[str, Any] = r.json()
    assert body["error"] == error and isinstance(body["error_description"], str)
    assert set(body) == {"error", "error_description"}
    return body


async def test_client_secret_basic_gets_a_token_with_the_rfc_9068_claims(
    client: httpx.AsyncClient, acme: Onboarded, settings: Settings, app: FastAPI
) -> None:
    r = await request_token(client, acme.client_id, acme.client_secret)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store" and r.headers["pragma"] == "no-cache"
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == settings.token_ttl_seconds
    assert body["scope"] == "sequences:read sequences:next sequences:write"
    header = jwt.get_unverified_header(body["access_token"])
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256"
    assert header["kid"] == app.state.verifier.ring.active.kid
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["iss"] == settings.jwt_issuer and claims["aud"] == settings.jwt_audience
    assert claims["sub"] == acme.client_id == claims["client_id"]
    assert claims["tid"] == "acme" and claims["scope"] == body["scope"]
    assert claims["exp"] - claims["iat"] == settings.token_ttl_seconds


async def test_client_secret_post_gets_a_token_that_takes_numbers(
    client: httpx.AsyncClient, acme: Onboarded
) -> None:
    r = await client.post(
        "/oauth/token",
        data={**FORM, "client_id": acme.client_id, "client_secret": acme.client_secret},
    )
    assert r.status_code == 200, r.text
    headers = bearer(r.json()["access_token"])
    r = await client.post("/v1/sequences/default/next", headers=headers)
    assert r.status_code == 200 and r.json()["value"] == 1


async def test_basic_credentials_are_form_urlencoded_per_rfc_6749(
    client: httpx.AsyncClient, acme: Onboarded
) -> None:
    # client_id and secret are application/x-www-form-urlencoded before Basic encoding.
    encoded_id = acme.client_id.replace(".", "%2E")
    r = await client.post("/oauth/token", data=FORM, headers=basic(encoded_id, acme.client_secret))
    assert r.status_code == 200, r.text


async def test_scope_can_be_narrowed_but_not_widened(
    client: httpx.AsyncClient, acme: Onboarded
) -> None:
    token = await token_for(client, acme, scope="sequences:next")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["scope"] == "sequences:next"
    r = await client.get("/v1/sequences", headers=bearer(token))
    assert r.status_code == 403
    for scope in ["platform:admin", "sequences:next platform:admin", "sequences:everything"]:
        r = await request_token(client, acme.client_id, acme.client_secret, scope=scope)
        assert_oauth_error(r, 400, "invalid_scope")


async def test_wrong_secret_is_invalid_client_401_with_basic_challenge(
    client: httpx.AsyncClient, acme: Onboarded
) -> None:
    r = await request_token(client, acme.client_id, "not-the-secret")
    assert_oauth_error(r, 401, "invalid_client")
    assert r.headers["www-authenticate"].startswith("Basic")
    r = await client.post(
        "/oauth/token", data={**FORM, "client_id": acme.client_id, "client_secret": "nope"}
    )
    assert_oauth_error(r, 401, "invalid_client")


async def test_unknown_or_malformed_client_id_is_invalid_client(
    client: httpx.AsyncClient, acme: Onboarded
) -> None:
    for client_id in ["acme.0000000000000000", "globex.1234567890abcdef", "nobody", "../x"]:
        r = await request_token(client, client_id, acme.client_secret)
        assert_oauth_error(r, 401, "invalid_client")


async def test_missing_client_authentication_is_invalid_client(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post("/oauth/token", data=FORM)
    assert_oauth_error(r, 401, "invalid_client")
    assert r.headers["www-authenticate"].startswith("Basic")
    for header in ["Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(), "Bearer x"]:
        r = await client.post("/oauth/token", data=FORM, headers={"Authorization": header})
        assert_oauth_error(r, 401, "invalid_client")


async def test_grant_type_is_required_and_only_client_credentials_is_supported(
    client: httpx.AsyncClient, acme: Onboarded
) -> None:
    headers = basic(acme.client_id, acme.client_secret)
    r = await client.post("/oauth/token", data={}, headers=headers)
    assert_oauth_error(r, 400, "invalid_request")
    for grant in ["password", "authorization_code", "refresh_token", "CLIENT_CREDENTIALS"]:
        r = await client.post("/oauth/token", data={"grant_type": grant}, headers=headers)
        assert_oauth_error(r, 400, "unsupported_grant_type")


async def test_secrets_in_the_query_string_are_refused_even_when_right(
    client: httpx.AsyncClient, acme: Onboarded
) -> None:
    query = {"client_id": acme.client_id, "client_secret": acme.client_secret, **FORM}
    r = await client.post("/oauth/token", params=query)
    assert_oauth_error(r, 400, "invalid_request")
    r = await client.post("/oauth/token", params=query, data=query)
    assert_oauth_error(r, 400, "invalid_request")


async def test_malformed_requests_are_invalid_request(
    client: httpx.AsyncClient, acme: Onboarded
) -> None:
    headers = basic(acme.client_id, acme.client_secret)
    r = await client.post("/oauth/token", json=FORM, headers=headers)
    assert_oauth_error(r, 400, "invalid_request")
    form = "application/x-www-form-urlencoded"
    for body in [
        b"grant_type=client_credentials&grant_type=client_credentials",
        b"grant_type=client_credentials&scope",
        b"\xff\xfe",
        b"grant_type=client_credentials&x=" + b"a" * 10_000,
    ]:
        r = await client.post(
            "/oauth/token", content=body, headers={**headers, "Content-Type": form}
        )
        assert_oauth_error(r, 400, "invalid_request")
    # Two authentication methods at once.
    r = await client.post(
        "/oauth/token", data={**FORM, "client_secret": acme.client_secret}, headers=headers
    )
    assert_oauth_error(r, 400, "invalid_request")
    # Two Authorization headers, the right credentials first: which one counts?
    for second in ("Basic eDp5", "Bearer whatever", headers["Authorization"]):
        r = await client.post(
            "/oauth/token",
            data=FORM,
            headers=[("Authorization", headers["Authorization"]), ("Authorization", second)],
        )
        assert_oauth_error(r, 400, "invalid_request")


async def test_repeated_failures_throttle_the_client_then_lift(
    client: httpx.AsyncClient,
    app: FastAPI,
    acme: Onboarded,
    clock: FrozenClock,
    settings: Settings,
) -> None:
    for _ in range(settings.oauth_max_failures):
        r = await request_token(client, acme.client_id, "guess")
        assert_oauth_error(r, 401, "invalid_client")
    # Locked: even the right secret waits, so guessing cannot continue.
    r = await request_token(client, acme.client_id, acme.client_secret)
    assert_oauth_error(r, 429, "invalid_client")  # RFC 6749 §5.2 has no lockout code
    assert 1 <= int(r.headers["retry-after"]) <= settings.oauth_lockout_seconds
    other = await make_tenant(app.state.tenants, "globex")
    assert (await request_token(client, other.client_id, other.client_secret)).status_code == 200
    # The lockout is the guesser's own: the real client, elsewhere, still gets tokens.
    elsewhere = httpx.ASGITransport(app=app, client=("198.51.100.7", 40000))
    async with httpx.AsyncClient(transport=elsewhere, base_url="http://tally.test") as real:
        r = await request_token(real, acme.client_id, acme.client_secret)
        assert r.status_code == 200, r.text
    clock.advance(settings.oauth_lockout_seconds)
    r = await request_token(client, acme.client_id, acme.client_secret)
    assert r.status_code == 200, r.text


async def test_the_secret_is_stored_only_as_a_scrypt_hash(app: FastAPI, acme: Onboarded) -> None:
    record = await app.state.store.get_client("acme", acme.client_id)
    assert record.secret_hash.startswith("scrypt$")
    assert acme.client_secret not in record.secret_hash
    listed = await app.state.tenants.list_clients("acme")
    assert "secret" not in listed[0].model_dump_json()


async def test_last_used_is_recorded_on_success(
    client: httpx.AsyncClient, app: FastAPI, acme: Onboarded
) -> None:
    assert (await app.state.store.get_client("acme", acme.client_id)).last_used_at is None
    await token_for(client, acme)
    assert (await app.state.store.get_client("acme", acme.client_id)).last_used_at is not None


async def test_jwks_publishes_public_keys_only_with_unique_kids(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    r = await client.get("/.well-known/jwks.json")
    assert r.status_code == 200
    keys = r.json()["keys"]
    assert [k["kid"] for k in keys] == [app.state.verifier.ring.active.kid]
    for key in keys:
        assert set(key) == {"kty", "crv", "x", "y", "kid", "use", "alg"}
        assert "d" not in key


async def test_authorization_server_metadata_follows_rfc_8414(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    r = await client.get("/.well-known/oauth-authorization-server")
    assert r.status_code == 200
    meta = r.json()
    assert meta["issuer"] == settings.jwt_issuer
    assert meta["token_endpoint"] == f"{settings.jwt_issuer}/oauth/token"
    assert meta["jwks_uri"] == f"{settings.jwt_issuer}/.well-known/jwks.json"
    assert meta["grant_types_supported"] == ["client_credentials"]
    assert set(meta["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
    }
    assert "platform:admin" in meta["scopes_supported"]


async def test_a_remembered_secret_skips_scrypt_and_a_rotation_forgets_it(
    client: httpx.AsyncClient, app: FastAPI, acme: Onboarded, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tenants.service

    assert (await request_token(client, acme.client_id, acme.client_secret)).status_code == 200
    checks: list[str] = []
    real = tenants.service.verify_secret

    def counting(secret: str, encoded: str) -> bool:
        checks.append(secret)
        return real(secret, encoded)

    monkeypatch.setattr(tenants.service, "verify_secret", counting)
    assert (await request_token(client, acme.client_id, acme.client_secret)).status_code == 200
    assert checks == []  # verified before, by this process: no scrypt
    # A wrong secret pays the full check, as for an unknown id: timing tells nothing.
    assert (await request_token(client, acme.client_id, "guess")).status_code == 401
    assert checks == ["guess"]
    rotated = await app.state.tenants.rotate_client("acme", acme.client_id)
    r = await request_token(client, acme.client_id, acme.client_secret)
    assert_oauth_error(r, 401, "invalid_client")  # the old secret is not remembered
    assert (await request_token(client, acme.client_id, rotated.client_secret)).status_code == 200
