"""The image's build context and lock files, computed and executed without a Docker engine.

The build context is what Docker's own ignore rules (the ``docker`` SDK's
``exclude_paths``, the same matcher ``docker build`` uses) let through
``deploy/Dockerfile.dockerignore``. The build stage's COPY and RUN steps are then
replayed from exactly that context, in a fresh venv, and the result must serve /healthz.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.e2e.conftest import free_port

from ._support import DOCKERFILE, REPO, missing, run

pytestmark = pytest.mark.infra

DOCKERIGNORE = DOCKERFILE.with_name("Dockerfile.dockerignore")
LOCK = REPO / "requirements.lock"
UV = Path(sys.executable).parent / "uv"
# What `make lock` exports, minus --output-file (the export then goes to stdout).
EXPORT = [
    "export", "--frozen", "--offline", "--no-default-groups", "--group", "build",
    "--extra", "bigtable", "--no-emit-project", "--format", "requirements-txt",
]  # fmt: skip


@dataclass
class Stage:
    env: dict[str, str] = field(default_factory=dict)
    steps: list[tuple[str, str]] = field(default_factory=list)  # (instruction, arguments)
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)


def dockerfile_stages(text: str) -> list[Stage]:
    """The Dockerfile's stages with their ENV, WORKDIR/COPY/RUN steps and command."""
    joined = re.sub(r"\\\n", " ", text)
    stages: list[Stage] = []
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            stages.append(Stage())
        elif instruction == "ENV":
            for token in shlex.split(args):
                key, _, value = token.partition("=")
                stages[-1].env[key] = value
        elif instruction in ("WORKDIR", "COPY", "RUN"):
            stages[-1].steps.append((instruction, args.strip()))
        elif instruction in ("ENTRYPOINT", "CMD"):
            setattr(
                stages[-1], instruction.lower(), shlex.split(args.strip("[]").replace(",", " "))
            )
    return stages


def build_context(root: Path) -> set[str]:
    """Every path under ``root`` that the Dockerfile's ignore file lets into the context."""
    try:
        from docker.utils.build import exclude_paths
    except ImportError:
        missing("the docker SDK is not installed (it comes with the dev extra)")
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    return set(exclude_paths(str(root), patterns))


def copy_sources(stage: Stage) -> list[str]:
    sources: list[str] = []
    for instruction, args in stage.steps:
        if instruction == "COPY" and not args.startswith("--from"):
            *srcs, _dest = shlex.split(args)
            sources.extend(srcs)
    return sources


def test_build_context_holds_every_source_the_dockerfile_copies() -> None:
    context = build_context(REPO)
    build, final = dockerfile_stages(DOCKERFILE.read_text())
    sources = copy_sources(build)
    assert "requirements.lock" in sources, "the image must install from the lock file"
    for source in sources:
        assert source in context, f"COPY {source}: not in the build context (dockerignore)"
    # Nothing but what is copied: no tests, terraform, keys or local data reach the daemon.
    top = {path.split("/")[0] for path in context}
    assert top == set(sources)
    assert not copy_sources(final), "the runtime stage copies only from the build stage"


def test_lock_is_current_with_pyproject() -> None:
    """`make lock` must be re-run whenever pyproject.toml's dependencies change."""
    if not UV.exists():
        missing("uv is not installed (it comes with the dev extra)")
    result = run([str(UV), "lock", "--check", "--offline"], REPO)
    assert result.returncode == 0, f"uv.lock is stale: run `make lock`\n{result.stderr}"
    export = run([str(UV), *EXPORT], REPO)
    assert export.returncode == 0, export.stderr

    def body(text: str) -> str:
        return "\n".join(line for line in text.splitlines() if not line.startswith("#"))

    assert body(export.stdout) == body(LOCK.read_text()), (
        "requirements.lock is not the export of uv.lock: run `make lock`"
    )


def locked_pins() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of every entry of requirements.lock."""
    pins: dict[str, tuple[str, list[str]]] = {}
    for entry in re.sub(r"\\\n", " ", LOCK.read_text()).splitlines():
        if not entry or entry.startswith("#") or entry.startswith(" "):
            continue
        match = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", entry)
        assert match, f"requirements.lock: not a pin: {entry[:80]}"
        pins[canonicalize_name(match[1])] = (match[2], re.findall(r"--hash=sha256:\w+", entry))
    return pins


def test_image_lock_pins_every_dependency_and_the_build_backend_with_hashes() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    pins = locked_pins()
    wanted = [*pyproject["project"]["dependencies"], *pyproject["build-system"]["requires"]]
    for text in wanted:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is in pyproject.toml but not locked: run `make lock`"
        assert requirement.specifier.contains(pins[name][0], prereleases=True), (
            f"{name}=={pins[name][0]} no longer satisfies {text}: run `make lock`"
        )
    for name, (_, hashes) in pins.items():
        assert hashes, f"{name} has no hash in requirements.lock"


def test_image_installs_and_serves_from_exactly_its_build_context(tmp_path: Path) -> None:
    """Replay the build stage in a fresh venv from the computed context; start the app."""
    context = build_context(REPO)
    build, final = dockerfile_stages(DOCKERFILE.read_text())
    prefix = tmp_path / "opt-tally"  # the image's /opt/tally
    ctx = tmp_path / "context"
    for rel in sorted(context):
        src = REPO / rel
        if src.is_file():
            (ctx / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, ctx / rel)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TALLY_", "VIRTUAL_ENV"))}
    # `python` is this interpreter's (a venv made from it is based on the real one).
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(build.env)
    env.pop("PIP_NO_CACHE_DIR", None)  # the image keeps no cache; the test may reuse one
    workdir = tmp_path / "src"
    for instruction, args in build.steps:
        if instruction == "WORKDIR":
            workdir.mkdir(parents=True, exist_ok=True)
        elif instruction == "COPY":
            *srcs, dest = shlex.split(args)
            for source in srcs:
                origin = ctx / source
                assert origin.exists(), f"COPY {source} fails: not in the build context"
                target = workdir / dest
                if origin.is_dir():  # Docker copies a directory's contents into dest
                    shutil.copytree(origin, target, dirs_exist_ok=True)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, target / origin.name if dest.endswith("/") else target)
        elif instruction == "RUN":
            command = args.replace("/opt/tally", str(prefix))
            done = subprocess.run(
                ["/bin/sh", "-c", command],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            assert done.returncode == 0, f"RUN {args}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"

    # The runtime stage's settings, with a store, keys and issuer a production start needs.
    runtime = {k: v for k, v in env.items() if not k.startswith("PIP_")}
    runtime.update(final.env)
    runtime.update(
        PATH=f"{prefix / 'bin'}{os.pathsep}/usr/bin:/bin",
        TALLY_KEYS_DIR=str(tmp_path / "keys"),
        TALLY_STORE_URL=f"sqlite:///{tmp_path}/data/tally.db",
        TALLY_JWT_ISSUER="https://tally.image-test",
    )
    assert runtime["TALLY_ENVIRONMENT"] == "production"
    tally = str(prefix / "bin" / final.entrypoint[0])
    keys = subprocess.run(
        [tally, "keys", "generate"], env=runtime, capture_output=True, text=True, check=False
    )
    assert keys.returncode == 0, keys.stderr
    port = free_port()
    command = [tally, *final.cmd]
    assert command[1:] == ["serve", "--host", "0.0.0.0", "--port", "8080"]  # noqa: S104
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(port)
    log = tmp_path / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(command, env=runtime, cwd=tmp_path, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"the app exited:\n{log.read_text()[-3000:]}"
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, f"no /healthz in 60 s:\n{log.read_text()}"
                time.sleep(0.2)
        assert answer.status_code == 200, answer.text
        # The installed app is the one from the context, not this checkout's editable one.
        where = subprocess.run(
            [str(prefix / "bin" / "python"), "-c", "import api; print(api.__file__)"],
            env=runtime,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        )
        assert where.stdout.startswith(str(prefix)), where.stdout
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
