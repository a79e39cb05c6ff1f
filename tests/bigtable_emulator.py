"""Google's Bigtable emulator (``cbtemulator``), started by the test session.

It ships with the gcloud SDK (Debian package ``google-cloud-cli-bigtable-emulator``);
``CBTEMULATOR`` overrides where it is looked for. Missing: the Bigtable tests skip with
the reason, or fail under ``CI=true`` (``tests.tools.missing``).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.tools import missing

_KNOWN = [
    "/usr/lib/google-cloud-sdk/platform/bigtable-emulator/cbtemulator",
    "/usr/share/google-cloud-sdk/platform/bigtable-emulator/cbtemulator",
    *glob.glob(str(Path.home() / "google-cloud-sdk/platform/bigtable-emulator/cbtemulator")),
]


def find_emulator() -> str:
    """The emulator's path, or skip/fail with where it was looked for."""
    override = os.environ.get("CBTEMULATOR")
    candidates = [override] if override else [shutil.which("cbtemulator"), *_KNOWN]
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    where = f"CBTEMULATOR={override}" if override else "PATH and the gcloud SDK"
    missing(
        f"Bigtable emulator cbtemulator not found ({where}): install"
        " google-cloud-cli-bigtable-emulator or set CBTEMULATOR"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def emulator(log_dir: Path) -> Iterator[str]:
    """A running emulator on a free loopback port; yields ``host:port``."""
    path = find_emulator()
    port = _free_port()
    log = open(log_dir / f"cbtemulator-{port}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [path, "-host", "127.0.0.1", "-port", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    host = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"cbtemulator exited with {proc.returncode}: see {log.name}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("cbtemulator did not listen within 20 s") from None
                time.sleep(0.05)
        yield host
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
