"""Issue 15, item 6: schemathesis against a real ``tally serve`` finds nothing.

Every operation of the OpenAPI document, once with a tenant's token and once (the
``/admin`` operations) with a platform admin's, bounded and derandomized so the run is
the same every time and short. Checks: no 5xx, every status, content type, required
header and body as the document says, and every problem ``type`` listed for its
status. No exceptions.

The server is configured so the run measures conformance, not the defences: the OAuth
lockout allows 1,000 failures per client and 100,000 per address (fuzzing the token
endpoint from one address would otherwise lock it within 20 requests, and every later
answer would be the same documented 429), and the tenant is on the enterprise plan
(5,000 requests a second, above what this run sends). Both limits have tests of their
own (tests/auth, tests/tenants, tests/e2e/test_token_floods.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from core.openapi import PROBLEM_JSON, TYPES_KEY
from core.settings import Settings
from tests.e2e.conftest import cli, running_server, server_env

pytestmark = pytest.mark.e2e

# The document as create_app builds it; test_the_server_serves_this_document checks that
# the live server serves the very same one (schemathesis needs it at collection time).
DOCUMENT: dict[str, Any] = create_app(Settings(_env_file=None)).openapi()  # type: ignore[call-arg]
SCHEMA = schemathesis.openapi.from_dict(DOCUMENT)
ADMIN = r"^/admin/"
BOUNDED = settings(
    max_examples=8,
    derandomize=True,  # the same examples every run
    database=None,  # nothing written to .hypothesis/
    deadline=None,  # a loaded machine is not a finding
    suppress_health_check=list(HealthCheck),
)


def problem_type_documented(ctx: Any, response: Any, case: schemathesis.Case) -> bool | None:
    """A problem+json answer's ``type`` is one its status lists in ``x-problem-types``."""
    operation = DOCUMENT["paths"][case.operation.path].get(case.method.lower())
    if operation is None or not response.headers.get("content-type", [""])[0].startswith(
        PROBLEM_JSON
    ):
        return None  # not a problem, or a method the path lacks (schemathesis probes them)
    documented = operation["responses"]
    listed = documented.get(str(response.status_code), {}).get(TYPES_KEY, [])
    answered = json.loads(response.content)["type"]
    assert answered in listed, (
        f"{case.method} {case.operation.path} -> {response.status_code} {answered!r},"
        f" documented: {listed}"
    )
    return True


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    problem_type_documented,
]


class Server:
    def __init__(self, url: str, tenant_token: str, admin_token: str) -> None:
        self.url = url
        self.tenant = {"Authorization": f"Bearer {tenant_token}"}
        self.admin = {"Authorization": f"Bearer {admin_token}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = server_env(
        tmp_path_factory.mktemp("fuzz"),
        TALLY_OAUTH_MAX_FAILURES="1000",
        TALLY_OAUTH_ADDRESS_MAX_FAILURES="100000",
        TALLY_ACCESS_LOG="false",
    )
    made = cli(env, "tenants", "create", "acme", "--name", "Acme", "--plan", "enterprise")
    assert made.returncode == 0, made.stderr
    admin = json.loads(cli(env, "admin", "clients", "create", "--json").stdout)
    client = json.loads(cli(env, "clients", "create", "--tenant", "acme", "--json").stdout)
    with running_server(env) as url:
        tokens = [
            httpx.post(
                f"{url}/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(c["client_id"], c["client_secret"]),
            )
            for c in (client, admin)
        ]
        assert all(t.status_code == 200 for t in tokens), [t.text for t in tokens]
        tenant_token, admin_token = (t.json()["access_token"] for t in tokens)
        # Something for the tenant's operations to find besides 404s.
        headers = {"Authorization": f"Bearer {tenant_token}"}
        for spec in ({"name": "orders"}, {"name": "invoices", "ledger": True}):
            assert httpx.post(f"{url}/v1/sequences", json=spec, headers=headers).is_success
        yield Server(url, tenant_token, admin_token)


def test_the_server_serves_this_document(server: Server) -> None:
    assert httpx.get(f"{server.url}/openapi.json").json() == DOCUMENT


@SCHEMA.exclude(path_regex=ADMIN).parametrize()
@BOUNDED
def test_tenant_operations_conform(case: schemathesis.Case, server: Server) -> None:
    case.call_and_validate(base_url=server.url, headers=server.tenant, checks=CHECKS)


@SCHEMA.include(path_regex=ADMIN).parametrize()
@BOUNDED
def test_admin_operations_conform(case: schemathesis.Case, server: Server) -> None:
    case.call_and_validate(base_url=server.url, headers=server.admin, checks=CHECKS)
