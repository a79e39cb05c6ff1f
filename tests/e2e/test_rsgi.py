"""``tally serve`` on granian's RSGI interface (api.rsgi): the hot routes answered
natively must answer exactly as the ASGI app's router does, through real servers.

The same script as tests/api/test_fastpath.py goes to two real servers, one with the
fast path (``next`` and ``/getCounter`` answered natively on RSGI) and one with
``TALLY_FAST_PATH=false`` (every request through the bridge to FastAPI's router).
Every answer of a hot route must match in status, headers (granian's ``date`` aside)
and body, including its ``X-Request-ID`` echo and every error's problem+json.
"""

from __future__ import annotations

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
