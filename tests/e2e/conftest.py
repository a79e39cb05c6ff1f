"""Real server processes for end-to-end tests."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import IO, TypeVar, cast

import httpx
import pytest

from bench.servers import free_port, stop

TALLY = Path(sys.executable).parent / "tally"
# The process behind each running server's URL (a test may kill one outright).
SERVERS: dict[str, subprocess.Popen[bytes]] = {}
T = TypeVar("T")
# Concurrent load goes through lanes: one client per request in flight, each with one
# connection. httpcore's pool walks its connections once per connection on every request
# (O(connections²)), so 1,000 nexts through one client of 100 connections took the test
# itself 15 to 30 s of CPU; through 64 lanes, about one second. A new client loads the CA
# bundle (about 27 ms) unless it is given a context, so the lanes share this one.
_TLS = ssl.create_default_context()


@asynccontextmanager
async def open_lanes(
    urls: Sequence[str], lanes: int, *, timeout: float = 60
) -> AsyncIterator[list[httpx.AsyncClient]]:
    """``lanes`` clients of one connection each, lane ``j`` to ``urls[j % len(urls)]``."""
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=urls[j % len(urls)],
                    timeout=timeout,
                    limits=httpx.Limits(max_connections=1),
                    verify=_TLS,
                )
            )
            for j in range(lanes)
        ]


async def in_lanes(
    urls: Sequence[str],
    calls: int,
    call: Callable[[httpx.AsyncClient, int], Awaitable[T]],
    *,
    lanes: int = 64,
    timeout: float = 60,
) -> list[T]:
    """``call(client, i)`` for every ``i < calls``, ``lanes`` of them in flight at once.

    Lane ``j`` makes calls ``j``, ``j + lanes``, … one after another, to
    ``urls[j % len(urls)]``; the results come back in ``i`` order.
    """
    lanes = min(lanes, calls)
    results: list[T | None] = [None] * calls

    async def run(j: int, client: httpx.AsyncClient) -> None:
        for i in range(j, calls, lanes):
            results[i] = await call(client, i)

    async with open_lanes(urls, lanes, timeout=timeout) as clients:
        await asyncio.gather(*(run(j, c) for j, c in enumerate(clients)))
    return cast(list[T], results)  # every slot is filled by now


def server_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")}
    env.update(
        TALLY_STORE_URL=f"sqlite:///{tmp_path}/tally.db",
        TALLY_KEYS_DIR=str(tmp_path / "keys"),
        TALLY_JWT_ISSUER="https://tally.e2e",
        TALLY_JWT_AUDIENCE="tally-e2e",
        **extra,
    )
    return env


def two_free_ports() -> int:
    """A port that is free with the one after it."""
    for _ in range(50):
        port = free_port()
        if port < 65535:
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port
    raise AssertionError("no two adjacent free ports")


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TALLY), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


# A port free_port() found can be taken before the server binds it: by another xdist
# worker's server, or as the local end of a client connection (a load test elsewhere). The
# server then exits at once saying so, and starts again on another port.
ADDRESS_IN_USE = "Address already in use"
START_ATTEMPTS = 5


def _start(env: dict[str, str], workers: int) -> tuple[str, subprocess.Popen[bytes], IO[str]]:
    """A started ``tally serve`` on a free port: its URL, process and log file."""
    for attempt in range(1, START_ATTEMPTS + 1):
        port = free_port()
        log = open(Path(env["TALLY_KEYS_DIR"]).parent / f"server-{port}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(
            [str(TALLY), "serve", "--port", str(port), "--workers", str(workers)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            if _ready(url, proc, log, retry=attempt < START_ATTEMPTS):
                return url, proc, log
        except ServerFailed:
            stop(proc)
            raise
        except BaseException:
            stop(proc)
            log.close()
            raise
    raise AssertionError("unreachable: the last attempt returns or raises")


def _ready(url: str, proc: subprocess.Popen[bytes], log: IO[str], *, retry: bool) -> bool:
    """Wait until the server answers /readyz: True; False if its port was taken."""
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            log.close()
            if retry and ADDRESS_IN_USE in Path(log.name).read_text(errors="replace"):
                return False  # somebody took the port first: another one
            raise ServerFailed(f"server exited with {proc.returncode}: see {log.name}", log)
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise ServerFailed("server did not become ready in 30 s", log)
        time.sleep(0.1)


class ServerFailed(RuntimeError):
    def __init__(self, message: str, log: IO[str]) -> None:
        super().__init__(message)
        self.log = log


def _print_tail(log: IO[str]) -> None:
    """Show the server's side of a failure in pytest's captured output (CI has no files)."""
    if not log.closed:
        log.flush()
    tail = Path(log.name).read_text(errors="replace").splitlines()[-40:]
    print(f"--- last lines of {log.name} ---", *tail, sep="\n")


@contextmanager
def running_server(env: dict[str, str], *, workers: int = 1) -> Iterator[str]:
    """Start ``tally serve`` and wait until /readyz answers; SIGTERM it afterwards."""
    try:
        url, proc, log = _start(env, workers)
    except ServerFailed as failed:
        _print_tail(failed.log)
        failed.log.close()
        raise
    SERVERS[url] = proc
    try:
        yield url
    except BaseException:
        _print_tail(log)
        raise
    finally:
        SERVERS.pop(url, None)
        stop(proc)
        log.close()


@pytest.fixture
def e2e_env(tmp_path: Path) -> dict[str, str]:
    return server_env(tmp_path)
