"""The e2e harness itself: a server whose port was taken first starts on another one.

Under xdist another worker's server, or the local end of a client connection, can take
the port ``free_port()`` found before ``tally serve`` binds it.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e import conftest
from tests.e2e.conftest import running_server

pytestmark = pytest.mark.e2e


@pytest.fixture
def taken() -> Iterator[int]:
    """A port something else is listening on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port: int = s.getsockname()[1]
        yield port


def test_a_server_whose_port_was_taken_starts_on_another(
    e2e_env: dict[str, str], taken: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    ports = iter([taken])
    real = conftest.free_port
    monkeypatch.setattr(conftest, "free_port", lambda: next(ports, None) or real())
    with running_server(e2e_env) as url:
        assert not url.endswith(f":{taken}")
        assert httpx.get(f"{url}/readyz").status_code == 200
    first = Path(e2e_env["TALLY_KEYS_DIR"]).parent / f"server-{taken}.log"
    assert conftest.ADDRESS_IN_USE in first.read_text(), "the first try did not meet the port"


def test_a_server_that_fails_otherwise_is_not_started_again(
    e2e_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ports: list[int] = []
    real = conftest.free_port
    monkeypatch.setattr(conftest, "free_port", lambda: ports.append(real()) or ports[-1])
    broken = {**e2e_env, "TALLY_STORE_URL": "nosuchstore://x"}
    with pytest.raises(conftest.ServerFailed, match="server exited"), running_server(broken):
        pass
    assert len(ports) == 1
