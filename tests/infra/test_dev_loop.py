"""The dev loop: `make dev` reloads, the compose stack watches, pre-commit = make lint."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import TALLY, free_port, server_env
from tests.tools import require_tool

from ._support import DOCKERFILE, REPO, missing, run

pytestmark = pytest.mark.infra

COMPOSE = REPO / "deploy" / "compose.yaml"
PRE_COMMIT = REPO / ".pre-commit-config.yaml"
BIN = Path(sys.executable).parent


def yaml_load(path: Path) -> Any:
    try:
        import yaml
    except ImportError:
        missing("PyYAML is not installed (it comes with the infra extra)")
    return yaml.safe_load(path.read_text())


def test_compose_file_passes_the_compose_spec() -> None:
    checker = BIN / "check-jsonschema"
    path = str(checker) if checker.exists() else require_tool("check-jsonschema")
    result = run([path, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)], REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_watch_syncs_every_package_into_the_image_and_rebuilds_on_dependencies() -> None:
    compose = yaml_load(COMPOSE)
    watch = compose["services"]["tally"]["develop"]["watch"]
    with (REPO / "pyproject.toml").open("rb") as fh:
        include = tomllib.load(fh)["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = sorted(p.rstrip("*") for p in include)
    # Where the Dockerfile's venv (/opt/tally) on its base (python:3.11) installs them.
    base = re.search(r"^FROM python:(3\.\d+)\.", DOCKERFILE.read_text(), re.M)
    assert base and "python -m venv /opt/tally" in DOCKERFILE.read_text()
    site = f"/opt/tally/lib/python{base[1]}/site-packages"
    synced = {
        w["path"].removeprefix("../"): w["target"]
        for w in watch
        if w["action"] in ("sync", "sync+restart")
    }
    assert synced == {p: f"{site}/{p}" for p in packages}
    assert all(w["action"] == "sync+restart" for w in watch if w["action"].startswith("sync"))
    rebuilds = {w["path"] for w in watch if w["action"] == "rebuild"}
    assert {"../pyproject.toml", "../requirements.lock"} <= rebuilds
    for watched in watch:  # paths are relative to the compose file
        assert (COMPOSE.parent / watched["path"]).resolve().exists(), watched["path"]


def test_compose_mongo_is_a_single_node_replica_set_tally_writes_majority_to() -> None:
    services = yaml_load(COMPOSE)["services"]
    mongo, tally = services["mongo"], services["tally"]
    assert mongo["image"].startswith("mongo:7")
    assert mongo["command"][:2] == ["--replSet", "rs0"]
    check = " ".join(mongo["healthcheck"]["test"])
    assert "rs.initiate" in check and "isWritablePrimary" in check
    assert tally["depends_on"]["mongo"]["condition"] == "service_healthy"
    url = tally["environment"]["TALLY_STORE_URL"]
    assert url.startswith("mongodb://mongo:27017/") and "replicaSet=rs0" in url
    assert "w=majority" in url
    assert tally["cap_drop"] == ["ALL"] and "no-new-privileges:true" in tally["security_opt"]


def test_pre_commit_runs_exactly_the_make_lint_commands() -> None:
    config = yaml_load(PRE_COMMIT)
    hooks = [h for repo in config["repos"] for h in repo["hooks"]]
    assert all(repo["repo"] == "local" for repo in config["repos"]), "nothing is downloaded"
    makefile = (REPO / "Makefile").read_text()
    recipe = re.search(r"^lint:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe
    lint = [
        line.strip().replace("$(BIN)/", ".venv/bin/").removesuffix(" .")
        for line in recipe[1].splitlines()
    ]
    entries = [h["entry"] for h in hooks]
    for command in lint:
        assert command in entries, f"pre-commit lacks `{command}` from make lint"
    pre_commit = BIN / "pre-commit"
    if not pre_commit.exists():
        missing("pre-commit is not installed (it comes with the dev extra)")
    result = run([str(pre_commit), "validate-config", str(PRE_COMMIT)], REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_make_dev_restarts_the_server_on_a_source_change(tmp_path: Path) -> None:
    """`tally serve --reload` (what `make dev` runs): a saved file restarts the app."""
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^dev:.*\n\t\$\(BIN\)/tally serve .*--reload", makefile, re.M)
    watched = tmp_path / "src"
    watched.mkdir()
    (watched / "module.py").write_text("VALUE = 1\n")
    env = server_env(tmp_path)
    port = free_port()
    log = tmp_path / "dev.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(TALLY), "serve", "--port", str(port), "--reload", "--reload-dir", str(watched)],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}/healthz"

    def wait_healthy(deadline: float) -> None:
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)

    try:
        wait_healthy(time.monotonic() + 60)
        (watched / "module.py").write_text("VALUE = 2\n")
        deadline = time.monotonic() + 60
        while "Changes detected" not in log.read_text():  # granian's reloader says so
            assert time.monotonic() < deadline, f"no reload:\n{log.read_text()}"
            time.sleep(0.2)
        wait_healthy(time.monotonic() + 60)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_reload_refuses_several_workers(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(TALLY), "serve", "--reload", "--workers", "2"], env=server_env(tmp_path),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2 and "--reload serves one process" in result.stderr


def test_compose_runs_tally_with_settings_production_accepts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real Settings class on the compose service's environment: no crash loop."""
    from core.settings import load_settings

    environment = yaml_load(COMPOSE)["services"]["tally"]["environment"]
    for name, value in environment.items():
        monkeypatch.setenv(name, str(value))
    settings = load_settings()
    assert settings.environment == "production"
    assert settings.jwt_issuer == settings.public_url == "http://localhost:8080"
