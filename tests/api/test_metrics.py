"""Prometheus metrics: on their own port, labelled by route template, no secrets."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from api.metrics import WORKERS
from core.clock import FrozenClock
from core.settings import Settings
from tenants.schemas import TenantCreate
from tests.conftest import app_token, bearer
from tests.e2e.conftest import free_port, two_free_ports


def with_metrics(settings: Settings, port: int) -> Settings:
    return settings.model_copy(update={"metrics_port": port})


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, str]]:
    port = free_port()
    app = create_app(with_metrics(settings, port), clock=FrozenClock())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield app, client, f"http://127.0.0.1:{port}/metrics"


async def scrape(url: str) -> tuple[str, dict[tuple[str, frozenset[tuple[str, str]]], float]]:
    r = await asyncio.to_thread(httpx.get, url, timeout=5)
    assert r.status_code == 200
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }
    return r.text, samples


def http_count(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], **labels: str
) -> float:
    key = ("tally_http_request_duration_seconds_count", frozenset(labels.items()))
    return samples.get(key, 0)


async def test_requests_and_numbers_are_counted_by_route_template_and_status(
    served: tuple[FastAPI, httpx.AsyncClient, str],
) -> None:
    app, client, url = served
    token = app_token(app)
    h = bearer(token)
    assert (
        await client.post("/v1/sequences", json={"name": "inv", "max": 5}, headers=h)
    ).status_code == 201
    for count in (1, 2, 2):
        r = await client.post("/v1/sequences/inv/next", json={"count": count}, headers=h)
        assert r.status_code == 200
    assert (await client.post("/v1/sequences/inv/next", headers=h)).status_code == 409
    assert (await client.get("/v1/sequences/inv", headers=h)).status_code == 200
    assert (await client.get("/wp-admin/secret-probe")).status_code == 404
    assert (await client.post("/v1/sequences/inv/next", headers=bearer("x.y.z"))).status_code == 401
    assert (await client.request("PROPFIND", "/v1/sequences", headers=h)).status_code == 405

    text, samples = await scrape(url)
    nxt = "/v1/sequences/{name}/next"
    assert http_count(samples, method="POST", route=nxt, status="200") == 3
    assert http_count(samples, method="POST", route=nxt, status="409") == 1
    assert http_count(samples, method="POST", route=nxt, status="401") == 1
    assert http_count(samples, method="POST", route="/v1/sequences", status="201") == 1
    assert http_count(samples, method="GET", route="/v1/sequences/{name}", status="200") == 1
    assert http_count(samples, method="GET", route="unmatched", status="404") == 1
    assert http_count(samples, method="other", route="/v1/sequences", status="405") == 1
    assert samples[("tally_next_requests_total", frozenset())] == 3
    assert samples[("tally_numbers_issued_total", frozenset({("mode", "strict")}))] == 5
    assert samples[("tally_numbers_issued_total", frozenset({("mode", "cached")}))] == 0
    assert samples[("tally_token_verifications_total", frozenset({("result", "verified")}))] == 1
    assert samples[("tally_token_verifications_total", frozenset({("result", "cache_hit")}))] == 5
    assert samples[("tally_token_verifications_total", frozenset({("result", "rejected")}))] == 1
    assert samples[("tally_store_increment_seconds_count", frozenset())] >= 3
    assert samples[("tally_store_increment_seconds_sum", frozenset())] > 0
    # Raw paths and credentials never become labels or values.
    assert "wp-admin" not in text and token not in text and "inv" not in text
    assert "PROPFIND" not in text  # unknown methods do not become label values


async def test_the_bench_reads_group_commits_from_every_workers_scrape(
    served: tuple[FastAPI, httpx.AsyncClient, str],
) -> None:
    from bench.run import group_commits

    app, client, url = served
    h = bearer(app_token(app))
    assert (await client.post("/v1/sequences", json={"name": "inv"}, headers=h)).status_code == 201
    for _ in range(3):  # one after another: a group commit each
        assert (await client.post("/v1/sequences/inv/next", headers=h)).status_code == 200
    text, samples = await scrape(url)
    one = group_commits([text])
    assert one.commits == samples[("tally_store_group_commit_seconds_count", frozenset())] >= 3
    assert one.increments == samples[("tally_store_group_commit_increments_total", frozenset())]
    assert one.seconds == samples[("tally_store_group_commit_seconds_sum", frozenset())] > 0
    two = group_commits([text, text])  # two workers' scrapes add up
    assert (two.commits, two.increments) == (2 * one.commits, 2 * one.increments)
    assert two.seconds == 2 * one.seconds


async def test_metrics_are_off_unless_a_port_is_set(app: FastAPI) -> None:
    assert app.build_middleware_stack().observe is None  # type: ignore[attr-defined]


async def test_a_taken_metrics_port_is_a_warning_not_an_outage(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = create_app(with_metrics(settings, port))
        with caplog.at_level(logging.WARNING, logger="tally"):
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                    assert (await c.get("/healthz")).status_code == 200
    assert f"metrics port {port} unavailable" in caplog.text


async def test_with_workers_a_taken_metrics_port_passes_to_the_next_one(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    port = two_free_ports()
    monkeypatch.setenv(WORKERS, "2")  # as `tally serve --workers 2` sets it for each worker
    with socket.socket() as taken:  # the port another worker took first
        taken.bind(("127.0.0.1", port))
        taken.listen()
        app = create_app(with_metrics(settings, port))
        with caplog.at_level(logging.INFO, logger="tally"):
            async with app.router.lifespan_context(app):
                _text, samples = await scrape(f"http://127.0.0.1:{port + 1}/metrics")
                assert ("tally_cached_leases", frozenset()) in samples
                # Two workers, two ports: a third app finds both taken.
                third = create_app(with_metrics(settings, port))
                async with third.router.lifespan_context(third):
                    pass
    assert f"on port {port + 1}" in caplog.text
    assert f"metrics port {port}-{port + 1} unavailable" in caplog.text


def test_metrics_port_is_validated() -> None:
    with pytest.raises(ValueError, match="metrics_port"):
        Settings(metrics_port=70000, _env_file=None)  # type: ignore[call-arg]


async def test_numbers_by_mode_and_sequences_near_exhaustion_are_exported(
    served: tuple[FastAPI, httpx.AsyncClient, str],
) -> None:
    app, client, url = served
    h = bearer(app_token(app))
    for body in (
        {"name": "low", "max": 100},
        {"name": "wraps", "max": 10, "cycle": True},
        {"name": "fast", "mode": "cached"},
    ):
        assert (await client.post("/v1/sequences", json=body, headers=h)).status_code == 201
    for name, count in (("low", 96), ("wraps", 10), ("fast", 4)):
        r = await client.post(f"/v1/sequences/{name}/next", json={"count": count}, headers=h)
        assert r.status_code == 200, r.text
    _, before = await scrape(url)
    # Until acme is registered the scans (one ran at start-up) see no tenant at all.
    assert before.get(("tally_sequences_near_exhaustion", frozenset()), 0) == 0
    await app.state.tenants.create(TenantCreate(slug="acme", name="Acme"))
    await app.state.headroom.scan()
    _, samples = await scrape(url)
    assert samples[("tally_numbers_issued_total", frozenset({("mode", "strict")}))] == 106
    assert samples[("tally_numbers_issued_total", frozenset({("mode", "cached")}))] == 4
    # "wraps" has no headroom left either, but it cycles: it never answers 409.
    assert samples[("tally_sequences_near_exhaustion", frozenset())] == 1
    assert samples[("tally_sequence_headroom_min_percent", frozenset())] == 0.0
    assert ("process_cpu_seconds_total", frozenset()) in samples


def test_the_request_histogram_exposes_what_prometheus_clients_histogram_would() -> None:
    # The same series, counts and sums as the library's own Histogram for the same
    # observations: values on a bound count in that bound's bucket (le), values past
    # the last bound only in +Inf, each label set its own series.
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from api.metrics import _BUCKETS, RequestHistogram

    ours, reference = CollectorRegistry(), CollectorRegistry()
    mine = RequestHistogram()
    ours.register(mine)
    theirs = Histogram(
        RequestHistogram.NAME,
        "reference",
        ["method", "route", "status"],
        buckets=_BUCKETS,
        registry=reference,
    )
    observations = [
        ("POST", "/v1/sequences/{name}/next", 200, s)
        for s in (0.0, 0.0004, 0.001, 0.0010001, 0.0025, 0.03, 1.0, 5.0, 5.0001, 60.0)
    ] + [("GET", "unmatched", 404, 0.002), ("POST", "/v1/sequences/{name}/next", 409, 0.1)]
    for method, route, status, seconds in observations:
        mine.observe(method, route, status, seconds)
        theirs.labels(method, route, str(status)).observe(seconds)

    def samples(registry: CollectorRegistry) -> dict[tuple[str, frozenset[Any]], float]:
        text = generate_latest(registry).decode()
        return {
            (s.name, frozenset(s.labels.items())): round(s.value, 9)
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if not s.name.endswith("_created")
        }

    got, want = samples(ours), samples(reference)
    assert got == want
    assert len(got) == 3 * (len(_BUCKETS) + 3)  # 3 series: buckets, +Inf, count, sum


async def test_in_production_observations_are_settled_with_the_access_lines(
    settings: Settings,
) -> None:
    # TALLY_ACCESS_LOG_FLUSH_MS: a request's observation waits with its access line
    # (api.access.AccessLog), and is scraped once its batch is settled.
    port = free_port()
    app = create_app(
        with_metrics(settings, port).model_copy(update={"access_log_flush_ms": 10_000}),
        clock=FrozenClock(),
    )
    url = f"http://127.0.0.1:{port}/metrics"
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        for _ in range(3):
            assert (await client.get("/healthz")).status_code == 200
        _, samples = await scrape(url)
        assert http_count(samples, method="GET", route="/healthz", status="200") == 0
        app.middleware_stack.settle()  # what the timer (or a 5xx) does
        _, samples = await scrape(url)
        assert http_count(samples, method="GET", route="/healthz", status="200") == 3
