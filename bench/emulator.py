"""Google's Bigtable emulator (``cbtemulator``) on a free loopback port.

Shared by the test session (tests/bigtable_emulator.py, which skips or fails when it is
missing) and ``make bench --store bigtable://…`` (which starts one unless
``BIGTABLE_EMULATOR_HOST`` names a running one). ``CBTEMULATOR`` overrides where it is
looked for; it ships with the gcloud SDK (Debian package
``google-cloud-cli-bigtable-emulator`` from Google's Cloud SDK repository).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

KNOWN = (
    "/usr/lib/google-cloud-sdk/platform/bigtable-emulator/cbtemulator",
    "/usr/share/google-cloud-sdk/platform/bigtable-emulator/cbtemulator",
    str(Path.home() / "google-cloud-sdk/platform/bigtable-emulator/cbtemulator"),
)


def find() -> str | None:
    """The emulator's path (``$CBTEMULATOR`` if set), or None."""
    override = os.environ.get("CBTEMULATOR")
    candidates = [override] if override else [shutil.which("cbtemulator"), *KNOWN]
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def running(path: str, log_dir: Path) -> Iterator[str]:
    """Start the emulator at ``path``; yield ``host:port``; stop it afterwards."""
    port = _free_port()
    log = open(log_dir / f"cbtemulator-{port}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [path, "-host", "127.0.0.1", "-port", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
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
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
