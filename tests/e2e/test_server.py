"""A real ``tally serve`` process, real HTTP, a real SQLite file."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import (
    SERVERS,
    cli,
    free_port,
    in_lanes,
    running_server,
    two_free_ports,
)

pytestmark = pytest.mark.e2e


async def take(url: str, token: str, n: int) -> list[int]:
    """``n`` nexts of ``orders`` from the server at ``url``, 64 in flight at once."""
    headers = {"Authorization": f"Bearer {token}"}

    async def one(lane: httpx.AsyncClient, i: int) -> int:
        r = await lane.post("/v1/sequences/orders/next", headers=headers)
        assert r.status_code == 200, r.text
        value: int = r.json()["value"]
        return value

    return await in_lanes([url], n, one)


async def test_two_workers_2000_concurrent_then_restart_continues(
    e2e_env: dict[str, str],
) -> None:
    minted = cli(e2e_env, "token", "--tenant", "acme")
    assert minted.returncode == 0, minted.stderr
    token = minted.stdout.strip()
    assert token.count(".") == 2 and "\n" not in token

    with running_server(e2e_env, workers=2) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            r = await client.post(
                "/v1/sequences",
                json={"name": "orders"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert r.status_code == 201, r.text
            values = await take(url, token, 2000)
    assert sorted(values) == list(range(1, 2001)), "duplicates or gaps across two workers"

    with running_server(e2e_env, workers=1) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            after = await take(url, token, 1)
            r = await client.get("/getCounter", headers={"Authorization": f"Bearer {token}"})
            usage = await client.get(
                "/v1/usage",
                params={"sequence": "orders"},
                headers={"Authorization": f"Bearer {token}"},
            )
    assert after == [2001]
    assert r.status_code == 200 and r.text == "1"
    # Both workers of the first server flushed their counts when they were stopped.
    assert usage.status_code == 200, usage.text
    assert (usage.json()["requests"], usage.json()["numbers"]) == (2001, 2001)


def test_bad_setting_stops_startup_with_one_line(e2e_env: dict[str, str]) -> None:
    env = {**e2e_env, "TALLY_STORE_URL": "postgres://nope"}
    result = cli(env, "serve", "--port", "1")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "TALLY_STORE_URL" in lines[0] and "Traceback" not in result.stderr
    assert "postgres://nope" not in result.stderr  # the URL may hold a password


def test_token_command_prints_only_a_token(e2e_env: dict[str, str]) -> None:
    result = cli(e2e_env, "token", "--tenant", "acme", "--scope", "sequences:read", "--ttl", "60")
    assert result.returncode == 0
    assert result.stdout.count("\n") == 1 and result.stdout.strip().count(".") == 2
    bad = cli(e2e_env, "token", "--tenant", "acme", "--scope", "root")
    assert bad.returncode != 0 and "unknown scope" in bad.stderr


async def test_json_logs_of_a_real_server_hold_request_ids_and_no_secrets(
    e2e_env: dict[str, str],
) -> None:
    import json
    from pathlib import Path

    secret = "s3cr3t-in-the-query-string"
    token = cli(e2e_env, "token", "--tenant", "acme").stdout.strip()
    env = {**e2e_env, "TALLY_LOG_FORMAT": "json"}
    with running_server(env) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            r = await client.post(
                f"/oauth/token?client_id=acme.0&client_secret={secret}",
                data={"grant_type": "client_credentials"},
            )
            assert r.status_code == 400 and secret not in r.text
            h = {"Authorization": f"Bearer {token}", "X-Request-ID": "e2e-next-1"}
            assert (await client.post("/v1/sequences", json={"name": "o"}, headers=h)).is_success
            taken = await client.post(f"/v1/sequences/o/next?t={token}", headers=h)
            assert taken.status_code == 200 and taken.headers["x-request-id"] == "e2e-next-1"
            probe = await client.get("/healthz?probe=1")
    text = "".join(
        p.read_text() for p in Path(e2e_env["TALLY_KEYS_DIR"]).parent.glob("server-*.log")
    )
    lines = [json.loads(line) for line in text.splitlines()]  # every line is one JSON object
    assert all({"time", "level", "logger", "message", "request_id"} <= set(x) for x in lines)
    access = [x for x in lines if x["logger"] == "tally.access"]
    nxt = [x for x in access if x["route"] == "/v1/sequences/{name}/next"]
    assert len(nxt) == 1 and nxt[0]["request_id"] == "e2e-next-1"
    assert (nxt[0]["status"], nxt[0]["numbers"], nxt[0]["tenant"]) == (200, 1, "acme")
    assert any(x["request_id"] == probe.headers["x-request-id"] for x in access)
    assert not [x for x in lines if x["logger"] == "granian.access"]  # AccessLog writes those
    assert secret not in text and "probe=1" not in text and token not in text


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"TALLY_KEYS_DIR": "/etc/passwd"}, "TALLY_KEYS_DIR"),
        ({"TALLY_STORE_URL": "sqlite:////proc/no-such-dir/tally.db"}, "TALLY_STORE_URL"),
        (
            {
                "TALLY_STORE_URL": "mongodb://user:hunter2@127.0.0.1:1/?directConnection=true",
                "TALLY_MONGO_TIMEOUT_MS": "300",
            },
            "TALLY_STORE_URL",
        ),
    ],
    ids=["keys-dir-is-a-file", "sqlite-dir-unwritable", "mongodb-unreachable"],
)
def test_an_unusable_keys_dir_or_store_stops_serve_with_one_line(
    e2e_env: dict[str, str], overrides: dict[str, str], names: str
) -> None:
    result = cli({**e2e_env, **overrides}, "serve", "--port", "1")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and names in lines[0], result.stderr
    assert "Traceback" not in result.stderr and "hunter2" not in result.stderr


def test_metrics_are_served_on_their_own_port_not_the_api_port(e2e_env: dict[str, str]) -> None:
    token = cli(e2e_env, "token", "--tenant", "acme").stdout.strip()
    metrics_port = free_port()
    env = {**e2e_env, "TALLY_METRICS_PORT": str(metrics_port)}
    with running_server(env) as url:
        h = {"Authorization": f"Bearer {token}"}
        assert httpx.post(f"{url}/v1/sequences/default/next", headers=h).status_code == 404
        assert httpx.get(f"{url}/getCounter", headers=h).text == "1"
        assert httpx.get(f"{url}/metrics").status_code == 404  # not on the API's port
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
    assert scraped.status_code == 200
    text = scraped.text
    assert 'route="/v1/sequences/{name}/next",status="404"' in text
    assert 'route="/getCounter",status="200"' in text
    assert 'tally_numbers_issued_total{mode="strict"} 1.0' in text
    assert token not in text


def values_of(text: str, name: str, **labels: str) -> list[float]:
    """The values of a scrape's samples called ``name`` with exactly ``labels``."""
    return [
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and s.labels == labels
    ]


def test_each_worker_exports_its_metrics_on_a_port_of_its_own(e2e_env: dict[str, str]) -> None:
    # With one metrics port, only the worker that bound it first was scraped: the
    # others' requests and numbers were invisible to Prometheus.
    token = cli(e2e_env, "token", "--tenant", "acme").stdout.strip()
    first = two_free_ports()
    env = {**e2e_env, "TALLY_METRICS_PORT": str(first)}
    scrapes = [f"http://127.0.0.1:{port}/metrics" for port in (first, first + 1)]
    with running_server(env, workers=2) as url:
        h = {"Authorization": f"Bearer {token}"}
        # A connection each: the kernel spreads them over both workers' sockets.
        values = [int(httpx.get(f"{url}/getCounter", headers=h).text) for _ in range(40)]
        assert sorted(values) == list(range(1, 41))
        deadline = time.monotonic() + 20
        while True:  # a worker counts a request with its access line, up to 50 ms later
            texts = scrape_all(scrapes, deadline)
            answered = sum(
                v
                for t in texts
                for v in values_of(
                    t,
                    "tally_http_request_duration_seconds_count",
                    method="GET",
                    route="/getCounter",
                    status="200",
                )
            )
            if answered == 40:
                break
            assert time.monotonic() < deadline, f"scrapes never added up to 40: {texts}"
            time.sleep(0.2)
    issued = [v for t in texts for v in values_of(t, "tally_numbers_issued_total", mode="strict")]
    assert len(issued) == 2 and sum(issued) == 40


def workers_of(supervisor: int) -> list[int]:
    """The pids of granian's worker processes (spawned interpreters) under ``supervisor``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if ppid == supervisor and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


def scrape_all(urls: list[str], deadline: float) -> list[str]:
    """Every url's scrape, retried until each answers or ``deadline`` passes."""
    while True:
        try:
            return [httpx.get(u, timeout=5).text for u in urls]
        except httpx.TransportError:
            assert time.monotonic() < deadline, f"not every metrics port answered: {urls}"
            time.sleep(0.2)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_a_worker_started_again_after_a_crash_exports_on_the_port_it_left(
    e2e_env: dict[str, str],
) -> None:
    first = two_free_ports()
    env = {**e2e_env, "TALLY_METRICS_PORT": str(first)}
    scrapes = [f"http://127.0.0.1:{port}/metrics" for port in (first, first + 1)]
    with running_server(env, workers=2) as url:
        scrape_all(scrapes, time.monotonic() + 30)
        supervisor = SERVERS[url].pid
        workers = workers_of(supervisor)
        assert len(workers) == 2, workers
        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while workers[0] in workers_of(supervisor) or len(workers_of(supervisor)) < 2:
            assert time.monotonic() < deadline, "granian did not start the worker again"
            time.sleep(0.2)
        # Both ports answer again: the new worker took the one its predecessor left.
        texts = scrape_all(scrapes, time.monotonic() + 30)
        assert all("tally_numbers_issued_total" in t for t in texts)
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
