"""The README's onboarding block, run as written against a real server."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.e2e.conftest import TALLY, running_server
from tests.e2e.test_readme import README

pytestmark = pytest.mark.e2e


def onboarding_block() -> str:
    match = re.search(
        r"<!-- onboarding:start -->\s*```sh\n(.*?)```\s*<!-- onboarding:end -->",
        README.read_text(),
        re.S,
    )
    assert match, "README lost its onboarding block"
    return match.group(1)


def test_readme_onboarding_works_as_written(e2e_env: dict[str, str]) -> None:
    with running_server(e2e_env) as url:
        runnable = onboarding_block().replace("http://127.0.0.1:8080", url)
        runnable = runnable.replace(".venv/bin/tally", str(TALLY))
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", runnable],
            env=e2e_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert (answer["sequence"], answer["value"]) == ("default", 1)
