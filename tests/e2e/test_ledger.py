"""Ledger sequences with real server processes: docs/ledger.md's invoice session as written,
and the gap report's invariant through three SIGKILLs under load."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import random
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import SERVERS, TALLY, cli, running_server

pytestmark = pytest.mark.e2e
LEDGER_DOC = Path(__file__).resolve().parents[2] / "docs" / "ledger.md"


def ledger_session() -> str:
    match = re.search(
        r"<!-- ledger-session:start -->\s*```sh\n(.*?)```\s*<!-- ledger-session:end -->",
        LEDGER_DOC.read_text(),
        re.S,
    )
    assert match, "docs/ledger.md lost its ledger session block"
    return match.group(1)


def test_readme_invoice_session_works_as_written(e2e_env: dict[str, str]) -> None:
    with running_server(e2e_env) as url:
        script = ledger_session().replace("http://127.0.0.1:8080", url)
        script = script.replace(".venv/bin/tally", str(TALLY))
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            env=e2e_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    out, objects, pos = result.stdout, [], 0
    decoder = json.JSONDecoder()
    while True:
        while pos < len(out) and out[pos].isspace():
            pos += 1
        if pos >= len(out) or out[pos] != "{":
            break
        obj, pos = decoder.raw_decode(out, pos)
        objects.append(obj)
    created, reserved, voided, committed, gaps = objects
    assert created["ledger"] is True
    assert (reserved["state"], reserved["value"]) == ("reserved", 1)
    assert re.fullmatch(r"F\d{4}-00001", reserved["formatted"])
    assert (voided["state"], voided["value"], voided["reason"]) == (
        "voided",
        2,
        "customer cancelled",
    )
    assert (committed["state"], committed["reference"]) == ("committed", "invoice 2026-0042")
    assert {k: gaps[k] for k in ("issued", "committed", "voided", "unaccounted")} == {
        "issued": 2,
        "committed": 1,
        "voided": 1,
        "unaccounted": 0,
    }
    rows = list(csv.DictReader(io.StringIO(out[pos:])))
    assert [(r["value"], r["state"]) for r in rows] == [("1", "committed"), ("2", "voided")]


async def worker(
    client: httpx.AsyncClient, headers: dict[str, str], seen: dict[int, str], rng: random.Random
) -> None:
    """Mixed invoice traffic until the server dies: issue, reserve, commit, void, abandon."""
    api = "/v1/sequences/inv"
    while True:
        try:
            if rng.random() < 0.5:
                r = await client.post(f"{api}/next", json={"reference": "direct"}, headers=headers)
                assert r.status_code == 200, r.text
                seen[r.json()["value"]] = "committed"
                continue
            r = await client.post(f"{api}/reservations", json={"ttl_seconds": 1}, headers=headers)
            assert r.status_code == 201, r.text
            held = r.json()
            seen[held["value"]] = "reserved"
            path = f"{api}/reservations/{held['id']}"
            roll = rng.random()
            if roll < 0.4:
                c = await client.post(f"{path}/commit", json={}, headers=headers)
                assert c.status_code in (200, 409), c.text  # 409: it expired first
                seen[held["value"]] = c.json().get("state", "expired")
            elif roll < 0.7:
                v = await client.post(f"{path}/void", json={"reason": "cancelled"}, headers=headers)
                assert v.status_code in (200, 409), v.text
                seen[held["value"]] = v.json().get("state", "expired")
            # else: abandoned, it expires
        except httpx.TransportError:
            return  # the server is gone


async def one_life(url: str, headers: dict[str, str], seen: dict[int, str], target: int) -> None:
    """Load until ``target`` more numbers were answered, then SIGKILL the server."""
    start = len(seen)
    rng = random.Random(len(seen))
    async with httpx.AsyncClient(base_url=url, timeout=15) as client:
        tasks = [asyncio.create_task(worker(client, headers, seen, rng)) for _ in range(12)]
        deadline = asyncio.get_running_loop().time() + 90
        while len(seen) < start + target:
            broken = [t for t in tasks if t.done()]
            if broken:
                broken[0].result()  # a wrong answer while the server was up: show it
            assert asyncio.get_running_loop().time() < deadline, "load never got going"
            await asyncio.sleep(0.02)
        SERVERS[url].send_signal(signal.SIGKILL)
        done, pending = await asyncio.wait(tasks, timeout=30)
        assert not pending, "clients did not notice the crash"
        for task in done:
            with contextlib.suppress(httpx.TransportError):
                task.result()


async def test_three_sigkills_under_load_leave_no_number_unaccounted(
    e2e_env: dict[str, str],
) -> None:
    token = cli(e2e_env, "token", "--tenant", "acme").stdout.strip()
    headers = {"Authorization": f"Bearer {token}"}
    seen: dict[int, str] = {}  # value -> the last state a client was told
    for life in range(3):
        with running_server(e2e_env) as url:
            if life == 0:
                body = {"name": "inv", "ledger": True, "format": "INV-{n:06}"}
                r = httpx.post(f"{url}/v1/sequences", json=body, headers=headers)
                assert r.status_code == 201, r.text
            await one_life(url, headers, seen, target=150)

    with running_server(e2e_env) as url:
        report: dict[str, Any] = httpx.get(
            f"{url}/v1/sequences/inv/gaps", headers=headers, timeout=30
        ).json()
        last = httpx.get(f"{url}/v1/sequences/inv", headers=headers).json()["last"]
        entries: list[dict[str, Any]] = []
        after: int | None = None
        while True:
            params: dict[str, Any] = {"limit": 500, **({"after": after} if after else {})}
            page = httpx.get(f"{url}/v1/sequences/inv/ledger", params=params, headers=headers)
            entries += page.json()["items"]
            after = page.json()["next_cursor"]
            if after is None:
                break
    assert report["unaccounted"] == 0
    assert report["issued"] == last  # start 1, step 1: the counter's last number
    states = ("committed", "voided", "expired", "reserved")
    assert report["issued"] == sum(report[s] for s in states)
    assert [e["value"] for e in entries] == list(range(1, last + 1))  # one entry each
    by_value = {e["value"]: e["state"] for e in entries}
    for value, told in seen.items():
        # What a client was told stands (a reservation it was told about may have
        # expired since, or been closed by a request whose answer the crash swallowed).
        if told in ("committed", "voided"):
            assert by_value[value] == told, (value, told, by_value[value])
        else:
            assert by_value[value] in states
    assert len(seen) >= 450


def test_a_replay_after_a_real_restart_answers_the_first_response(
    e2e_env: dict[str, str],
) -> None:
    token = cli(e2e_env, "token", "--tenant", "acme").stdout.strip()
    auth = {"Authorization": f"Bearer {token}"}
    h = {**auth, "Idempotency-Key": "order-1042"}
    with running_server(e2e_env) as url:
        r = httpx.post(f"{url}/v1/sequences", json={"name": "inv"}, headers=auth)
        assert r.status_code == 201
        first = httpx.post(f"{url}/v1/sequences/inv/next", json={"count": 2}, headers=h)
        assert first.status_code == 200
    with running_server(e2e_env) as url:  # another process, after a clean stop
        again = httpx.post(f"{url}/v1/sequences/inv/next", json={"count": 2}, headers=h)
        created = httpx.post(f"{url}/v1/sequences", json={"name": "inv"}, headers=h)
        peek = httpx.get(f"{url}/v1/sequences/inv", headers=h).json()
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert created.status_code == 422  # the key now stands for the first next, not this
    assert peek["next"] == 3
