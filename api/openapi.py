"""The OpenAPI document, made to tell the truth about the errors and limits.

FastAPI documents a 200 and its own 422 ``HTTPValidationError`` as ``application/json``;
Tally answers every error as RFC 9457 ``application/problem+json``. This takes FastAPI's
document once and, from each route itself, adds what every route of its kind gives:

* its auth dependency (``auth.dependencies.REQUIREMENTS``): the OAuth2 scope it needs,
  401 and 403; a tenant's token also 429 (its plan's rate limit); 503, as the tenant
  and client checks read the store;
* a JSON request body: 408 (body deadline), 413 (``TALLY_MAX_BODY_BYTES``), 415 (not
  JSON) and 422; path or query parameters: 422;
* a path parameter names a resource: 404 with that resource's problem type;
* an ``Idempotency-Key`` header: 400 (malformed), 409 (a retry still running), 422
  (the key with another body).

Routes declare only the errors that are theirs alone (``core.openapi.errors``). Every
error response is the shared ``Problem`` schema and lists its problem ``type`` values in
``x-problem-types``; the limits that depend on settings (``count`` up to
``TALLY_MAX_BATCH``) are filled in from this instance's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import fastapi.routing
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from auth.dependencies import REQUIREMENTS, Requirement
from auth.errors import InvalidToken, MissingScope, MissingToken
from auth.schemas import SCOPES
from core.errors import PayloadTooLarge, RequestTimeout, TallyError, UnsupportedMediaType
from core.limits import is_json
from core.openapi import PROBLEM_JSON, TYPE_BASE, TYPES_KEY, problem_response, status_title
from core.settings import Settings
from idempotency.errors import IdempotencyKeyReused, InvalidIdempotencyKey, RequestInFlight
from ledger.errors import ReservationNotFound
from sequences.errors import InvalidSequence, SequenceNotFound
from sequences.schemas import FORMATTED_RANGE_LIMIT, INT64_MAX, INT64_MIN, NextRequest
from storage.errors import StoreUnavailable
from tenants.errors import ClientNotFound, TenantNotFound
from tenants.ratelimit import RateLimited

SECURITY_SCHEME = "oauth2"
# What an unknown resource named by each path parameter answers.
_NOT_FOUND: dict[str, type[TallyError]] = {
    "name": SequenceNotFound,
    "slug": TenantNotFound,
    "reservation": ReservationNotFound,
    "client_id": ClientNotFound,
}
_AUTH: tuple[type[TallyError], ...] = (MissingToken, InvalidToken, MissingScope, StoreUnavailable)
_BODY: tuple[type[TallyError], ...] = (
    RequestTimeout,
    PayloadTooLarge,
    UnsupportedMediaType,
    InvalidSequence,  # the one 422 type, whichever check refuses the body
)
_IDEMPOTENCY: tuple[type[TallyError], ...] = (
    InvalidIdempotencyKey,
    RequestInFlight,
    IdempotencyKeyReused,
)
# Headers that always come with a status (core.errors, auth.errors).
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}},
    403: {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}},
    429: {"Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 1}}},
    503: {"Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 1}}},
}

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; every error of the API but the token"
    " endpoint's RFC 6749 ones. Members beyond these may be added (RFC 9457 §3.2).",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {
            "type": "string",
            "format": "uri-reference",
            "description": f"Identifies the problem, e.g. `{TYPE_BASE}sequence-exhausted`;"
            " the operation's response lists the ones it gives (x-problem-types).",
        },
        "title": {"type": "string", "description": "Short summary of the problem type."},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string", "description": "What went wrong with this request."},
        "instance": {
            "type": "string",
            "format": "uri-reference",
            "description": "The request path.",
        },
        "errors": {
            "type": "array",
            "description": "Validation errors (`validation-error`): one per refused field.",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
        "state": {
            "type": "string",
            "description": "`reservation-closed`: the state the reservation is in.",
        },
    },
}


def install(app: FastAPI, settings: Settings) -> None:
    """Serve the corrected document at ``/openapi.json`` (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = FastAPI.openapi(app)
            app.openapi_schema = document(doc, app.routes, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def document(doc: dict[str, Any], routes: list[Any], settings: Settings) -> dict[str, Any]:
    """FastAPI's ``doc`` with each operation's real errors, security and limits."""
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    schemas["NextRequest"] = _next_request(settings)
    components["securitySchemes"] = {
        SECURITY_SCHEME: {
            "type": "oauth2",
            "description": "Access tokens from Tally's token endpoint (client credentials),"
            " or from a tenant's own identity provider; send them as"
            " `Authorization: Bearer <token>`.",
            "flows": {
                "clientCredentials": {
                    "tokenUrl": "/oauth/token",
                    "scopes": {scope: _SCOPE_HELP[scope] for scope in SCOPES},
                }
            },
        }
    }
    for path, methods, route in _api_routes(routes):
        for method in methods:
            operation = doc["paths"].get(path, {}).get(method.lower())
            if operation is not None:
                _document(operation, route)
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    _exact_integers(doc)
    return doc


_SCOPE_HELP = {
    "sequences:read": "Read the tenant's sequences, ledger, usage and audit trail.",
    "sequences:next": "Take numbers (next, reservations).",
    "sequences:write": "Create, change and delete the tenant's sequences.",
    "platform:admin": "Administer the platform (tokens bound to no tenant).",
}


def _api_routes(routes: list[Any]) -> Iterator[tuple[str, set[str], APIRoute]]:
    """Each documented route with its full path: FastAPI >= 0.16x keeps included routers
    as wrappers (``iter_route_contexts`` resolves their prefixes), older ones flatten."""
    contexts: Callable[[list[Any]], Iterator[Any]] | None = getattr(
        fastapi.routing, "iter_route_contexts", None
    )
    for context in contexts(routes) if contexts else routes:
        route = getattr(context, "original_route", context)
        if isinstance(route, APIRoute) and context.include_in_schema:
            yield context.path_format, set(context.methods or ()), route


def _next_request(settings: Settings) -> dict[str, Any]:
    schema = NextRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    count = schema["properties"]["count"]
    count["maximum"] = settings.max_batch
    count["description"] = (
        f"How many numbers, in one contiguous range: at most {settings.max_batch} on this"
        " instance (TALLY_MAX_BATCH), less if the tenant's plan says so (a 422 names the"
        f" limit); `formatted_range` lists them for up to {FORMATTED_RANGE_LIMIT}."
    )
    return schema


def _document(operation: dict[str, Any], route: APIRoute) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    if _is_fastapi_422(responses.get("422")):
        del responses["422"]
    found: dict[int, list[type[TallyError]]] = {}

    def add(*kinds: type[TallyError]) -> None:
        for kind in kinds:
            found.setdefault(kind.status, []).append(kind)

    requirement = _requirement(route)
    if requirement is not None:
        operation["security"] = [
            {SECURITY_SCHEME: [requirement.scope] if requirement.scope else []}
        ]
        add(*_AUTH)
        if requirement.tenant_bound:
            add(RateLimited)
    body = operation.get("requestBody", {}).get("content", {})
    if any(is_json(media) for media in body):
        add(*_BODY)
    parameters = operation.get("parameters", [])
    if any(p["in"] in ("path", "query") for p in parameters):
        add(InvalidSequence)
    for p in parameters:
        if p["in"] == "path" and p["name"] in _NOT_FOUND:
            add(_NOT_FOUND[p["name"]])
        if p["in"] == "header" and p["name"].lower() == "idempotency-key":
            add(*_IDEMPOTENCY)
    for status, kinds in found.items():
        key = str(status)
        declared = responses.get(key)
        types = [k.type for k in kinds]
        if declared is not None and TYPES_KEY in declared:
            types += [t.removeprefix(TYPE_BASE) for t in declared[TYPES_KEY]]
        elif declared is not None:
            continue  # a route's own answer (the token endpoint's RFC 6749 errors)
        responses[key] = problem_response(status_title(kinds[0]), types)
    for key, response in responses.items():
        if PROBLEM_JSON in response.get("content", {}) and int(key) in _HEADERS:
            response["headers"] = _HEADERS[int(key)] | response.get("headers", {})
    operation["responses"] = dict(sorted(responses.items()))


def _is_fastapi_422(response: dict[str, Any] | None) -> bool:
    if response is None:
        return False
    content = response.get("content", {}).get("application/json", {})
    return bool(content.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"))


def _requirement(route: APIRoute) -> Requirement | None:
    """The auth requirement of the route's dependencies, or of its endpoint itself."""
    found = REQUIREMENTS.get(route.endpoint)
    for call in _calls(route.dependant):
        requirement = REQUIREMENTS.get(call)
        if requirement is not None and (found is None or found.scope is None):
            found = requirement
    return found


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def _exact_integers(node: Any) -> None:
    """Integral bounds as JSON integers. FastAPI's OpenAPI model types ``minimum`` and
    ``maximum`` as floats, so 2^63 - 1 came out as 9.223372036854776e18 (2^63, which
    an int64 client cannot hold); the only bounds that large are Int64's."""
    if isinstance(node, list):
        for item in node:
            _exact_integers(item)
        return
    if not isinstance(node, dict):
        return
    for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        value = node.get(key)
        if isinstance(value, float) and value.is_integer():
            if value >= float(INT64_MAX):
                node[key] = INT64_MAX
            elif value <= float(INT64_MIN):
                node[key] = INT64_MIN
            else:
                node[key] = int(value)
    for value in node.values():
        _exact_integers(value)
