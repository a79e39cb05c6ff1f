"""api.rsgi's bridge reads a body it may hold whole in one call into granian.

granian's RSGI gives a body either whole (``await proto()``) or as a chunk iterator,
which costs two calls into granian for a small body (a chunk, then the end). A bridged
request whose declared ``Content-Length`` is within ``TALLY_MAX_BODY_BYTES`` (no route
takes more) is read whole; one without a declared length, or declaring more, chunk by
chunk, so the route's cap still stops it early. TallyRSGI is driven here as granian
drives it: its start hook on a loop, then one call per request with RSGI's scope and
protocol objects (plain stand-ins for granian's).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from api.app import create_app
from api.rsgi import TallyRSGI
from core.settings import Settings
from tests.conftest import app_token


class Headers:
    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items

    def get(self, key: str, default: str | None = None) -> str | None:
        return next((v for k, v in self._items if k == key), default)

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def keys(self) -> list[str]:
        return [k for k, _ in self._items]

    def __contains__(self, key: str) -> bool:
        return key in self.keys()


class Scope:
    proto, http_version, scheme, query_string = "http", "1.1", "http", ""
    client, server = "127.0.0.1:40000", "127.0.0.1:8000"

    def __init__(self, method: str, path: str, headers: list[tuple[str, str]]) -> None:
        self.method, self.path, self.headers = method, path, Headers(headers)


class Proto:
    """RSGI's HTTP protocol object: records how the body was read and the answer."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.reads: list[str] = []
        self.answer: tuple[int, list[tuple[str, str]], bytes] | None = None

    async def __call__(self) -> bytes:
        self.reads.append("whole")
        return self.body

    def __aiter__(self) -> AsyncIterator[bytes]:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(0, len(self.body), 8):
                self.reads.append("chunk")
                yield self.body[i : i + 8]

        return chunks()

    async def client_disconnect(self) -> None:
        await asyncio.Event().wait()

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.answer = (status, headers, body)


@pytest.fixture
def served(settings: Settings) -> Iterator[tuple[TallyRSGI, asyncio.AbstractEventLoop]]:
    loop = asyncio.new_event_loop()
    server = TallyRSGI(create_app(settings.model_copy(update={"max_body_bytes": 2048})))
    server.__rsgi_init__(loop)
    try:
        yield server, loop
    finally:
        server.__rsgi_del__(loop)
        loop.close()


def post(
    served: tuple[TallyRSGI, asyncio.AbstractEventLoop], body: bytes, length: str | None
) -> Proto:
    server, loop = served
    headers = [
        ("host", "tally.test"),
        ("authorization", f"Bearer {app_token(server.app)}"),
        ("content-type", "application/json"),
    ]
    if length is not None:
        headers.append(("content-length", length))
    proto = Proto(body)
    loop.run_until_complete(server.__rsgi__(Scope("POST", "/v1/sequences", headers), proto))
    assert proto.answer is not None
    return proto


def test_a_bridged_body_of_declared_length_is_read_in_one_call(served: Any) -> None:
    body = b'{"name": "invoices"' + b" " * 100 + b"}"  # more than one chunk
    proto = post(served, body, str(len(body)))
    assert proto.answer is not None and proto.answer[0] == 201, proto.answer
    assert proto.reads == ["whole"]


def test_a_bridged_body_of_no_declared_length_is_read_chunk_by_chunk(served: Any) -> None:
    body = b'{"name": "orders"}'
    proto = post(served, body, None)
    assert proto.answer is not None and proto.answer[0] == 201, proto.answer
    assert proto.reads == ["chunk"] * -(-len(body) // 8)


def test_a_bridged_body_declared_over_the_cap_is_never_read_whole(served: Any) -> None:
    body = b'{"name": "big"' + b" " * 3000 + b"}"
    proto = post(served, body, str(len(body)))
    assert proto.answer is not None and proto.answer[0] == 413, proto.answer
    assert "whole" not in proto.reads


def test_an_unexpected_error_on_a_bridged_route_is_answered_and_logged_once(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Starlette's ServerErrorMiddleware answers with the app's 500 handler (which logs
    the traceback with the request's context) and then re-raises, for servers to log
    it again: the bridge must not hand it on to granian for a second traceback."""
    app = create_app(settings)

    async def boom() -> None:
        raise RuntimeError("boom")

    app.add_api_route("/boom", boom)
    loop = asyncio.new_event_loop()
    server = TallyRSGI(app)
    server.__rsgi_init__(loop)
    try:
        proto = Proto(b"")
        with caplog.at_level(logging.ERROR):
            loop.run_until_complete(
                server.__rsgi__(Scope("GET", "/boom", [("host", "tally.test")]), proto)
            )
    finally:
        server.__rsgi_del__(loop)
        loop.close()
    assert proto.answer is not None
    status, headers, body = proto.answer
    assert status == 500 and ("content-type", "application/problem+json") in headers
    assert json.loads(body)["type"].endswith("/internal-error")
    assert [r.exc_info[0] for r in caplog.records if r.exc_info] == [RuntimeError]
