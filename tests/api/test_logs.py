"""Structured logs: one access line per request, request ids, and no secret ever logged."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.access import AccessRecord
from api.app import create_app
from api.logs import JsonFormatter, TextFormatter, log_format, logging_config
from core.clock import FrozenClock
from core.settings import Settings
from tests.conftest import app_token, bearer
from tests.tenants.builders import basic, make_tenant

ACCESS_FIELDS = {
    "time",
    "level",
    "logger",
    "message",
    "request_id",
    "tenant",
    "client_id",
    "route",
    "method",
    "status",
    "duration_ms",
    "numbers",
}


class Captured:
    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines()]

    def access(self) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line["logger"] == "tally.access"]


@contextmanager
def captured(formatter: logging.Formatter) -> Iterator[Captured]:
    """Every record reaching the root logger, formatted as ``tally serve`` formats it."""
    cap = Captured()
    handler = logging.StreamHandler(cap.stream)
    handler.setFormatter(formatter)
    # The test's own HTTP client logs its URLs (query strings included): not the server's.
    handler.addFilter(lambda r: not r.name.startswith(("httpx", "httpcore")))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield cap
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(
        store_url=f"sqlite:///{tmp_path}/tally.db",  # type: ignore[arg-type]
        keys_dir=tmp_path / "keys",
        jwt_issuer="https://tally.test",
        jwt_audience="tally-test",
        _env_file=None,  # type: ignore[call-arg]
        **overrides,
    )


async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://tally.test") as c:
        yield c


@pytest.fixture
async def json_app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    app = create_app(make_settings(tmp_path, log_format="json"), clock=FrozenClock())
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def json_client(json_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async for c in _client(json_app):
        yield c


async def test_every_request_gets_one_json_access_line_with_the_listed_fields(
    json_app: FastAPI, json_client: httpx.AsyncClient
) -> None:
    h = bearer(app_token(json_app, tenant="acme", subject="acme-billing"))
    with captured(JsonFormatter()) as cap:
        created = await json_client.post("/v1/sequences", json={"name": "inv"}, headers=h)
        taken = await json_client.post("/v1/sequences/inv/next", json={"count": 3}, headers=h)
        seed = await json_client.get("/getCounter", headers=h)
        missing = await json_client.post("/v1/sequences/nope/next", headers=h)
        anonymous = await json_client.get("/v1/sequences")
        unrouted = await json_client.get("/no/such/page")
    lines = cap.access()
    assert len(lines) == 6, cap.text
    for line in lines:
        assert set(line) == ACCESS_FIELDS, line
        assert line["time"].endswith("Z") and line["duration_ms"] >= 0
    create, nxt, counter, notfound, anon, unmatched = lines
    assert (create["method"], create["route"], create["status"]) == ("POST", "/v1/sequences", 201)
    assert (create["tenant"], create["client_id"], create["numbers"]) == ("acme", "acme-billing", 0)
    # The fast path (pure ASGI, no router) is logged like any routed request.
    assert nxt["route"] == "/v1/sequences/{name}/next" and nxt["status"] == 200
    assert (nxt["numbers"], nxt["tenant"], nxt["level"]) == (3, "acme", "info")
    assert (counter["route"], counter["numbers"]) == ("/getCounter", 1)
    assert (notfound["status"], notfound["numbers"]) == (404, 0)
    assert (anon["status"], anon["tenant"], anon["client_id"]) == (401, None, None)
    assert (unmatched["route"], unmatched["status"]) == ("unmatched", 404)
    responses = [created, taken, seed, missing, anonymous, unrouted]
    assert [line["request_id"] for line in lines] == [r.headers["x-request-id"] for r in responses]
    assert len({line["request_id"] for line in lines}) == 6


@pytest.mark.parametrize(
    "sent",
    ["lb-7f3a9c", "Root=1-67891233-abcdef012345678912345678", "a" * 128, "trace:1/2+3=4@x.y_z"],
)
async def test_a_sane_request_id_round_trips_into_the_access_line(
    json_client: httpx.AsyncClient, sent: str
) -> None:
    with captured(JsonFormatter()) as cap:
        r = await json_client.get("/healthz", headers={"X-Request-ID": sent})
    assert r.headers["x-request-id"] == sent
    assert cap.access()[0]["request_id"] == sent


@pytest.mark.parametrize(
    "sent",
    ["a" * 129, "has space", 'quote"d', "semi;colon", "new\\line", "", "ünïcode"],
)
async def test_an_insane_request_id_is_replaced_by_a_generated_one(
    json_client: httpx.AsyncClient, sent: str
) -> None:
    with captured(JsonFormatter()) as cap:
        r = await json_client.get("/healthz", headers={"X-Request-ID": sent.encode()})
    rid = r.headers["x-request-id"]
    assert rid != sent and len(rid) == 32 and int(rid, 16) >= 0
    assert cap.access()[0]["request_id"] == rid
    assert sent not in cap.text or sent == ""


async def test_every_line_of_a_request_carries_its_id_even_a_500(
    json_app: FastAPI, json_client: httpx.AsyncClient
) -> None:
    h = bearer(app_token(json_app))
    await json_client.post("/v1/sequences", json={"name": "inv"}, headers=h)

    async def boom(*_: Any, **__: Any) -> Any:
        raise RuntimeError("injected")

    json_app.state.sequences.next = boom
    with captured(JsonFormatter()) as cap:
        r = await json_client.post(
            "/v1/sequences/inv/next", headers={**h, "X-Request-ID": "req-500"}
        )
    assert r.status_code == 500 and r.headers["x-request-id"] == "req-500"
    lines = cap.lines()
    assert {line["logger"] for line in lines} >= {"tally.errors", "tally.access"}
    assert all(line["request_id"] == "req-500" for line in lines), lines
    error = next(line for line in lines if line["logger"] == "tally.errors")
    assert "RuntimeError: injected" in error["exc"] and error["level"] == "error"
    access = cap.access()[0]
    assert (access["status"], access["level"]) == (500, "error")


async def test_lines_outside_a_request_have_no_request_id() -> None:
    with captured(JsonFormatter()) as cap:
        logging.getLogger("tally.test").warning("hello %s", "world")
    (line,) = cap.lines()
    assert line["request_id"] is None and line["message"] == "hello world"


async def test_no_token_secret_authorization_or_query_string_is_ever_logged(
    json_app: FastAPI, json_client: httpx.AsyncClient
) -> None:
    onboarded = await make_tenant(json_app.state.tenants, "acme")
    cid, secret = onboarded.client_id, onboarded.client_secret
    token = app_token(json_app, tenant="acme")
    bogus = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    with captured(JsonFormatter()) as cap:
        # Secrets in every place a client might put them: the Authorization header
        # (Bearer and Basic), the form body, the query string.
        got = await json_client.post(
            "/oauth/token", data={"grant_type": "client_credentials"}, headers=basic(cid, secret)
        )
        assert got.status_code == 200, got.text
        minted = got.json()["access_token"]
        await json_client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials", "client_id": cid, "client_secret": secret},
        )
        await json_client.post(
            f"/oauth/token?client_secret={secret}&access_token={token}",
            data={"grant_type": "client_credentials"},
        )
        await json_client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            headers=basic(cid, "wrong-" + secret),
        )
        await json_client.post("/v1/sequences", json={"name": "inv"}, headers=bearer(minted))
        await json_client.post(f"/v1/sequences/inv/next?token={token}", headers=bearer(token))
        await json_client.get(f"/v1/sequences?after=a&sig={secret}", headers=bearer(bogus))
        await json_client.get("/getCounter", headers={"Authorization": f"Basic {secret}"})
        await json_client.get(f"/healthz?password={secret}")
    text = cap.text
    assert len(cap.access()) == 9
    for needle in (secret, token, minted, bogus, "Bearer", "Basic", "authorization", "?"):
        assert needle not in text, needle
    for needle in ("client_secret", "password", "access_token", "sig="):
        assert needle not in text, needle


async def test_text_format_for_development(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path), clock=FrozenClock())  # development: text
    async with app.router.lifespan_context(app):
        with captured(TextFormatter()) as cap:
            async for c in _client(app):
                h = {**bearer(app_token(app)), "X-Request-ID": "dev-1"}
                await c.post("/v1/sequences", json={"name": "inv"}, headers=h)
    (line,) = cap.text.splitlines()
    assert " INFO tally.access [dev-1] POST /v1/sequences 201 " in line
    assert line.endswith(" tenant=acme client=test-acme numbers=0")
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


async def test_access_lines_can_be_switched_off_and_ids_stay(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, access_log=False), clock=FrozenClock())
    async with app.router.lifespan_context(app):
        with captured(JsonFormatter()) as cap:
            async for c in _client(app):
                r = await c.get("/healthz", headers={"X-Request-ID": "quiet"})
    assert r.headers["x-request-id"] == "quiet"
    assert cap.text == ""


@pytest.mark.parametrize(
    ("environment", "setting", "expected"),
    [
        ("production", None, "json"),
        ("development", None, "text"),
        ("production", "text", "text"),
        ("development", "json", "json"),
    ],
)
def test_json_is_the_production_default_and_text_the_development_one(
    tmp_path: Path, environment: str, setting: str | None, expected: str
) -> None:
    settings = make_settings(tmp_path, environment=environment, log_format=setting)
    assert log_format(settings) == expected
    config = logging_config(settings)
    assert config["handlers"]["default"]["formatter"] == expected
    assert config["loggers"]["granian.access"]["level"] == "WARNING"


def test_generated_request_ids_are_32_hex_digits_unique_and_new_after_a_fork() -> None:
    import os

    from api import access

    ids = {access.request_id_of({"headers": []}) for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its first id, then leave at once
        os.write(write, access.request_id_of({"headers": []}).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    assert child[:16] != next(iter(ids))[:16], "a forked worker reuses the parent's ids"


async def test_a_reservation_counts_its_number_and_a_replay_counts_none(
    json_app: FastAPI, json_client: httpx.AsyncClient
) -> None:
    h = bearer(app_token(json_app))
    body = {"name": "inv", "ledger": True}
    assert (await json_client.post("/v1/sequences", json=body, headers=h)).status_code == 201
    keyed = {**h, "Idempotency-Key": "draft-1"}
    with captured(JsonFormatter()) as cap:
        first = await json_client.post("/v1/sequences/inv/reservations", headers=keyed)
        again = await json_client.post("/v1/sequences/inv/reservations", headers=keyed)
    assert first.status_code == again.status_code == 201, first.text
    assert [(x["route"], x["numbers"]) for x in cap.access()] == [
        ("/v1/sequences/{name}/reservations", 1),
        ("/v1/sequences/{name}/reservations", 0),
    ]


def test_the_cheap_access_record_formats_like_any_log_record() -> None:
    every_field = (
        "%(asctime)s %(created)f %(msecs)d %(relativeCreated)d %(levelname)s %(levelno)d"
        " %(name)s %(pathname)s %(filename)s %(module)s %(funcName)s %(lineno)d"
        " %(process)d %(processName)s %(thread)d %(threadName)s %(message)s"
    )
    record = AccessRecord(logging.ERROR, '{"status":500}', 1_764_576_000.25)
    text = logging.Formatter(every_field).format(record)
    assert " ERROR 40 tally.access " in text and text.endswith('{"status":500}')
    assert record.getMessage() == '{"status":500}' and record.msecs == 250


@contextmanager
def served_config(settings: Settings) -> Iterator[io.StringIO]:
    """``tally serve``'s own logging configuration, writing to a string."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    logging.config.dictConfig(logging_config(settings))
    stream = io.StringIO()
    root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
    try:
        yield stream
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])


async def test_under_the_served_config_each_access_line_is_written_once_and_whole(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, log_format="json")
    app = create_app(settings, clock=FrozenClock())
    async with app.router.lifespan_context(app):
        with served_config(settings) as stream:
            async for c in _client(app):
                for i in range(3):
                    await c.get("/healthz", headers={"X-Request-ID": f"direct-{i}"})
                assert app.middleware_stack._direct  # written straight to the stream
                # A filter on the way: the line goes through the logging machinery.
                logging.getLogger("tally.access").addFilter(lambda r: True)
                try:
                    await c.get("/healthz", headers={"X-Request-ID": "filtered"})
                finally:
                    logging.getLogger("tally.access").filters.clear()
            logging.getLogger("tally").warning("after")
    lines = [json.loads(x) for x in stream.getvalue().splitlines()]
    access = [x["request_id"] for x in lines if x["logger"] == "tally.access"]
    assert access == ["direct-0", "direct-1", "direct-2", "filtered"]
    assert lines[-1]["message"] == "after" and lines[-1]["request_id"] is None


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.access_writes = 0  # write calls that carried access lines

    def write(self, s: str) -> int:
        self.access_writes += '"logger":"tally.access"' in s
        return super().write(s)


def access_ids(stream: io.StringIO) -> list[str]:
    lines = [json.loads(x) for x in stream.getvalue().splitlines()]
    return [
        x["request_id"]
        for x in lines
        if x["logger"] == "tally.access" and x["request_id"].startswith("b-")
    ]


async def test_buffered_access_lines_are_written_together_in_order_and_at_shutdown(
    tmp_path: Path,
) -> None:
    # A delay no test outlives: only a batch limit, a 5xx or the shutdown writes.
    settings = make_settings(tmp_path, log_format="json", access_log_flush_ms=10_000)
    app = create_app(settings, clock=FrozenClock())
    stream = CountingStream()
    with served_config(settings):
        logging.getLogger().handlers[0].setStream(stream)  # type: ignore[attr-defined]
        async with app.router.lifespan_context(app):
            h = bearer(app_token(app))
            async for c in _client(app):
                await c.post("/v1/sequences", json={"name": "inv"}, headers=h)
                for i in range(3):
                    await c.post("/v1/sequences/inv/next", headers={**h, "X-Request-ID": f"b-{i}"})
                assert '"b-0"' not in stream.getvalue()  # waiting in memory
                before = stream.access_writes

                async def boom(*_: Any, **__: Any) -> Any:
                    raise RuntimeError("injected")

                real, app.state.sequences.next = app.state.sequences.next, boom
                r = await c.post("/v1/sequences/inv/next", headers={**h, "X-Request-ID": "b-500"})
                app.state.sequences.next = real
                assert r.status_code == 500
                # The 5xx line is written at once, the waiting ones with it, in order.
                assert access_ids(stream) == ["b-0", "b-1", "b-2", "b-500"]
                for i in range(3, 5):
                    await c.post("/v1/sequences/inv/next", headers={**h, "X-Request-ID": f"b-{i}"})
                assert '"b-3"' not in stream.getvalue()
        # The lifespan's end wrote the rest: every line once, whole, in order.
        assert access_ids(stream) == ["b-0", "b-1", "b-2", "b-500", "b-3", "b-4"]
    # One write for the 3 waiting lines and the 5xx, one for the last two.
    assert stream.access_writes - before == 2


def test_the_production_default_batches_access_lines_and_development_writes_at_once(
    tmp_path: Path,
) -> None:
    assert make_settings(tmp_path, environment="production").access_log_flush_seconds == 0.05
    assert make_settings(tmp_path).access_log_flush_seconds == 0
    assert (
        make_settings(
            tmp_path, access_log_flush_ms=0, environment="production"
        ).access_log_flush_seconds
        == 0
    )


def test_a_pending_request_is_settled_on_a_new_event_loop_even_if_the_old_one_stopped() -> None:
    import asyncio

    from api.access import AccessLog
    from core.requestctx import RequestInfo

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tally.access")
    saved = (logger.handlers[:], logger.propagate, logger.level)
    logger.handlers[:], logger.propagate = [handler], False
    logger.setLevel(logging.INFO)
    observed: list[str] = []
    log = AccessLog(
        None,  # type: ignore[arg-type]
        json=True,
        observe=lambda method, route, status, seconds: observed.append(route),
        flush_seconds=0.01,
    )

    def finish(request_id: str) -> None:
        log._finished((0.0, "GET", f"/{request_id}", 200, 0.001, RequestInfo(request_id)))

    async def finish_and_leave() -> None:
        finish("first")

    async def finish_and_wait() -> None:
        finish("second")
        await asyncio.sleep(0.05)

    try:
        asyncio.run(finish_and_leave())  # its loop stops before the timer fires
        assert stream.getvalue() == "" and observed == []
        asyncio.run(finish_and_wait())
    finally:
        logger.handlers[:], logger.propagate = saved[0], saved[1]
        logger.setLevel(saved[2])
    ids = [json.loads(x)["request_id"] for x in stream.getvalue().splitlines()]
    assert ids == ["first", "second"]
    assert observed == ["/first", "/second"]


class FailingStream(io.StringIO):
    def write(self, s: str) -> int:
        raise OSError(28, "No space left on device")


@pytest.mark.parametrize("flush_ms", [0, 10_000])
async def test_a_log_that_cannot_be_written_never_fails_the_request(
    tmp_path: Path, flush_ms: int, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(tmp_path, log_format="json", access_log_flush_ms=flush_ms)
    app = create_app(settings, clock=FrozenClock())
    with served_config(settings):
        logging.getLogger().handlers[0].setStream(FailingStream())  # type: ignore[attr-defined]
        async with app.router.lifespan_context(app):
            h = bearer(app_token(app))
            async for c in _client(app):
                assert (
                    await c.post("/v1/sequences", json={"name": "inv"}, headers=h)
                ).status_code == 201
                r = await c.post("/v1/sequences/inv/next", headers=h)
                assert r.status_code == 200 and r.json()["value"] == 1
                r = await c.post("/v1/sequences/inv/next", headers=h)
                assert r.status_code == 200 and r.json()["value"] == 2
    # Reported as the logging module reports a handler's failure, on stderr.
    assert "--- Logging error ---" in capsys.readouterr().err
