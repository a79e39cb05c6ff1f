"""``tally serve`` on granian's RSGI interface (api.rsgi): the hot routes answered
natively must answer exactly as the ASGI app's router does, through real servers.

The same script as tests/api/test_fastpath.py goes to two real servers, one with the
fast path (``next`` and ``/getCounter`` answered natively on RSGI) and one with
``TALLY_FAST_PATH=false`` (every request through the bridge to FastAPI's router).
Every answer of a hot route must match in status, headers (granian's ``date`` aside)
and body, including its ``X-Request-ID`` echo and every error's problem+json.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.test_fastpath import SCRIPT, step_request
from tests.e2e.conftest import cli, running_server, server_env

pytestmark = pytest.mark.e2e


def _answers(env: dict[str, str]) -> list[tuple[Any, ...]]:
    tokens = {
        "{token}": f"Bearer {cli(env, 'token', '--tenant', 'acme').stdout.strip()}",
        "{read}": "Bearer "
        + cli(env, "token", "--tenant", "acme", "--scope", "sequences:read").stdout.strip(),
    }
    answers = []
    with running_server(env) as url, httpx.Client(base_url=url, timeout=10) as c:
        for i, (method, path, options) in enumerate(SCRIPT):
            headers, kwargs = step_request(i, options, tokens)
            r = c.request(method, path, headers=headers, **kwargs)
            if path.endswith("/next") or path.startswith("/getCounter"):
                # A redirect names the server's own address: the port differs.
                kept = sorted(
                    (k, v.replace(url, "<server>")) for k, v in r.headers.items() if k != "date"
                )
                answers.append((i, method, path, r.status_code, kept, r.content))
    return answers


def test_the_native_hot_routes_answer_exactly_as_the_router_through_the_bridge(
    tmp_path: Path,
) -> None:
    # The same signing keys for both servers: the same tokens, the same answers.
    native = server_env(tmp_path / "native")
    routed = server_env(tmp_path / "routed", TALLY_FAST_PATH="false")
    routed["TALLY_KEYS_DIR"] = native["TALLY_KEYS_DIR"]
    got, expected = _answers(native), _answers(routed)
    statuses = {a[3] for a in expected}
    assert statuses >= {200, 401, 403, 404, 405, 409, 413, 415, 422}, statuses
    assert len(got) == len(expected) > 40
    for answer, wanted in zip(got, expected, strict=True):
        assert answer == wanted
    assert all(("x-request-id", f"parity-{a[0]}") in a[4] for a in got)
    seeds = [a for a in got if a[1:3] == ("GET", "/getCounter") and a[3] == 200]
    assert [a[5] for a in seeds[:2]] == [b"1", b"2"]


def _raw(url: str, head: bytes) -> tuple[int, bytes]:
    """One request sent as raw bytes (httpx refuses a header value that is not ASCII)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(head)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    return status, answer.partition(b"\r\n\r\n")[2]


def test_a_key_that_is_not_ascii_is_refused_not_ignored(e2e_env: dict[str, str]) -> None:
    """granian's RSGI leaves such a value out of the headers it gives (it keeps the name):
    the key must still be refused with 400, as on ASGI, and no number issued."""
    token = cli(e2e_env, "token", "--tenant", "acme").stdout.strip()
    auth = {"Authorization": f"Bearer {token}"}
    with running_server(e2e_env) as url:
        created = httpx.post(f"{url}/v1/sequences", json={"name": "keyed"}, headers=auth)
        assert created.status_code == 201
        for path, body in (("/v1/sequences/keyed/next", b""), ("/v1/sequences", b'{"name":"k2"}')):
            head = (
                (
                    f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                ).encode()
                + b"Idempotency-Key: \xff\xfe\r\nConnection: close\r\n\r\n"
                + body
            )
            status, answer = _raw(url, head)
            assert status == 400, answer
            assert json.loads(answer)["status"] == 400
        after = httpx.post(f"{url}/v1/sequences/keyed/next", headers=auth)
        assert after.json()["value"] == 1  # the refused call took nothing
        assert httpx.get(f"{url}/v1/sequences/k2", headers=auth).status_code == 404


def test_a_query_or_path_with_bytes_beyond_ascii_is_answered(e2e_env: dict[str, str]) -> None:
    """granian's RSGI hands the path and query as text decoded from UTF-8; the bridge
    must give the ASGI app bytes again, not fail on them."""
    with running_server(e2e_env) as url:
        for target in ("/healthz?note=\u20ac", "/v1/sequences/\u20ac"):
            head = f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            status, answer = _raw(url, head.encode("utf-8"))
            assert status in (200, 401), answer  # answered: healthy, or no token


def test_a_token_that_is_not_ascii_is_an_invalid_token_as_on_asgi(
    e2e_env: dict[str, str],
) -> None:
    """granian's RSGI leaves such an Authorization value out too (api.rsgi passes it on
    as UNREADABLE): the answer must be the 401 invalid_token that the ASGI app gives
    for the same bytes (tests/auth/test_attacks.py), on a native and a bridged route."""
    token = cli(e2e_env, "token", "--tenant", "acme").stdout.strip()
    with running_server(e2e_env) as url:
        for method, path in (
            ("POST", "/v1/sequences/orders/next"),
            ("GET", "/getCounter"),
            ("GET", "/v1/sequences"),  # through the bridge to the router
        ):
            head = (
                f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n".encode()
                + b"Authorization: Bearer "
                + token.encode()[:20]
                + b"\xc3\xa9\r\nConnection: close\r\n\r\n"
            )
            status, answer = _raw(url, head)
            assert status == 401, answer
            assert json.loads(answer)["type"].endswith("/invalid-token"), answer
        good = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{url}/getCounter", headers=good).text == "1"  # nothing taken


def _head(method: str, path: str, *lines: bytes, body: bytes = b"") -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n".encode()
        + b"".join(line + b"\r\n" for line in lines)
        + b"Connection: close\r\n\r\n"
        + body
    )


def test_a_value_granian_cannot_read_still_counts_beside_others_of_its_kind(
    e2e_env: dict[str, str],
) -> None:
    """granian's RSGI lists each header name once and leaves out values that are not
    ASCII; ``get`` gives None when such a value came first. A duplicated header elsewhere
    in the head, or a readable value after the unreadable one, must not make Tally
    ignore the unreadable one: the answers are the ASGI app's for the same bytes."""
    token = cli(e2e_env, "token", "--tenant", "acme").stdout.strip()
    bearer = b"Authorization: Bearer " + token.encode()
    auth = {"Authorization": f"Bearer {token}"}
    twice = (b"Accept: */*", b"Accept: */*")
    with running_server(e2e_env) as url:
        assert httpx.post(f"{url}/v1/sequences", json={"name": "dup"}, headers=auth).is_success
        refused = [
            # An unreadable key, with some other header sent twice: still refused.
            (
                400,
                _head("POST", "/v1/sequences/dup/next", bearer, b"Idempotency-Key: \xff", *twice),
            ),
            (
                400,
                _head(
                    "POST",
                    "/v1/sequences",
                    bearer,
                    b"Content-Type: application/json",
                    b"Idempotency-Key: \xff",
                    *twice,
                    body=b'{"name":"dup2"}',
                ),
            ),
            # An unreadable key, then a readable one: two keys.
            (
                400,
                _head(
                    "POST",
                    "/v1/sequences/dup/next",
                    bearer,
                    b"Idempotency-Key: \xe9",
                    b"Idempotency-Key: k1",
                ),
            ),
            # An unreadable token, then a good one: two Authorization headers.
            (401, _head("POST", "/v1/sequences/dup/next", b"Authorization: Bearer \xe9", bearer)),
            (401, _head("GET", "/getCounter", b"Authorization: Bearer \xe9", bearer)),
            (401, _head("GET", "/v1/sequences", b"Authorization: Bearer \xe9", bearer)),
        ]
        for wanted, head in refused:
            status, answer = _raw(url, head)
            assert status == wanted, (head, answer)
            assert json.loads(answer)["status"] == wanted
        # Nothing was taken or created by any of them.
        assert httpx.post(f"{url}/v1/sequences/dup/next", headers=auth).json()["value"] == 1
        assert httpx.get(f"{url}/v1/sequences/dup2", headers=auth).status_code == 404
        assert httpx.get(f"{url}/getCounter", headers=auth).text == "1"
        # A request id that is not ASCII, then a readable one: the first is the one a
        # single read takes, so it is refused and a fresh id is made, on both paths.
        for method, path in (("POST", "/v1/sequences/dup/next"), ("GET", "/v1/sequences")):
            head = _head(method, path, bearer, b"X-Request-ID: \xe9", b"X-Request-ID: mine")
            host, port = url.removeprefix("http://").split(":")
            with socket.create_connection((host, int(port)), timeout=10) as s:
                s.sendall(head)
                reply = b""
                while chunk := s.recv(65536):
                    reply += chunk
            ids = [
                line.split(b":", 1)[1].strip()
                for line in reply.partition(b"\r\n\r\n")[0].split(b"\r\n")
                if line.lower().startswith(b"x-request-id:")
            ]
            assert len(ids) == 1 and ids[0] not in (b"mine", b""), reply
