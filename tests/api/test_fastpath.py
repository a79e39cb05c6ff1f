"""The fast path answers ``POST …/next`` and ``GET /getCounter`` exactly as FastAPI's
router does.

Every other test of ``next`` runs through the fast path (it is on by default); here the
same requests go to an app with it and an app without it, and the answers must match
byte for byte: successes, every 4xx, and the 500 of an unexpected error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response

from api.app import create_app
from api.fastpath import FastPath
from core.clock import FrozenClock
from core.settings import Settings
from tests.conftest import app_token

Step = tuple[str, str, dict[str, Any]]

# (method, path, httpx keyword arguments); "{token}"/"{read}" become real tokens.
SCRIPT: list[Step] = [
    ("POST", "/v1/sequences", {"json": {"name": "small", "max": 4, "format": "S-{n:03}"}}),
    ("POST", "/v1/sequences/small/next", {}),
    ("POST", "/v1/sequences/small/next", {"json": {"count": 2}}),
    ("POST", "/v1/sequences/small/next", {"json": {"count": 5}}),  # 409, nothing consumed
    ("POST", "/v1/sequences/small/next", {"json": None}),
    ("POST", "/v1/sequences/small/next", {"json": {"count": 1}}),  # 409: exhausted
    ("POST", "/v1/sequences/missing/next", {}),  # 404
    ("POST", "/v1/sequences/Bad_Name/next", {}),  # 422 (path)
    ("POST", "/v1/sequences/small/next", {"content": b"{", "type": "application/json"}),
    ("POST", "/v1/sequences/small/next", {"json": {"count": 0}}),
    # Not JSON: 415 on both paths, before anything is parsed (issue 15).
    ("POST", "/v1/sequences/small/next", {"content": b'{"count":1}', "type": "text/plain"}),
    ("POST", "/v1/sequences/small/next", {"content": b"<count>1</count>", "type": "text/xml"}),
    ("POST", "/v1/sequences/small/next", {"data": {"count": "1"}}),  # a form
    ("POST", "/v1/sequences/small/next", {"content": b'{"count":1}'}),  # no Content-Type
    ("POST", "/v1/sequences/small/next", {"content": b"null", "type": "application/json"}),
    ("POST", "/v1/sequences/small/next", {"json": {"count": 1, "extra": True}}),
    ("POST", "/v1/sequences/small/next", {"content": b" " * 5000}),  # 413
    ("POST", "/v1/sequences/small/next", {"auth": None}),  # 401
    ("POST", "/v1/sequences/small/next", {"auth": "Bearer not-a-jwt"}),  # 401
    ("POST", "/v1/sequences/small/next", {"auth": "{read}"}),  # 403: no sequences:next
    ("POST", "/v1/sequences/small/next", {"auth": ["{token}", "{token}"]}),  # 401
    ("GET", "/v1/sequences/small/next", {}),  # 405
    ("POST", "/v1/sequences/small/next/", {}),
    ("POST", "/v1/sequences//next", {}),
    ("POST", "/v1/sequences/a/b/next", {}),
    ("POST", "/v1/sequences", {"json": {"name": "keyed"}, "idem": "c-1"}),
    ("POST", "/v1/sequences", {"json": {"name": "keyed"}, "idem": "c-1"}),  # replayed 201
    ("POST", "/v1/sequences/keyed/next", {"json": {"count": 2}, "idem": "n-1"}),
    ("POST", "/v1/sequences/keyed/next", {"json": {"count": 2}, "idem": "n-1"}),  # replayed
    ("POST", "/v1/sequences/keyed/next", {"json": {"count": 3}, "idem": "n-1"}),  # 422
    ("POST", "/v1/sequences/keyed/next", {"idem": ""}),  # 400
    ("POST", "/v1/sequences/keyed/next", {"idem": "n-2"}),
    # A ledger sequence: references, its count cap, keyed batches, the same entries.
    ("POST", "/v1/sequences", {"json": {"name": "books", "ledger": True, "format": "B{n}"}}),
    ("POST", "/v1/sequences/books/next", {"json": {"reference": "inv-1"}}),
    ("POST", "/v1/sequences/books/next", {"json": {"reference": "x" * 201}}),  # 422
    ("POST", "/v1/sequences/books/next", {"json": {"count": 1001}}),  # 422: ledger cap
    ("POST", "/v1/sequences/small/next", {"json": {"reference": "r"}}),  # 409: no ledger
    ("POST", "/v1/sequences/books/next", {"json": {"count": 2}, "idem": "b-1"}),
    ("POST", "/v1/sequences/books/next", {"json": {"count": 2}, "idem": "b-1"}),  # replayed
    ("GET", "/v1/sequences/books/ledger", {}),
    # The seed API: made on first use, then counting; its errors.
    ("GET", "/getCounter", {}),
    ("GET", "/getCounter", {}),
    ("GET", "/getCounter", {"auth": None}),  # 401
    ("GET", "/getCounter", {"auth": "Bearer not-a-jwt"}),  # 401
    ("GET", "/getCounter", {"auth": "{read}"}),  # 403
    ("GET", "/getCounter", {"auth": ["{token}", "{token}"]}),  # 401
    ("HEAD", "/getCounter", {}),
    ("POST", "/getCounter", {}),  # 405
    ("GET", "/getCounter/", {}),
    ("GET", "/getCounter", {}),
    ("GET", "/getCounter", {"idem": "g-1"}),  # the seed API has no keyed form: a number
    # The fast path reads the head itself: the first Content-Type counts, as in Starlette.
    ("POST", "/v1/sequences/small/next", {"content": b"1", "type": ["text/plain", "a/json"]}),
    ("POST", "/v1/sequences/keyed/next", {"json": {}, "type": ["application/json", "text/x"]}),
]


def step_request(
    i: int, options: dict[str, Any], tokens: dict[str, str]
) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """The headers of step ``i`` of SCRIPT and the httpx arguments left over."""
    kwargs = dict(options)
    auth = kwargs.pop("auth", "{token}")
    # A fixed request id per step: both paths must echo it (a generated one would
    # differ between the two runs).
    headers: list[tuple[str, str]] = [("X-Request-ID", f"parity-{i}")]
    for value in [auth] if isinstance(auth, str) else auth or []:
        headers.append(("Authorization", tokens.get(value, value)))
    if "idem" in kwargs:
        headers.append(("Idempotency-Key", kwargs.pop("idem")))
    if "type" in kwargs:
        media = kwargs.pop("type")
        for value in [media] if isinstance(media, str) else media:
            headers.append(("Content-Type", value))
    return headers, kwargs


async def _answers(settings: Settings, explode: bool = False) -> list[tuple[Any, ...]]:
    app = create_app(settings, clock=FrozenClock())
    assert isinstance(app.build_middleware_stack().app, FastPath) is settings.fast_path
    async with app.router.lifespan_context(app):
        tokens = {
            "{token}": f"Bearer {app_token(app)}",
            "{read}": f"Bearer {app_token(app, scopes='sequences:read')}",
        }
        if explode:

            async def boom(*_: Any, **__: Any) -> Any:
                raise RuntimeError("injected")

            app.state.sequences.next = boom
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        answers = []
        async with httpx.AsyncClient(transport=transport, base_url="http://tally.test") as c:
            for i, (method, path, options) in enumerate(SCRIPT if not explode else SCRIPT[:2]):
                headers, kwargs = step_request(i, options, tokens)
                r = await c.request(method, path, headers=headers, **kwargs)
                answers.append((method, path, r.status_code, sorted(r.headers.items()), r.content))
        return answers


@pytest.fixture
async def both(tmp_path: Path) -> AsyncIterator[tuple[Settings, Settings]]:
    def settings(name: str, fast: bool) -> Settings:
        return Settings(
            store_url=f"sqlite:///{tmp_path}/{name}.db",  # type: ignore[arg-type]
            keys_dir=tmp_path / f"keys-{name}",
            jwt_issuer="https://tally.test",
            jwt_audience="tally-test",
            fast_path=fast,
            _env_file=None,  # type: ignore[call-arg]
        )

    yield settings("fast", True), settings("routed", False)


async def test_fast_path_answers_exactly_like_the_router(
    both: tuple[Settings, Settings],
) -> None:
    fast, routed = both
    got, expected = await _answers(fast), await _answers(routed)
    statuses = [a[2] for a in expected]
    # The script covers success and every client error the route can give.
    assert set(statuses) >= {200, 201, 400, 401, 403, 404, 405, 409, 413, 415, 422}, statuses
    assert sum(("idempotent-replayed", "true") in a[3] for a in got) == 3
    seeds = [a for a in got if a[:2] == ("GET", "/getCounter")]
    assert [(a[2], a[4]) for a in seeds[:2]] == [(200, b"1"), (200, b"2")]
    assert [a[2] for a in seeds[2:6]] == [401, 401, 403, 401]
    for answer, wanted in zip(got, expected, strict=True):
        assert answer == wanted
    assert all(("x-request-id", f"parity-{i}") in a[3] for i, a in enumerate(got))


async def test_an_unexpected_error_is_the_same_500_problem_either_way(
    both: tuple[Settings, Settings],
) -> None:
    fast, routed = both
    got, expected = await _answers(fast, explode=True), await _answers(routed, explode=True)
    assert got == expected
    _, _, status, headers, body = got[-1]
    assert status == 500 and ("content-type", "application/problem+json") in headers
    assert ("x-request-id", "parity-1") in headers
    assert b"injected" not in body  # no internals leak


async def test_a_plain_next_or_seed_call_makes_no_starlette_request_or_response(
    both: tuple[Settings, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the fast path is for (docs/performance.md): the hot answers are sent as two
    ASGI messages, with no Request, Headers or Response objects per request."""
    fast, _ = both
    made: list[str] = []
    for cls in (Request, Response):
        original = cls.__init__

        def counting(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> None:
            made.append(type(self).__name__)
            _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", counting)
    app = create_app(fast, clock=FrozenClock())
    async with app.router.lifespan_context(app):
        auth = {"Authorization": f"Bearer {app_token(app)}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tally.test") as c:
            created = await c.post("/v1/sequences", json={"name": "hot"}, headers=auth)
            assert created.status_code == 201 and made  # the router makes them
            made.clear()
            hot = await c.post("/v1/sequences/hot/next", json={"count": 2}, headers=auth)
            seed = await c.get("/getCounter", headers=auth)
            assert (hot.status_code, hot.json()["value"], seed.text) == (200, 1, "1")
            assert made == []
            keyed = await c.post(
                "/v1/sequences/hot/next", headers={**auth, "Idempotency-Key": "k-1"}
            )
            assert keyed.json()["value"] == 3
            assert "Request" in made  # a keyed call goes through the endpoint itself
