"""``tally serve`` on an address it cannot listen on: one line and an exit, no panic."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from bench.servers import free_port, stop
from tests.e2e.conftest import TALLY, running_server
from tests.tools import missing, require_tool

pytestmark = pytest.mark.e2e


def serve(
    env: dict[str, str], *args: str, under: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    """``tally serve`` that must give up by itself: a server that starts fails the test."""
    return subprocess.run(
        [*under, str(TALLY), "serve", *args], env=env, capture_output=True, text=True, timeout=30
    )


def assert_one_line(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("tally: ") and all(n in lines[0] for n in needles), lines[0]
    for noise in ("Traceback", "panicked", "backtrace"):
        assert noise not in result.stderr + result.stdout


@contextmanager
def listening(**options: int) -> Iterator[int]:
    """Another process's listener on 127.0.0.1 (socket options as ``SO_NAME=value``)."""
    with socket.socket() as other:
        for name, value in options.items():
            other.setsockopt(socket.SOL_SOCKET, getattr(socket, name), value)
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


@pytest.mark.parametrize("options", [{}, {"SO_REUSEPORT": 1}], ids=["plain", "reuseport"])
def test_a_port_another_process_listens_on_stops_serve_with_one_line(
    e2e_env: dict[str, str], options: dict[str, int]
) -> None:
    # SO_REUSEPORT is what granian sets: without the check a second server shared the port.
    with listening(**options) as port:
        result = serve(e2e_env, "--port", str(port))
    assert_one_line(result, f"127.0.0.1:{port}", "Address already in use", "--port")


def test_a_second_server_on_a_running_servers_port_stops_with_one_line(
    e2e_env: dict[str, str],
) -> None:
    with running_server(e2e_env) as url:
        port = url.rsplit(":", 1)[1]
        result = serve(e2e_env, "--port", port, "--workers", "2")
        assert httpx.get(f"{url}/readyz").status_code == 200  # the first one serves on
    assert_one_line(result, f"127.0.0.1:{port}", "Address already in use")


@pytest.mark.parametrize(
    ("host", "needles"),
    [
        ("203.0.113.9", ["203.0.113.9:", "Cannot assign requested address", "--host"]),
        ("localhost", ["--host must be an IP address", "'localhost'"]),
    ],
    ids=["not-this-machines-address", "a-name"],
)
def test_an_address_that_cannot_be_bound_stops_serve_with_one_line(
    e2e_env: dict[str, str], host: str, needles: list[str]
) -> None:
    assert_one_line(serve(e2e_env, "--host", host, "--port", str(free_port())), *needles)


def test_a_privileged_port_without_the_right_stops_serve_with_one_line(
    e2e_env: dict[str, str],
) -> None:
    port = 81
    floor = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")
    if not floor.exists() or port >= int(floor.read_text()):
        pytest.skip(f"port {port} is not privileged here ({floor})")
    under: list[str] = []
    if os.geteuid() == 0:  # root may bind it: drop the capability that lets it
        setpriv = require_tool("setpriv", hint="util-linux")
        under = [setpriv, "--bounding-set=-net_bind_service", "--inh-caps=-net_bind_service"]
        if subprocess.run([*under, "true"], capture_output=True, check=False).returncode:
            missing("setpriv cannot drop CAP_NET_BIND_SERVICE here (no CAP_SETPCAP)")
    result = serve(e2e_env, "--port", str(port), under=under)
    assert_one_line(result, f"127.0.0.1:{port}", "Permission denied", "CAP_NET_BIND_SERVICE")


def port_in_time_wait() -> int:
    """A port a server just stopped on: the server side of its last connection closed
    first, so that connection waits in TIME_WAIT (restarting ``tally serve`` at once)."""
    with socket.socket() as listener:
        # As granian's listener: only then may a new SO_REUSEADDR bind share the port.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port: int = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = listener.accept()
            accepted.close()
            assert client.recv(1) == b""  # the server side's FIN: it is in TIME_WAIT now
    return port


def test_a_port_left_in_time_wait_by_a_stopped_server_serves(
    e2e_env: dict[str, str], tmp_path: Path
) -> None:
    port = port_in_time_wait()
    with socket.socket() as plain, pytest.raises(OSError) as refused:
        plain.bind(("127.0.0.1", port))  # without SO_REUSEADDR it is still taken
    assert refused.value.errno == errno.EADDRINUSE
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(TALLY), "serve", "--port", str(port)],
            env=e2e_env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (
                f"no answer on a port in TIME_WAIT:\n{log.read_text()}"
            )
            time.sleep(0.1)
    finally:
        stop(proc)
