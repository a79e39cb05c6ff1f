"""The HTTP server ``tally serve`` runs: granian, with the edge limits from settings.

Why granian and not uvicorn: measured against a real process (docs/operations.md, "The edge"),
uvicorn enforces no deadline for a request head (a connection that sends nothing, or
one byte a second, stays open for ever) and no header count, and with httptools no
header size either; granian (hyper underneath) enforces all three, answering 431 for
a head over ``TALLY_HTTP_MAX_HEADER_BYTES`` or with more than 100 headers, closing a
connection whose head has not arrived within ``TALLY_HTTP_HEADER_TIMEOUT_SECONDS``,
and holding at most ``TALLY_HTTP_MAX_CONNECTIONS`` connections per worker (the rest
wait in the kernel's listen backlog). The body deadline is the app's
(``core.limits.BodyDeadline``): hyper has none.

Tally's own app is served on granian's RSGI interface (``api.rsgi``: the hot routes
answered natively, the ASGI app behind a bridge): the same limits apply to both.
"""

from __future__ import annotations

import ctypes
import ipaddress
import multiprocessing
import os
import signal
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from api.metrics import WORKERS
from core.settings import Settings

if TYPE_CHECKING:
    from api.rsgi import TallyRSGI

TALLY_APP = "api.app:create_app"
_PR_SET_PDEATHSIG = 1
_SUPERVISOR = "TALLY_SUPERVISOR_PID"  # set for the workers, never by a user


def server(
    settings: Settings,
    *,
    host: str,
    port: int,
    workers: int,
    log_config: dict[str, Any] | None = None,
    app: str = TALLY_APP,
    rsgi: bool = False,
    reload_paths: list[Path] | None = None,
) -> Any:
    """A granian server for the app factory ``app``, configured from ``settings``."""
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.http import HTTP1Settings
    from granian.server import Server

    os.environ[_SUPERVISOR] = str(os.getpid())
    os.environ[WORKERS] = str(workers)
    # Workers start as fresh interpreters, not forks: the store check before them may
    # have started gRPC (Bigtable) threads, and a forked gRPC client hangs the worker.
    multiprocessing.set_start_method("spawn", force=True)
    # Tally's own app through worker_app (it dies with the supervisor); make bench's
    # yardstick apps as they are.
    target = "api.server:worker_app" if app == TALLY_APP else app
    return Server(
        target,
        address=host,
        port=port,
        # Tally itself on RSGI (api.rsgi: the hot routes natively, the ASGI app behind a
        # bridge, its lifespan run from RSGI's hooks); make bench's yardsticks as they are.
        interface=Interfaces.RSGI if rsgi or app == TALLY_APP else Interfaces.ASGI,
        factory=True,
        workers=workers,
        loop=Loops.uvloop,
        # HTTP/1.1 only: with "auto", hyper first sniffs for the HTTP/2 preface with no
        # deadline at all, so a silent connection would be held for ever. Behind an
        # ingress, TLS and HTTP/2 end there.
        http=HTTPModes.http1,
        websockets=False,
        backpressure=settings.http_max_connections,
        http1_settings=HTTP1Settings(
            # hyper runs this timer whenever it waits for a request head: from accept,
            # and again after each response, so it is also the idle keep-alive timeout.
            header_read_timeout=int(settings.http_header_timeout_seconds * 1000),
            keep_alive=True,
            # The read buffer a head must fit in (hyper answers 431 past it); it grows
            # from 8 KiB only as a head needs it.
            max_buffer_size=settings.http_max_header_bytes,
        ),
        log_access=False,  # api.access writes the access lines (no query strings)
        log_dictconfig=log_config,
        respawn_failed_workers=workers > 1,
        # Development (`make dev`): restart the worker when a file under these changes.
        reload=reload_paths is not None,
        reload_paths=reload_paths,
    )


def check_can_listen(host: str, port: int) -> None:
    """Bind ``host:port`` once and let go: an OSError now instead of granian's panic later.

    granian binds with SO_REUSEADDR and SO_REUSEPORT; this probe sets SO_REUSEADDR only.
    So a port with connections left in TIME_WAIT passes, as it does for granian, but a
    port another process listens on fails even when that process set SO_REUSEPORT too
    (another ``tally serve``), which granian would otherwise share silently with it.
    ``host`` must be an IP address (granian resolves no names): ValueError otherwise.
    """
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))


def worker_app() -> TallyRSGI:
    """The app factory each granian worker calls; the worker dies with its supervisor."""
    from api.app import create_app
    from api.rsgi import TallyRSGI

    _die_with_supervisor()
    return TallyRSGI(create_app())


def _die_with_supervisor() -> None:
    # A SIGKILLed supervisor (the OOM killer, or a test's crash) must not leave an
    # orphan worker serving the port and holding leased blocks: as in a container,
    # whose processes all die with PID 1, the worker gets SIGKILL too.
    supervisor = os.environ.get(_SUPERVISOR)
    if not sys.platform.startswith("linux") or not supervisor:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != int(supervisor):  # it died before prctl took effect
        os.kill(os.getpid(), signal.SIGKILL)
