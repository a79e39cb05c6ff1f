"""Processes the bench starts: Tally (and the yardsticks) as shipped, and Redis.

Tally and the two yardstick apps are served by ``tally serve`` itself (``--app``
names the yardstick's factory), so every HTTP row runs on the same server (granian,
``api.server``), options and logging as the image and the Helm chart.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent


@dataclass(frozen=True, slots=True)
class Placement:
    """The CPUs a one-worker server and the load generators run on (empty: any).

    A pod of the chart has one core (its CPU limit), and its clients run elsewhere.
    wrk on the server's own cores would take CPU from the very process it measures, so
    the bench gives each one-worker server one CPU and the load generators the others
    (``taskset``). Rows with more workers than that need the cores the load runs on:
    they share them all, as ``--share-cpus`` makes every row do.
    """

    server: tuple[int, ...] = ()
    load: tuple[int, ...] = ()

    def describe(self) -> str:
        if not self.server:
            return "servers, wrk and redis-benchmark sharing the machine's cores"
        return (
            f"each one-worker server on CPU {_cpus(self.server)} (one core, as the chart's"
            f" CPU limit gives a pod), wrk and redis-benchmark on CPU {_cpus(self.load)};"
            " rows with more workers share all of them"
        )


def placement(cpus: Collection[int], *, share: bool, taskset: bool) -> Placement:
    """One CPU of ``cpus`` for the server, the rest for the load, when there are two
    or more, ``taskset`` exists and the caller does not ``share``."""
    ordered = sorted(cpus)
    if share or not taskset or len(ordered) < 2:
        return Placement()
    return Placement(server=(ordered[0],), load=tuple(ordered[1:]))


def this_machine(*, share: bool) -> Placement:
    """``placement`` of the CPUs this process may run on (none known off Linux)."""
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    return placement(cpus, share=share, taskset=bool(shutil.which("taskset")))


def on_cpus(cmd: list[str], cpus: Collection[int]) -> list[str]:
    """``cmd`` bound to ``cpus`` (and so are the processes it starts); as it is if empty."""
    return ["taskset", "--cpu-list", _cpus(cpus), *cmd] if cpus else cmd


def _cpus(cpus: Collection[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def http_command(app: str, port: int, workers: int, *, rsgi: bool = False) -> list[str]:
    cmd = [str(BIN / "tally"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", str(workers)]
    if app != "api.app:create_app":
        cmd += ["--app", app]
    if rsgi:
        cmd += ["--interface", "rsgi"]
    return cmd


@contextmanager
def running(cmd: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A process whose output goes to ``log`` (as a container's to its runtime), stopped
    with SIGTERM (SIGKILL after 20 s) however the block ends."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, cwd=env.get("PYTHONPATH"), stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a graceful shutdown, as Kubernetes does), SIGKILL after 20 s."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_http(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"server exited with {proc.returncode}:\n{tail}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server did not answer {url} in 60 s")


def redis_command(port: int, workdir: Path) -> list[str]:
    """Durable like Tally strict: every write fsync'ed before it is acknowledged."""
    return [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(workdir),
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
    ]


def wait_redis(proc: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode}")
        out = subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "-p", str(port), "config", "get", "appendfsync"],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ},
        )
        if out.returncode == 0 and "always" in out.stdout:
            return
        time.sleep(0.1)
    raise RuntimeError("redis-server did not come up with appendfsync always in 30 s")
