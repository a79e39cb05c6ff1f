"""Key rotation without downtime: publish, then sign, then retire."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import httpx
import jwt
import pytest
from fastapi import FastAPI

from auth.keys import JWKS_MAX_AGE_SECONDS, PUBLISH_WAIT_SECONDS, KeyRing, KeyRingError
from tenants.schemas import Onboarded
from tests.conftest import bearer
from tests.tenants.builders import make_tenant, token_for


@pytest.fixture
async def acme(app: FastAPI) -> Onboarded:
    return await make_tenant(app.state.tenants, "acme")


def on_disk(app: FastAPI) -> KeyRing:
    """What ``tally keys`` would load; the server notices changes within 1 s."""
    ring = KeyRing.load(app.state.settings.keys_dir)
    app.state.verifier._next_reload_check = 0.0  # skip the 1 s wait, not the mechanism
    return ring


async def jwks_kids(client: httpx.AsyncClient) -> list[str]:
    keys = (await client.get("/.well-known/jwks.json")).json()["keys"]
    assert all("d" not in k for k in keys)
    return [k["kid"] for k in keys]


def kid_of(token: str) -> str:
    kid: str = jwt.get_unverified_header(token)["kid"]
    return kid


async def works(client: httpx.AsyncClient, token: str) -> bool:
    r = await client.post("/v1/sequences/default/next", headers=bearer(token))
    assert r.status_code in (200, 401), r.text
    return r.status_code == 200


async def test_generate_publishes_before_signing_rotate_keeps_old_tokens_retire_ends_them(
    client: httpx.AsyncClient, app: FastAPI, acme: Onboarded
) -> None:
    old_kid = on_disk(app).active.kid
    old_token = await token_for(client, acme)
    assert kid_of(old_token) == old_kid

    new_kid = on_disk(app).generate()
    assert await jwks_kids(client) == [old_kid, new_kid]  # published ...
    assert kid_of(await token_for(client, acme)) == old_kid  # ... but not signing yet

    assert on_disk(app).rotate(force=True) == new_kid  # force: no JWKS cache here
    new_token = await token_for(client, acme)
    assert kid_of(new_token) == new_kid
    assert sorted(await jwks_kids(client)) == sorted([old_kid, new_kid])
    assert await works(client, old_token), "a token of the previous key must stay valid"
    assert await works(client, new_token)

    on_disk(app).retire(old_kid)
    on_disk(app)
    assert await jwks_kids(client) == [new_kid]
    assert not await works(client, old_token), "a retired key's token must be refused"
    assert await works(client, new_token)
    assert not (app.state.settings.keys_dir / f"{old_kid}.pem").exists()


async def test_rotate_without_a_published_next_key_is_refused(app: FastAPI) -> None:
    with pytest.raises(KeyRingError, match="tally keys generate"):
        on_disk(app).rotate()


async def test_rotate_waits_until_jwks_caches_can_have_the_new_key(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    active = on_disk(app).active.kid
    new_kid = on_disk(app).generate()
    r = await client.get("/.well-known/jwks.json")
    assert r.headers["cache-control"] == f"public, max-age={JWKS_MAX_AGE_SECONDS}"
    published = datetime.fromisoformat(on_disk(app).verifying_key(new_kid).created_at)  # type: ignore[union-attr]
    too_soon = published + timedelta(seconds=PUBLISH_WAIT_SECONDS - 1)
    with pytest.raises(KeyRingError, match=f"key {new_kid} was published 60 s ago"):
        on_disk(app).rotate(now=too_soon)
    assert on_disk(app).active.kid == active  # nothing changed
    later = published + timedelta(seconds=PUBLISH_WAIT_SECONDS)
    assert on_disk(app).rotate(now=later) == new_kid


async def test_the_active_key_cannot_be_retired(app: FastAPI) -> None:
    ring = on_disk(app)
    with pytest.raises(KeyRingError, match="active"):
        ring.retire(ring.active.kid)
    with pytest.raises(KeyRingError, match="no key"):
        ring.retire("../../etc/passwd")


def test_a_next_key_replaced_by_another_generate_is_retired_with_its_private_key(
    tmp_path: Path,
) -> None:
    ring = KeyRing.load_or_create(tmp_path)
    first, second = ring.generate(), KeyRing.load(tmp_path).generate()
    ring = KeyRing.load(tmp_path)
    assert {k.kid: k.status for k in ring.keys}[first] == "retired"
    assert ring.verifying_key(first) is None and ring.verifying_key(second) is not None
    assert not (tmp_path / f"{first}.pem").exists()
    assert sorted(p.stem for p in tmp_path.glob("*.pem")) == sorted(
        k.kid for k in ring.keys if k.status != "retired"
    )


@pytest.mark.parametrize(
    "state",
    [
        '{"keys": [{"kid": "x"}]}',
        "[]",
        '{"keys": {"kid": "x"}}',
        '{"keys": [{"kid": 1, "status": "active"}]}',
        '{"keys": [{"kid": "x", "status": "spare"}]}',
    ],
)
def test_a_malformed_key_state_file_is_a_key_ring_error(tmp_path: Path, state: str) -> None:
    (tmp_path / "keys.json").write_text(state)
    with pytest.raises(KeyRingError, match=r"keys\.json"):
        KeyRing.load(tmp_path)


def test_a_key_directory_that_cannot_be_made_is_a_key_ring_error(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a directory\n")
    with pytest.raises(KeyRingError, match=r"cannot write signing keys to .*Not a directory"):
        KeyRing.load_or_create(tmp_path / "afile" / "keys")
