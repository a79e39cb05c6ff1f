"""The edge of a real ``tally serve`` process against hostile clients (raw sockets).

Each test is a row of issue 15's table: what a client did to the server before, and
what the server must do now. The deadlines are set short here so the tests are quick;
the defaults are in core/settings.py and the README.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import SERVERS, running_server, server_env

pytestmark = pytest.mark.e2e

HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 1.5


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("edge")
    env = server_env(
        tmp,
        TALLY_HTTP_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT),
        TALLY_HTTP_BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT),
    )
    with running_server(env) as url:
        yield url, tmp


_OPEN: list[socket.socket] = []


@pytest.fixture(autouse=True)
def _close_sockets() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _connect(url: str, timeout: float = 10) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", _port(url)), timeout=timeout)
    _OPEN.append(s)
    return s


def _send(s: socket.socket, data: bytes) -> bool:
    try:
        s.sendall(data)
    except OSError:  # the server closed it: what the hostile-client tests want
        return False
    return True


def _answer(s: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or 10 s pass)."""
    chunks = []
    try:
        while chunk := s.recv(65536):
            chunks.append(chunk)
    except (TimeoutError, ConnectionResetError):
        pass
    return b"".join(chunks)


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def _closed_within(s: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closes ``s`` without answering; None if it does not."""
    start = time.monotonic()
    s.settimeout(seconds)
    try:
        data = s.recv(1024)
    except TimeoutError:
        return None
    except ConnectionResetError:
        data = b""
    assert data == b"", f"expected a silent close, got {data[:80]!r}"
    return time.monotonic() - start


def _worker_pids(url: str) -> list[int]:
    pid = SERVERS[url].pid
    children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    # Workers are spawned, so multiprocessing's resource tracker is a child as well.
    workers = [
        c for c in children if b"resource_tracker" not in Path(f"/proc/{c}/cmdline").read_bytes()
    ]
    return workers or [pid]  # a server without a supervisor


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_a_one_mib_header_is_a_431(edge: tuple[str, Path]) -> None:
    url, _ = edge
    s = _connect(url)
    _send(s, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n")
    assert _status(_answer(s)) == 431


@pytest.mark.parametrize("count", [101, 5000])
def test_too_many_headers_is_a_431(edge: tuple[str, Path], count: int) -> None:
    url, _ = edge
    s = _connect(url)
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(count))
    _send(s, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    assert _status(_answer(s)) == 431


def test_a_head_within_the_limits_is_served(edge: tuple[str, Path]) -> None:
    url, _ = edge
    s = _connect(url)
    headers = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(90))  # ~10 KiB
    _send(s, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + headers + b"\r\n")
    assert _status(_answer(s)) == 200


def test_unfinished_64_mb_heads_pin_no_memory(edge: tuple[str, Path]) -> None:
    url, _ = edge
    [worker] = _worker_pids(url)
    before = _rss_mb(worker)
    sent = [0] * 4

    def hog(i: int) -> None:
        s = _connect(url)
        _send(s, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        chunk = b"a" * 65536
        for _ in range(1024):  # 64 MiB, never finished
            if not _send(s, chunk):
                break
            sent[i] += len(chunk)
        s.close()

    threads = [threading.Thread(target=hog, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    peak = before
    while any(t.is_alive() for t in threads):
        peak = max(peak, _rss_mb(worker))
        time.sleep(0.05)
    for t in threads:
        t.join()
    # Each connection is cut off at the head limit (16 KiB), not at 64 MB.
    assert max(sent) < 8 << 20, sent
    assert peak - before < 16, f"RSS {before:.0f} -> {peak:.0f} MB"


def test_heads_sent_a_byte_a_second_are_cut_off(edge: tuple[str, Path]) -> None:
    url, _ = edge
    conns = [_connect(url) for _ in range(200)]
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
    start = time.monotonic()
    open_ = set(range(len(conns)))
    i = 0
    while open_ and time.monotonic() - start < HEADER_TIMEOUT + 10:
        for n in list(open_):
            if not _send(conns[n], head[i % len(head) : i % len(head) + 1]):
                open_.discard(n)
        i += 1
        time.sleep(1)
        for n in list(open_):
            conns[n].settimeout(0.001)
            try:
                data = conns[n].recv(100)
            except TimeoutError:
                continue
            except ConnectionResetError:
                data = b""
            assert data == b"", data[:80]
            open_.discard(n)
    assert not open_, f"{len(open_)} of 200 still open after {time.monotonic() - start:.1f} s"


def test_a_silent_connection_is_closed(edge: tuple[str, Path]) -> None:
    url, _ = edge
    waited = _closed_within(_connect(url), HEADER_TIMEOUT + 8)
    assert waited is not None and waited >= HEADER_TIMEOUT - 0.5


def test_an_idle_keep_alive_connection_is_closed(edge: tuple[str, Path]) -> None:
    url, _ = edge
    s = _connect(url)
    _send(s, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    s.settimeout(10)
    assert _status(s.recv(4096)) == 200
    waited = _closed_within(s, HEADER_TIMEOUT + 8)
    assert waited is not None and waited >= HEADER_TIMEOUT - 0.5


@pytest.mark.parametrize(
    ("path", "ctype"),
    [
        ("/v1/sequences", "application/json"),  # a body FastAPI reads
        ("/v1/sequences/invoices/next", "application/json"),  # the fast path's reader
        ("/oauth/token", "application/x-www-form-urlencoded"),  # the token endpoint's
    ],
)
def test_a_body_sent_a_byte_a_second_gets_408_and_the_connection_closes(
    edge: tuple[str, Path], path: str, ctype: str
) -> None:
    url, tmp = edge
    from tests.e2e.conftest import cli

    env = server_env(tmp)
    token = cli(env, "token", "--tenant", "edge").stdout.strip()
    s = _connect(url)
    _send(
        s,
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: {ctype}\r\nContent-Length: 1000\r\n\r\n".encode(),
    )
    start = time.monotonic()
    s.settimeout(0.001)
    answer = b""
    while time.monotonic() - start < BODY_TIMEOUT + 10:
        if not _send(s, b"{"):
            break
        try:
            answer = s.recv(65536)
            break
        except TimeoutError:
            time.sleep(0.5)
    assert answer, f"no answer after {time.monotonic() - start:.1f} s"
    s.settimeout(10)
    answer += _answer(s)  # and then the server closes the connection
    head, _, body = answer.partition(b"\r\n\r\n")
    assert _status(head) == 408, head
    assert b"application/problem+json" in head
    assert json.loads(body)["status"] == 408


def test_a_client_leaving_mid_body_is_no_traceback(edge: tuple[str, Path]) -> None:
    url, tmp = edge
    from tests.e2e.conftest import cli

    token = cli(server_env(tmp), "token", "--tenant", "edge").stdout.strip()
    for path in ("/v1/sequences/invoices/next", "/v1/sequences"):
        s = _connect(url)
        _send(
            s,
            f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{".encode(),
        )
        time.sleep(0.3)
        s.close()
    time.sleep(0.5)
    log = "".join(p.read_text() for p in tmp.glob("server-*.log"))
    assert "Traceback" not in log and "ClientDisconnect" not in log


def test_a_body_cut_short_by_the_client_is_a_400_problem_and_takes_nothing(
    edge: tuple[str, Path],
) -> None:
    """A client that stops sending (FIN) before its declared Content-Length may still
    read: it gets a 400 problem+json like every other refusal, and nothing is done."""
    url, tmp = edge
    from tests.e2e.conftest import cli

    token = cli(server_env(tmp), "token", "--tenant", "edge").stdout.strip()
    auth = f"Authorization: Bearer {token}\r\n"

    def call(method: str, path: str, body: bytes = b"") -> dict[str, Any]:
        s = _connect(url)
        _send(
            s,
            f"{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body,
        )
        answer: dict[str, Any] = json.loads(_answer(s).partition(b"\r\n\r\n")[2])
        return answer

    assert call("POST", "/v1/sequences", b'{"name":"cut"}')["name"] == "cut"
    for path, body in (("/v1/sequences/cut/next", b'{"co'), ("/v1/sequences", b'{"name":"cu')):
        s = _connect(url)
        _send(
            s,
            f"POST {path} HTTP/1.1\r\nHost: x\r\n{auth}"
            "Content-Type: application/json\r\nContent-Length: 40\r\n\r\n".encode()
            + body,
        )
        s.shutdown(socket.SHUT_WR)
        head, _, answer = _answer(s).partition(b"\r\n\r\n")
        assert _status(head) == 400, head
        assert b"content-type: application/problem+json" in head.lower(), head
        assert json.loads(answer)["status"] == 400
    assert [q["name"] for q in call("GET", "/v1/sequences")["items"]] == ["cut"]
    assert call("POST", "/v1/sequences/cut/next")["value"] == 1


def test_connections_over_the_cap_wait_until_one_closes(tmp_path: Path) -> None:
    env = server_env(tmp_path, TALLY_HTTP_MAX_CONNECTIONS="8")
    with running_server(env) as url:
        held = []
        for _ in range(8):
            s = _connect(url)
            _send(s, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _status(s.recv(4096)) == 200
            held.append(s)  # kept alive: each holds one of the 8
        extra = _connect(url)  # the kernel completes the handshake; the server waits
        _send(extra, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        extra.settimeout(1.5)
        with pytest.raises(TimeoutError):
            extra.recv(4096)
        held.pop().close()
        extra.settimeout(10)
        assert _status(extra.recv(4096)) == 200
        for s in held:
            s.close()
