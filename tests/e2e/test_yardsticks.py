"""make bench's raw counters, served by the real ``tally serve`` as the bench serves them:
``asgi-limit`` on ASGI and ``rsgi-limit`` on granian's RSGI interface must answer the
same requests with the same bodies, or the ratio of the two rows measures nothing."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from bench.servers import free_port, http_command, running, wait_http
from tests.e2e.test_serve_address import assert_one_line, serve

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("app", "rsgi"),
    [("bench.asgi_counter:create_app", False), ("bench.rsgi_counter:create_app", True)],
    ids=["asgi", "rsgi"],
)
def test_each_raw_counter_answers_next_with_the_same_counting_body(
    e2e_env: dict[str, str], tmp_path: Path, app: str, rsgi: bool
) -> None:
    port = free_port()
    env = {**e2e_env, "PYTHONPATH": str(ROOT)}
    with running(http_command(app, port, 1, rsgi=rsgi), env, tmp_path / "server.log") as proc:
        url = f"http://127.0.0.1:{port}"
        wait_http(proc, url + "/", tmp_path / "server.log")
        bodies = [
            httpx.post(f"{url}/v1/sequences/orders/next", json={"count": 1}, timeout=5)
            for _ in range(2)
        ]
    assert [(r.status_code, r.headers["content-type"]) for r in bodies] == [
        (200, "application/json")
    ] * 2
    first, second = (r.json() for r in bodies)
    assert second["first"] == first["first"] + 1
    assert second == {
        "sequence": "orders",
        "value": str(second["first"]),
        "first": second["first"],
        "last": second["first"],
        "count": 1,
    }


def test_interface_is_only_for_another_app(e2e_env: dict[str, str]) -> None:
    assert_one_line(serve(e2e_env, "--interface", "rsgi"), "--interface", "--app")
    assert_one_line(serve(e2e_env, "--interface", "wsgi", "--app", "x:y"), "--interface")
