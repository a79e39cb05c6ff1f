"""Real server processes for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

TALLY = Path(sys.executable).parent / "tally"
# The process behind each running server's URL (a test may kill one outright).
SERVERS: dict[str, subprocess.Popen[bytes]] = {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


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


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TALLY), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@contextmanager
def running_server(env: dict[str, str], *, workers: int = 1) -> Iterator[str]:
    """Start ``tally serve`` and wait until /readyz answers; SIGTERM it afterwards."""
    port = free_port()
    log = open(Path(env["TALLY_KEYS_DIR"]).parent / f"server-{port}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [str(TALLY), "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    SERVERS[url] = proc
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}: see {log.name}")
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not become ready in 30 s")
            time.sleep(0.1)
        yield url
    except BaseException:
        # Show the server's side of a failure in pytest's captured output (CI has no files).
        log.flush()
        tail = Path(log.name).read_text(errors="replace").splitlines()[-40:]
        print(f"--- last lines of {log.name} ---", *tail, sep="\n")
        raise
    finally:
        SERVERS.pop(url, None)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def e2e_env(tmp_path: Path) -> dict[str, str]:
    return server_env(tmp_path)
