"""Onboarding end to end: the real `tally` CLI, a real server, real OAuth over HTTP."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.e2e.conftest import cli, running_server

pytestmark = pytest.mark.e2e


def onboard(env: dict[str, str], slug: str) -> dict[str, str]:
    result = cli(env, "tenants", "create", slug, "--name", slug.title(), "--json")
    assert result.returncode == 0, result.stderr
    creds: dict[str, str] = json.loads(result.stdout)
    assert creds["tenant"]["slug"] == slug  # type: ignore[index]
    return creds


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_two_tenants_onboard_get_tokens_take_numbers_and_cannot_cross(
    e2e_env: dict[str, str],
) -> None:
    env = {**e2e_env, "TALLY_STATUS_CACHE_SECONDS": "1"}
    acme, globex = onboard(env, "acme"), onboard(env, "globex")
    admin = json.loads(cli(env, "admin", "clients", "create", "--json").stdout)

    with running_server(env) as url, httpx.Client(base_url=url, timeout=30) as http:
        meta = http.get("/.well-known/oauth-authorization-server").json()
        assert meta["token_endpoint"] == "https://tally.e2e/oauth/token"
        form = {"grant_type": "client_credentials"}
        # acme: client_secret_basic; globex: client_secret_post.
        r = http.post("/oauth/token", data=form, auth=(acme["client_id"], acme["client_secret"]))
        assert r.status_code == 200, r.text
        acme_token = r.json()["access_token"]
        r = http.post(
            "/oauth/token",
            data={
                **form,
                "client_id": globex["client_id"],
                "client_secret": globex["client_secret"],
            },
        )
        assert r.status_code == 200, r.text
        globex_token = r.json()["access_token"]

        for token in (acme_token, acme_token, globex_token):
            r = http.post("/v1/sequences/default/next", headers=bearer(token))
            assert r.status_code == 200, r.text
        assert r.json()["value"] == 1  # globex's default counts on its own
        r = http.post("/v1/sequences", json={"name": "invoices"}, headers=bearer(acme_token))
        assert r.status_code == 201
        assert http.get("/v1/sequences/invoices", headers=bearer(globex_token)).status_code == 404
        r = http.post("/v1/sequences/invoices/next", headers=bearer(globex_token))
        assert r.status_code == 404
        names = [
            s["name"]
            for s in http.get("/v1/sequences", headers=bearer(globex_token)).json()["items"]
        ]
        assert names == ["default"]
        assert http.get("/v1/sequences/invoices", headers=bearer(acme_token)).json()["last"] is None

        r = http.post("/oauth/token", data=form, auth=(admin["client_id"], admin["client_secret"]))
        admin_token = r.json()["access_token"]
        slugs = [
            t["slug"]
            for t in http.get("/admin/v1/tenants", headers=bearer(admin_token)).json()["items"]
        ]
        assert slugs == ["acme", "globex"]

        # Suspension from the CLI (another process) reaches the server within the bound.
        assert cli(env, "tenants", "suspend", "globex").returncode == 0
        r = http.post(
            "/oauth/token", data=form, auth=(globex["client_id"], globex["client_secret"])
        )
        assert r.status_code == 401 and r.json()["error"] == "invalid_client"
        deadline = time.monotonic() + 3
        while http.get("/getCounter", headers=bearer(globex_token)).status_code == 200:
            assert time.monotonic() < deadline, "suspension not enforced within the bound"
            time.sleep(0.2)
        assert http.get("/getCounter", headers=bearer(acme_token)).status_code == 200
