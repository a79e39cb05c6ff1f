"""The Dockerfile and the compose stack, read statically (no Docker engine needed)."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import pytest

from ._support import DOCKERFILE, REPO, missing

pytestmark = pytest.mark.infra

COMPOSE = REPO / "deploy" / "compose.yaml"


def test_dockerfile_is_multi_stage_on_a_base_pinned_by_tag_and_digest() -> None:
    bases = re.findall(r"^FROM (\S+)", DOCKERFILE.read_text(), re.MULTILINE)
    assert len(bases) >= 2
    for base in bases:
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", base), base


def test_dockerfile_runs_as_non_root_with_a_healthcheck() -> None:
    text = DOCKERFILE.read_text()
    users = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert re.search(r"^HEALTHCHECK .*\n?.*urllib.*?/healthz", text, re.MULTILINE)
    assert 'ENTRYPOINT ["tally"]' in text
    # Every package the project installs must be copied into the image.
    with (REPO / "pyproject.toml").open("rb") as fh:
        include = tomllib.load(fh)["tool"]["setuptools"]["packages"]["find"]["include"]
    for package in (p.rstrip("*") for p in include):
        assert f"COPY {package} ./{package}" in text, f"Dockerfile does not copy {package}/"


def test_compose_runs_tally_on_a_healthy_mongo_with_a_named_volume() -> None:
    try:
        import yaml
    except ImportError:
        missing("PyYAML is not installed (it comes with the infra extra)")
    compose: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    mongo, tally = compose["services"]["mongo"], compose["services"]["tally"]
    assert mongo["image"].startswith("mongo:7")
    assert "healthcheck" in mongo
    assert mongo["volumes"][0].split(":")[0] in compose["volumes"]
    assert tally["depends_on"]["mongo"]["condition"] == "service_healthy"
    assert tally["environment"]["TALLY_STORE_URL"].startswith("mongodb://mongo:")
    # Writable only so compose watch can sync sources (test_dev_loop.py); still no caps.
    assert tally["cap_drop"] == ["ALL"]
