"""Serve an app on granian the way ``tally serve`` serves it on uvicorn (bench only).

One process per worker, uvloop, the factory called in each worker, lifespan on, and
``tally serve``'s logging config; as there, the server's own access log is off (Tally's
``api.access.AccessLog`` writes the access line, so the yardsticks have none on either
server). Issue 15 chooses Tally's server; until then ``make bench``
measures Tally and the raw ASGI counter on both, and only uvicorn ships.

    python -m bench.granian_serve --port 8081 [--workers 1] [--app api.app:create_app]
"""

from __future__ import annotations

import argparse

from granian.constants import Interfaces, Loops
from granian.server import Server

from api.app import load_keys
from api.logs import logging_config
from core.settings import load_settings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--app", default="api.app:create_app")
    args = parser.parse_args()
    settings = load_settings()
    if args.app == "api.app:create_app":
        load_keys(settings)  # as `tally serve` does before its workers start
    Server(
        args.app,
        address="127.0.0.1",
        port=args.port,
        interface=Interfaces.ASGI,
        workers=args.workers,
        loop=Loops.uvloop,
        factory=True,
        log_dictconfig=logging_config(settings),
        log_access=False,
    ).serve()


if __name__ == "__main__":
    main()
