"""Everything the benchmark runs, prepared once: rendered services grown to D domains and
built, one per database variant, the floor of each variant, and fastapi-lazyrouter's own
virtualenv with its twin packages.

Services are rendered with real Copier from the template's working tree and synced with
real uv (the helpers of ``tests/support``), then grown with ``domains.write_domains``,
built with the service's own ``python -m <package> build`` and, with a database, migrated
with its own ``python -m <package> db upgrade`` into a SQLite file of their own.
"""

from __future__ import annotations

import gzip
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
from . import floors

# The render helpers are the template tests' own (tests/conftest.py).
TESTS_DIR = Path(__file__).resolve().parent.parent / "tests"
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

from support import TEMPLATE_ROOT, python_executable, render, uv_environment  # noqa: E402

PROJECT_NAME = "Bench Service"
PACKAGE = "bench_service"
ENV_PREFIX = "BENCH_SERVICE_"
FLOOR_PACKAGE = "bench_floor"

# The database variants, each rendered over the plugins' answers with its own. "none" is the
# service as it was before the database layer (its numbers stay comparable with earlier
# runs); "sqlite" is the template's default render: no deploy target, because Copier refuses
# SQLite with the lambda target (many replicas, read-only filesystems). The lambda plugin
# measures the "none" services only.
VARIANT_ANSWERS: dict[str, dict[str, Any]] = {
    "none": {"database": "none"},
    "sqlite": {"database": "sqlite", "deploy_targets": []},
}

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
    # UV_COMPILE_BYTECODE: every installed package compiled, as the image's `uv sync` does
    # (without it, the first start of each venv would compile and the warm-up absorb it).
    env = {**uv_environment(), "UV_COMPILE_BYTECODE": "1"}
    return _run([sys.executable, "-m", "uv", *arguments], cwd, env=env, timeout=timeout)


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
        # OTEL_*: an exporter endpoint would switch the service's telemetry on mid-benchmark.
        # SSL_CERT_FILE / SSL_CERT_DIR: a machine-wide CA override (as on CI or behind a TLS
        # proxy) makes the outbound client load that bundle at startup, which an image does
        # not (docs/benchmarks.md gives its cost).
        if not key.startswith(("VIRTUAL_ENV", "PYTHON", "OTEL_", ENV_PREFIX))
        and key not in ("UV_PROJECT_ENVIRONMENT", "SSL_CERT_FILE", "SSL_CERT_DIR")
    }
    env.update(extra or {})
    return env


@dataclass
class Service:
    database: str
    domains: int
    root: Path
    python: Path
    env: dict[str, str] = field(default_factory=dict)  # settings it needs wherever it runs
    build_seconds: float | None = None
    openapi_bytes: int | None = None

    @property
    def label(self) -> str:
        return f"database={self.database}, D={self.domains}"


@dataclass
class Floor:
    database: str  # the variant whose floor it is, and whose venv it runs in
    root: Path
    package: str
    python: Path
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Workspace:
    root: Path
    python_version: str
    services: dict[tuple[str, int], Service] = field(default_factory=dict)  # by (database, D)
    floors: dict[str, Floor] = field(default_factory=dict)  # by database
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


def _sqlite_file(path: Path) -> str:
    """Where a SQLite database goes, emptied first: every run starts from the migrations."""
    for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        stale.unlink(missing_ok=True)
    return str(path.resolve())


def prepare_service(workspace: Workspace, database: str, domains: int, *, reuse: bool, log: Any = print) -> Service:
    root = workspace.root / f"service-{database}-d{domains}"
    python = root / ".venv" / "bin" / "python"
    stamp_file = root / ".bench-stamp.json"
    answers = {**workspace.answers, **VARIANT_ANSWERS[database]}
    stamp = _stamp(domains, answers, workspace.python_version)
    service = Service(database, domains, root, python)
    if database != "none":
        # Its own file, never the default one under the user's data directory.
        service.env[f"{ENV_PREFIX}DATABASE_URL"] = f"sqlite:///{_sqlite_file(root / f'{PACKAGE}.sqlite3')}"
    production = {f"{ENV_PREFIX}ENVIRONMENT": "production", f"{ENV_PREFIX}ALLOWED_HOSTS": '["127.0.0.1"]'}
    env = bench_environment({**service.env, **production})
    reused = False
    if reuse and stamp_file.is_file() and json.loads(stamp_file.read_text()) == stamp:
        # Still check the build: it goes stale if anything touched the code.
        status = subprocess.run(
            [str(python), "-m", PACKAGE, "status"], cwd=root, env=env, capture_output=True, text=True, check=False
        )
        reused = status.returncode == 0
    if reused:
        log(f"  service {service.label}: reused {root}")
    else:
        if root.exists():
            shutil.rmtree(root)
        log(f"  service {service.label}: render (copier), uv sync, generate, build")
        render(root, project_name=PROJECT_NAME, **answers)
        _uv(root, "sync", "--python", python_executable(workspace.python_version))
        generator.write_domains(root / "src" / PACKAGE / "domains", domains)
        import time

        start = time.perf_counter()
        _run([str(python), "-m", PACKAGE, "build"], root, env=env, timeout=3600)
        service.build_seconds = time.perf_counter() - start
        # Bytecode for everything, as an image would ship it (FIELD-NOTES: without .pyc a large
        # eager app starts ~0.7 s slower); the first timed start must not pay for compiling.
        _run([str(python), "-m", "compileall", "-q", "-j", "0", str(root / "src")], root, env=env)
        stamp_file.write_text(json.dumps(stamp))
    if database != "none":
        # As a deploy step would, before the service starts: production never migrates itself,
        # and its readiness stays 503 until the database is at the code's migration head.
        _run([str(python), "-m", PACKAGE, "db", "upgrade"], root, env=env)
    service.openapi_bytes = _openapi_size(root)
    return service


def _openapi_size(root: Path) -> int | None:
    build = root / "src" / PACKAGE / "_build"
    if (build / "openapi.json").is_file():
        return (build / "openapi.json").stat().st_size
    # Stored compressed (``build --compression``, on by default): the document's own size.
    compressed = build / "openapi.json.gz"
    return len(gzip.decompress(compressed.read_bytes())) if compressed.is_file() else None


def prepare_floor(workspace: Workspace, database: str, python: Path) -> None:
    """The floor of a variant, run in that variant's venv (the database floor needs its
    SQLAlchemy and aiosqlite). Each floor is a package of its own under ``floor/``."""
    root = workspace.root / "floor"
    package = FLOOR_PACKAGE if database == "none" else f"{FLOOR_PACKAGE}_{database}"
    floors.write_floor_package(root, package, database)
    _run([str(python), "-m", "compileall", "-q", str(root / package)], root)
    floor = Floor(database, root, package, python)
    if database != "none":
        url = f"sqlite+aiosqlite:///{_sqlite_file(root / f'{package}.sqlite3')}"
        floor.env[floors.DATABASE_URL_ENV] = url
    workspace.floors[database] = floor


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
    " 'fastapi-lazyrouter', 'anyio', 'sqlalchemy', 'aiosqlite', 'alembic']\n"
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
    databases: tuple[str, ...] = ("none",),
    python_version: str = "3.11",
    answers: Mapping[str, Any] | None = None,
    reuse: bool = False,
    lazyrouter: bool = True,
    log: Any = print,
) -> Workspace:
    """``databases``: the variants to render (keys of ``VARIANT_ANSWERS``); the first one's
    venv versions are the report's "service venv"."""
    root.mkdir(parents=True, exist_ok=True)
    workspace = Workspace(
        root=root, python_version=python_version, answers={"example_domain": False, **(answers or {})}
    )
    for database in databases:
        for count in counts:
            workspace.services[database, count] = prepare_service(workspace, database, count, reuse=reuse, log=log)
        first = workspace.services[database, counts[0]]
        workspace.versions[f"service-{database}"] = versions_of(first.python)
        prepare_floor(workspace, database, first.python)
    workspace.versions["service"] = workspace.versions[f"service-{databases[0]}"]
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
