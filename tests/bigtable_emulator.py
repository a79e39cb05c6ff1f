"""Google's Bigtable emulator (``cbtemulator``) for the test session.

Found and started by ``bench.emulator`` (``CBTEMULATOR`` overrides where it is looked
for). Missing: the Bigtable tests skip with the reason, or fail under ``CI=true``
(``tests.tools.missing``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench import emulator as cbt
from tests.tools import missing


def find_emulator() -> str:
    """The emulator's path, or skip/fail with where it was looked for."""
    path = cbt.find()
    if path is None:
        override = os.environ.get("CBTEMULATOR")
        where = f"CBTEMULATOR={override}" if override else "PATH and the gcloud SDK"
        missing(
            f"Bigtable emulator cbtemulator not found ({where}): install"
            " google-cloud-cli-bigtable-emulator or set CBTEMULATOR"
        )
    return path


@contextmanager
def emulator(log_dir: Path) -> Iterator[str]:
    """A running emulator on a free loopback port; yields ``host:port``."""
    with cbt.running(find_emulator(), log_dir) as host:
        yield host
