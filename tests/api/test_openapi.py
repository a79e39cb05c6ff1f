"""Issue 15, item 5: the OpenAPI document tells the truth about errors and limits."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate

from api.app import create_app
from core.openapi import PROBLEM_JSON, PROBLEM_REF
from core.settings import Settings
from sequences.formatting import TEMPLATE_PATTERN, TemplateError, parse
from sequences.schemas import INT64_MAX, INT64_MIN
from tests.conftest import ALL_SCOPES

TOKEN = "/oauth/token"
# The token endpoint answers its client errors the RFC 6749 way (auth.errors.OAuthError).
OAUTH_STATUSES = {"400", "401", "429"}


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, ops in doc["paths"].items() for method, op in ops.items()]


def errors_of(op: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s: r for s, r in op["responses"].items() if s[0] in "45"}


@pytest.fixture
def doc(app: FastAPI) -> dict[str, Any]:
    return app.openapi()


def test_the_document_is_valid_openapi_3_1(doc: dict[str, Any]) -> None:
    assert doc["openapi"].startswith("3.1")
    validate(doc)  # raises on any violation of the OpenAPI 3.1 schema


def test_every_error_response_is_the_shared_problem_schema(doc: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    assert set(doc["components"]["schemas"]["Problem"]["required"]) == {
        "type",
        "title",
        "status",
        "detail",
    }
    checked = 0
    for path, method, op in operations(doc):
        for status, response in errors_of(op).items():
            if path == TOKEN and status in OAUTH_STATUSES:
                continue
            assert set(response["content"]) == {PROBLEM_JSON}, (method, path, status)
            assert response["content"][PROBLEM_JSON]["schema"] == {"$ref": PROBLEM_REF}
            assert response["x-problem-types"], (method, path, status)
            checked += 1
    assert checked > 200


def test_each_operation_lists_the_errors_of_its_kind_not_a_blanket(doc: dict[str, Any]) -> None:
    def statuses(path: str, method: str = "get") -> set[str]:
        return set(errors_of(doc["paths"][path][method]))

    assert statuses("/healthz") == set()
    assert statuses("/.well-known/jwks.json") == set()
    assert statuses("/readyz") == {"503"}
    assert statuses("/v1/sequences/{name}/next", "post") == {
        *("400", "401", "403", "404", "408", "409", "413", "415", "422", "429", "503")
    }
    # No parameters, no body: no 422; the default sequence is made on first use: no 404.
    assert statuses("/getCounter") == {"401", "403", "409", "429", "503"}
    # A platform admin's token has no tenant plan, so no rate limit.
    assert "429" not in statuses("/admin/v1/tenants")
    assert statuses("/v1/sequences") == {"401", "403", "422", "429", "503"}
    assert statuses(TOKEN, "post") == {"400", "401", "408", "429", "503"}
    not_found = doc["paths"]["/admin/v1/tenants/{slug}/sequences/{name}/ledger"]["get"]
    assert not_found["responses"]["404"]["x-problem-types"] == [
        "/problems/sequence-not-found",
        "/problems/tenant-not-found",
    ]


def test_operations_name_the_scope_they_need(doc: dict[str, Any]) -> None:
    scheme = doc["components"]["securitySchemes"]["oauth2"]
    assert scheme["flows"]["clientCredentials"]["tokenUrl"] == TOKEN
    paths = doc["paths"]
    assert paths["/v1/sequences/{name}/next"]["post"]["security"] == [
        {"oauth2": ["sequences:next"]}
    ]
    assert paths["/getCounter"]["get"]["security"] == [{"oauth2": ["sequences:next"]}]
    assert paths["/admin/v1/overview"]["get"]["security"] == [{"oauth2": ["platform:admin"]}]
    assert "security" not in paths[TOKEN]["post"]
    assert "security" not in paths["/healthz"]["get"]


async def test_the_problem_types_an_answer_carries_are_listed(
    client: httpx.AsyncClient, doc: dict[str, Any], auth_headers: Any
) -> None:
    headers = auth_headers("acme")
    answers = [
        ("post", "/v1/sequences/{name}/next", await client.post("/v1/sequences/nope/next")),
        (
            "post",
            "/v1/sequences/{name}/next",
            await client.post("/v1/sequences/nope/next", headers=headers),
        ),
        (
            "post",
            "/v1/sequences/{name}/next",
            await client.post("/v1/sequences/nope/next", json={"count": 0}, headers=headers),
        ),
        (
            "get",
            "/admin/v1/overview",
            await client.get("/admin/v1/overview", headers=headers),
        ),
    ]
    for method, path, r in answers:
        response = doc["paths"][path][method]["responses"][str(r.status_code)]
        assert r.headers["content-type"] == PROBLEM_JSON
        assert r.json()["type"] in response["x-problem-types"], (path, r.text)
        for name, header in response.get("headers", {}).items():
            assert not header.get("required") or name in r.headers, (path, name)


def test_count_is_bounded_by_this_instances_max_batch(tmp_path: Path) -> None:
    settings = Settings(
        store_url=f"sqlite:///{tmp_path}/t.db",  # type: ignore[arg-type]
        keys_dir=tmp_path / "keys",
        max_batch=500,
        _env_file=None,  # type: ignore[call-arg]
    )
    doc = create_app(settings).openapi()
    count = doc["components"]["schemas"]["NextRequest"]["properties"]["count"]
    assert (count["minimum"], count["maximum"]) == (1, 500)
    body = doc["paths"]["/v1/sequences/{name}/next"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/NextRequest"
    }


async def test_a_count_over_the_documented_maximum_is_refused(
    client: httpx.AsyncClient, doc: dict[str, Any], auth_headers: Any
) -> None:
    headers = auth_headers("acme")
    assert (await client.post("/v1/sequences", json={"name": "n"}, headers=headers)).is_success
    maximum = doc["components"]["schemas"]["NextRequest"]["properties"]["count"]["maximum"]
    over = await client.post("/v1/sequences/n/next", json={"count": maximum + 1}, headers=headers)
    assert over.status_code == 422, over.text
    at = await client.post("/v1/sequences/n/next", json={"count": maximum}, headers=headers)
    assert at.status_code == 200, at.text


def test_int64_bounds_are_exact_integers(doc: dict[str, Any]) -> None:
    """FastAPI wrote them as floats, 9.223372036854776e18: 2^63, past an int64."""
    start = doc["components"]["schemas"]["SequenceCreate"]["properties"]["start"]
    assert start["maximum"] == INT64_MAX and isinstance(start["maximum"], int)
    assert start["minimum"] == INT64_MIN and isinstance(start["minimum"], int)
    step = doc["components"]["schemas"]["SequenceCreate"]["properties"]["step"]
    assert isinstance(step["maximum"], int)


def test_names_and_templates_carry_their_limits(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    name = schemas["SequenceCreate"]["properties"]["name"]
    assert name["maxLength"] == 64 and name["pattern"]
    slug = schemas["TenantCreate"]["properties"]["slug"]
    assert slug["maxLength"] == 32 and slug["pattern"]
    template = schemas["SequenceCreate"]["properties"]["format"]["anyOf"][0]
    assert template["pattern"] == TEMPLATE_PATTERN and template["maxLength"] == 128
    path = doc["paths"]["/v1/sequences/{name}/next"]["post"]["parameters"]
    key = next(p for p in path if p["name"] == "Idempotency-Key")
    assert re.fullmatch(key["schema"]["pattern"], "k" * 255)
    assert not re.search(key["schema"]["pattern"], "caf\u00e9")


def _accepted(template: str) -> bool:
    try:
        parse(template)
    except TemplateError:
        return False
    return True


@settings(max_examples=300, derandomize=True, deadline=None)
@given(
    st.lists(
        st.sampled_from(["{n}", "{n:06}", "{n:021}", "{yyyy}", "{x}", "{{", "}}", "{", "}", "-"])
        | st.text(max_size=3),
        max_size=6,
    ).map("".join)
)
def test_the_template_pattern_is_exactly_what_parse_accepts(template: str) -> None:
    matched = re.search(TEMPLATE_PATTERN, template) is not None and len(template) <= 128
    assert matched == _accepted(template), template


async def test_a_problem_instance_is_a_uri_reference(
    client: httpx.AsyncClient, auth_headers: Any
) -> None:
    """Starlette decodes the path: %C2%84 came back as a raw control character."""
    headers = auth_headers("acme", scopes=ALL_SCOPES)
    for r in (
        await client.get("/v1/sequences/%C2%84", headers=headers),
        await client.post("/v1/sequences/%C2%84/next", headers=headers),
    ):
        assert r.status_code == 422, r.text
        assert r.json()["instance"].endswith("/%C2%84") or "/%C2%84/" in r.json()["instance"]


@pytest.mark.parametrize(
    ("method", "path"),
    [("post", "/v1/sequences"), ("patch", "/v1/sequences/n"), ("post", "/admin/v1/tenants")],
)
async def test_a_body_that_is_not_utf8_is_a_422_like_any_malformed_json(
    client: httpx.AsyncClient, auth_headers: Any, method: str, path: str
) -> None:
    """FastAPI answered these with an undocumented bare 400 ("error parsing the body")."""
    headers = {**auth_headers("acme"), "Content-Type": "application/json"}
    r = await client.request(method, path, content=b":\xff\xfe", headers=headers)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == PROBLEM_JSON
    assert r.json()["type"] == "/problems/validation-error"


async def test_the_token_endpoint_answers_only_the_oauth_errors_it_documents(
    client: httpx.AsyncClient, doc: dict[str, Any]
) -> None:
    responses = doc["paths"][TOKEN]["post"]["responses"]

    def codes(status: int) -> list[str]:
        schema = responses[str(status)]["content"]["application/json"]["schema"]
        return list(schema["properties"]["error"]["enum"])

    form = {"grant_type": "client_credentials", "client_id": "acme.0123456789abcdef"}
    answers = [
        await client.post(TOKEN, data={"grant_type": "password"}),
        await client.post(TOKEN, data={"grant_type": "client_credentials"}),
        await client.post(TOKEN, json={"grant_type": "client_credentials"}),
        *[await client.post(TOKEN, data={**form, "client_secret": "wrong"}) for _ in range(6)],
    ]
    seen = {(r.status_code, r.json()["error"]) for r in answers}
    assert seen == {
        (400, "unsupported_grant_type"),
        (400, "invalid_request"),
        (401, "invalid_client"),
        (429, "invalid_client"),  # the lockout, after TALLY_OAUTH_MAX_FAILURES (5)
    }
    for r in answers:
        assert r.headers["content-type"] == "application/json"
        assert r.json()["error"] in codes(r.status_code)
        for name, header in responses[str(r.status_code)]["headers"].items():
            assert not header.get("required") or name in r.headers


def _nullable(schema: dict[str, Any]) -> bool:
    return {"type": "null"} in schema.get("anyOf", [])


async def test_partial_updates_document_which_fields_may_be_null(
    client: httpx.AsyncClient, doc: dict[str, Any], auth_headers: Any
) -> None:
    """PATCH refuses `"cycle": null` (left out, fine; null, no); the schema said nullable."""
    schemas = doc["components"]["schemas"]
    patch = schemas["SequencePatch"]["properties"]
    assert not _nullable(patch["step"]) and not _nullable(patch["cycle"])
    assert _nullable(patch["max"]) and _nullable(patch["format"])  # null clears these
    tenant = schemas["TenantUpdate"]["properties"]
    assert [f for f in tenant if not _nullable(tenant[f])] == [
        "name",
        "plan",
        "branding",
        "timezone",
    ]
    headers = auth_headers("acme")
    assert (await client.post("/v1/sequences", json={"name": "p"}, headers=headers)).is_success
    for body, status in (({"cycle": None}, 422), ({"max": None}, 200), ({}, 200)):
        r = await client.patch("/v1/sequences/p", json=body, headers=headers)
        assert r.status_code == status, (body, r.text)


def test_urls_and_domains_carry_their_patterns(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    logo = schemas["Branding"]["properties"]["logo_url"]["anyOf"][0]
    assert re.search(logo["pattern"], "https://cdn.example.com/logo.svg")
    assert not re.search(logo["pattern"], "http://cdn.example.com/logo.svg")
    domain = schemas["TenantCreate"]["properties"]["domain"]["anyOf"][0]
    assert re.search(domain["pattern"], "numbers.example.com")
    assert not re.search(domain["pattern"], "not a domain")
