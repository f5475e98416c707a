"""Everything the benchmark runs, prepared once: rendered services grown to D domains and
built, the floor app, and fastapi-lazyrouter's own virtualenv with its twin packages.

Services are rendered with real Copier from the template's working tree and synced with
real uv (the helpers of ``tests/conftest.py``), then grown with ``domains.write_domains``
and built with the service's own ``python -m <package> build``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import domains as generator

TESTS_DIR = Path(__file__).resolve().parent.parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

from conftest import TEMPLATE_ROOT, python_executable, render, uv_environment  # noqa: E402

PROJECT_NAME = "Bench Service"
PACKAGE = "bench_service"
ENV_PREFIX = "BENCH_SERVICE_"
FLOOR_PACKAGE = "bench_floor"

# fastapi-lazyrouter 0.1.0rc4 fails on FastAPI 0.165 (``max_body_size``); its own lock file
# pins FastAPI 0.119.1 (poetry.lock of FabienArcellier/fastapi-lazyrouter), so it gets its
# own virtualenv with that FastAPI and the service's pydantic and uvicorn versions.
LAZYROUTER_REQUIREMENT = "fastapi-lazyrouter==0.1.0rc4"
LAZYROUTER_FASTAPI = "fastapi==0.119.1"


class SetupError(Exception):
    """A step of the preparation failed; the message carries its output."""


def _run(command: list[str], cwd: Path, *, env: Mapping[str, str] | None = None, timeout: float = 1800) -> str:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise SetupError(
            f"{' '.join(command)} exited with {result.returncode} in {cwd}\n"
            f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-4000:]}"
        )
    return result.stdout


def _uv(cwd: Path, *arguments: str, timeout: float = 900) -> str:
    return _run([sys.executable, "-m", "uv", *arguments], cwd, env=uv_environment(), timeout=timeout)


def template_digest() -> str:
    """Content hash of the template (copier.yml + template/): a reused workspace must match it."""
    digest = hashlib.sha256()
    paths = [TEMPLATE_ROOT / "copier.yml", *sorted((TEMPLATE_ROOT / "template").rglob("*"))]
    for path in paths:
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(TEMPLATE_ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def bench_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The children's environment: the caller's, minus anything that would change what runs."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("VIRTUAL_ENV", "PYTHON", ENV_PREFIX)) and key not in ("UV_PROJECT_ENVIRONMENT",)
    }
    env.update(extra or {})
    return env


@dataclass
class Service:
    domains: int
    root: Path
    python: Path
    build_seconds: float | None = None
    openapi_bytes: int | None = None


@dataclass
class Workspace:
    root: Path
    python_version: str
    services: dict[int, Service] = field(default_factory=dict)
    floor_root: Path | None = None
    floor_python: Path | None = None
    lazyrouter_root: Path | None = None
    lazyrouter_python: Path | None = None
    lazyrouter_error: str | None = None
    versions: dict[str, dict[str, str]] = field(default_factory=dict)
    answers: dict[str, Any] = field(default_factory=dict)


def _stamp(domains: int, answers: Mapping[str, Any], python_version: str) -> dict[str, Any]:
    return {
        "generator": generator.GENERATOR_VERSION,
        "domains": domains,
        "template": template_digest(),
        "answers": dict(sorted(answers.items())),
        "python": python_version,
    }


def prepare_service(workspace: Workspace, domains: int, *, reuse: bool, log: Any = print) -> Service:
    root = workspace.root / f"service-d{domains}"
    python = root / ".venv" / "bin" / "python"
    stamp_file = root / ".bench-stamp.json"
    stamp = _stamp(domains, workspace.answers, workspace.python_version)
    if reuse and stamp_file.is_file() and json.loads(stamp_file.read_text()) == stamp:
        # Still check the build: it goes stale if anything touched the code.
        status = subprocess.run(
            [str(python), "-m", PACKAGE, "status"], cwd=root, capture_output=True, text=True, check=False
        )
        if status.returncode == 0:
            log(f"  service D={domains}: reused {root}")
            return Service(domains, root, python, openapi_bytes=_openapi_size(root))
    if root.exists():
        shutil.rmtree(root)
    log(f"  service D={domains}: render (copier), uv sync, generate, build")
    render(root, project_name=PROJECT_NAME, **workspace.answers)
    _uv(root, "sync", "--python", python_executable(workspace.python_version))
    generator.write_domains(root / "src" / PACKAGE / "domains", domains)
    import time

    start = time.perf_counter()
    env = bench_environment()
    _run([str(python), "-m", PACKAGE, "build"], root, env=env, timeout=3600)
    build_seconds = time.perf_counter() - start
    # Bytecode for everything, as an image would ship it (FIELD-NOTES: without .pyc a large
    # eager app starts ~0.7 s slower); the first timed start must not pay for compiling.
    _run([str(python), "-m", "compileall", "-q", "-j", "0", str(root / "src")], root, env=env)
    stamp_file.write_text(json.dumps(stamp))
    return Service(domains, root, python, build_seconds=build_seconds, openapi_bytes=_openapi_size(root))


def _openapi_size(root: Path) -> int | None:
    path = root / "src" / PACKAGE / "_build" / "openapi.json"
    return path.stat().st_size if path.is_file() else None


def prepare_floor(workspace: Workspace, python: Path) -> None:
    root = workspace.root / "floor"
    generator.write_floor_package(root, FLOOR_PACKAGE)
    _run([str(python), "-m", "compileall", "-q", str(root)], root)
    workspace.floor_root = root
    workspace.floor_python = python


def prepare_lazyrouter(
    workspace: Workspace, counts: Iterable[int], pins: Mapping[str, str], *, log: Any = print
) -> None:
    root = workspace.root / "lazyrouter"
    venv = root / ".venv"
    python = venv / "bin" / "python"
    try:
        root.mkdir(parents=True, exist_ok=True)
        if not python.is_file():
            log("  fastapi-lazyrouter: virtualenv with its FastAPI")
            _uv(root, "venv", "--python", python_executable(workspace.python_version), str(venv))
        requirements = [LAZYROUTER_REQUIREMENT, LAZYROUTER_FASTAPI]
        requirements += [f"{name}=={version}" for name, version in pins.items()]
        _uv(root, "pip", "install", "--python", str(python), *requirements)
        for count in counts:
            package = f"lr_d{count}"
            if (root / package).exists():
                shutil.rmtree(root / package)
            generator.write_lazyrouter_package(root, package, count)
        _run([str(python), "-m", "compileall", "-q", "-j", "0", str(root)], root)
    except SetupError as exc:
        workspace.lazyrouter_error = str(exc)
        log(f"  fastapi-lazyrouter: setup failed:\n{exc}")
        return
    workspace.lazyrouter_root = root
    workspace.lazyrouter_python = python


VERSION_PROBE = (
    "import json, platform, importlib.metadata as m\n"
    "names = ['fastapi', 'pydantic', 'pydantic-core', 'starlette', 'uvicorn', 'httpx', 'httpx2', 'pydantic-settings',"
    " 'fastapi-lazyrouter', 'anyio']\n"
    "found = {}\n"
    "for name in names:\n"
    "    try:\n"
    "        found[name] = m.version(name)\n"
    "    except m.PackageNotFoundError:\n"
    "        pass\n"
    "found['python'] = platform.python_version()\n"
    "print(json.dumps(found))\n"
)


def versions_of(python: Path) -> dict[str, str]:
    return json.loads(_run([str(python), "-c", VERSION_PROBE], python.parent))


def prepare(
    root: Path,
    counts: list[int],
    *,
    python_version: str = "3.11",
    answers: Mapping[str, Any] | None = None,
    reuse: bool = False,
    lazyrouter: bool = True,
    log: Any = print,
) -> Workspace:
    root.mkdir(parents=True, exist_ok=True)
    workspace = Workspace(
        root=root, python_version=python_version, answers={"example_domain": False, **(answers or {})}
    )
    for count in counts:
        workspace.services[count] = prepare_service(workspace, count, reuse=reuse, log=log)
    first = workspace.services[counts[0]]
    workspace.versions["service"] = versions_of(first.python)
    prepare_floor(workspace, first.python)
    if lazyrouter:
        pins = {
            name: workspace.versions["service"][name]
            for name in ("pydantic", "uvicorn")
            if name in workspace.versions["service"]
        }
        prepare_lazyrouter(workspace, counts, pins, log=log)
        if workspace.lazyrouter_python is not None:
            workspace.versions["lazyrouter"] = versions_of(workspace.lazyrouter_python)
    return workspace
