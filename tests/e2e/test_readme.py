"""The README's first session, run as written against a real server."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import TALLY, running_server

pytestmark = pytest.mark.e2e
README = Path(__file__).resolve().parents[2] / "README.md"


def session_block() -> str:
    text = README.read_text()
    match = re.search(
        r"<!-- session:start -->\s*```sh\n(.*?)```\s*<!-- session:end -->", text, re.S
    )
    assert match, "README lost its session block"
    return match.group(1)


def test_readme_session_works_as_written(e2e_env: dict[str, str]) -> None:
    script = session_block()
    with running_server(e2e_env) as url:
        runnable = script.replace("http://127.0.0.1:8080", url).replace(
            ".venv/bin/tally", str(TALLY)
        )
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", runnable],
            env=e2e_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    # The curls print JSON objects back to back, then the plain-text counter.
    decoder, objects, pos = json.JSONDecoder(), [], 0
    while pos < len(out) and out[pos] == "{":
        obj, pos = decoder.raw_decode(out, pos)
        objects.append(obj)
    created, first, batch = objects[0], objects[1], objects[2]
    assert created["name"] == "invoices" and created["next"] == 1
    assert first["value"] == 1 and re.fullmatch(r"INV-\d{4}-000001", first["formatted"])
    assert (batch["value"], batch["last"], batch["count"]) == (2, 4, 3)
    assert out[pos:] == "1"
