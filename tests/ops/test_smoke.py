"""`tally smoke` against a real server process, and the one line it prints on failure."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.e2e.conftest import cli, free_port, running_server, server_env

pytestmark = pytest.mark.e2e


def onboard(env: dict[str, str]) -> dict[str, str]:
    result = cli(env, "tenants", "create", "acme", "--name", "Acme", "--json")
    assert result.returncode == 0, result.stderr
    creds: dict[str, str] = json.loads(result.stdout)
    return creds


def one_line_failure(result: object) -> str:
    code, out, err = result.returncode, result.stdout, result.stderr  # type: ignore[attr-defined]
    assert code != 0, out
    assert err.startswith("tally: smoke failed: ") and err.count("\n") == 1, err
    return str(err)


def test_smoke_passes_twice_against_a_real_server_and_the_number_grows(tmp_path: Path) -> None:
    env = server_env(tmp_path)
    creds = onboard(env)
    with running_server(env) as url:
        first = cli(env, "smoke", "--url", url, "--client-id", creds["client_id"],
                    "--client-secret", creds["client_secret"], "--json")  # fmt: skip
        assert first.returncode == 0, first.stderr
        one = json.loads(first.stdout)
        assert one["checks"] == ["healthz", "readyz", "token", "next"]
        assert one["last"] is None and one["sequence"] == "tally-smoke"
        # The secret from the environment keeps it out of the process list.
        again = cli({**env, "TALLY_SMOKE_CLIENT_SECRET": creds["client_secret"]}, "smoke",
                    "--url", url, "--client-id", creds["client_id"])  # fmt: skip
        assert again.returncode == 0, again.stderr
        assert again.stdout.startswith(f"smoke ok: {url} healthz, readyz, token, tally-smoke")
        assert f"{one['value'] + 1} > {one['value']}" in again.stdout


def test_smoke_fails_in_one_line_on_wrong_credentials(tmp_path: Path) -> None:
    env = server_env(tmp_path)
    creds = onboard(env)
    with running_server(env) as url:
        result = cli(env, "smoke", "--url", url, "--client-id", creds["client_id"],
                     "--client-secret", "not-the-secret")  # fmt: skip
    err = one_line_failure(result)
    assert "token: HTTP 401" in err and "not-the-secret" not in err


def test_smoke_fails_in_one_line_when_the_server_is_down(tmp_path: Path) -> None:
    env = server_env(tmp_path)
    url = f"http://127.0.0.1:{free_port()}"
    result = cli(env, "smoke", "--url", url, "--client-id", "c", "--client-secret", "s",
                 "--timeout", "2")  # fmt: skip
    err = one_line_failure(result)
    assert f"healthz: cannot reach {url}/healthz" in err


@contextmanager
def stuck_counter() -> Iterator[str]:
    """An instance whose counter never moves: it answers 41 after a last of 41."""

    class Handler(BaseHTTPRequestHandler):
        def _json(self, body: dict[str, object]) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._json({"status": "ok"} if "/v1/" not in self.path else {"last": 41})

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            self.rfile.read(length)
            if self.path == "/oauth/token":
                self._json({"access_token": "t", "token_type": "Bearer"})
            else:
                self._json({"value": 41, "last": 41, "count": 1, "sequence": "tally-smoke"})

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_smoke_fails_in_one_line_when_the_number_does_not_advance(tmp_path: Path) -> None:
    env = server_env(tmp_path)
    with stuck_counter() as url:
        result = cli(env, "smoke", "--url", url, "--client-id", "c", "--client-secret", "s")
    err = one_line_failure(result)
    assert "next: tally-smoke gave 41, not more than its last 41" in err
