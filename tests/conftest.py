"""Shared helpers for the template's tests: render with real Copier, sync with real uv.

Rendering and syncing cost seconds, so projects that prove the same thing are shared: the
default project is rendered and synced once per session.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import copier
import pytest

from postgres import PostgresServer

TEMPLATE_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ANSWERS: dict[str, Any] = {"project_name": "Acme Orders"}
PACKAGE = "acme_orders"
ENV_PREFIX = "ACME_ORDERS_"
_SCRATCH_DATA_HOME = Path(tempfile.gettempdir()) / f"template-tests-data-{os.getpid()}"
# Left in a rendered file, these mean a template expression or tag was not rendered.
# CloudFormation's dynamic references (``{{resolve:...}}``) look alike and are meant.
JINJA_MARKUP = re.compile(r"(?<!\$)\{\{(?!resolve:)\s*[\w_]+.*?\}\}|\{%-?\s*\w+.*?-?%\}|\{#.*?#\}")


def render(destination: Path, **answers: Any) -> Path:
    """Render the template's working tree (uncommitted edits included) with Copier."""
    copier.run_copy(
        str(TEMPLATE_ROOT),
        destination,
        # Not the latest release tag, which Copier takes by default once one exists.
        vcs_ref="HEAD",
        data={**DEFAULT_ANSWERS, **answers},
        defaults=True,
        unsafe=True,
        quiet=True,
        skip_tasks=True,
    )
    return destination


def python_executable(version: str) -> str:
    """The interpreter for ``major.minor``: pyenv's, or one on PATH."""
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    for candidate in sorted((pyenv_root / "versions").glob(f"{version}.*/bin/python{version}"), reverse=True):
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(f"python{version}")
    if found:
        return found
    pytest.fail(f"Python {version} is not installed (looked in {pyenv_root}/versions and on PATH)")


def run(
    command: list[str], cwd: Path, *, env: Mapping[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run a command, failing the test with its output if it fails."""
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} exited with {result.returncode} in {cwd}\n"
            f"--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-6000:]}"
        )
    return result


def uv_environment() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("VIRTUAL_ENV", ENV_PREFIX))}
    # A rendered service keeps its default SQLite file under XDG_DATA_HOME: never the
    # developer's own.
    env["XDG_DATA_HOME"] = str(_SCRATCH_DATA_HOME)
    env.setdefault("UV_CACHE_DIR", str(Path.home() / ".cache" / "uv"))
    env["UV_NO_PROGRESS"] = "1"
    return env


def uv(project: Path, *arguments: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "uv", *arguments], cwd=project, env=uv_environment(), timeout=timeout)


def sync(project: Path, python_version: str = "3.11") -> Path:
    """``uv sync`` the project with the wanted interpreter (from pyenv: no downloads)."""
    uv(project, "sync", "--python", python_executable(python_version))
    return project


def project_python(project: Path) -> Path:
    """The project's own interpreter: run directly (not via ``uv run``) so signals reach it."""
    return project / ".venv" / "bin" / "python"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def leftover_markup(project: Path) -> list[str]:
    """Files of a rendered project that still contain Jinja markup."""
    found = []
    for path in project.rglob("*"):
        if not path.is_file() or ".venv" in path.parts or path.suffix == ".tmpl":
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if JINJA_MARKUP.search(text):
            found.append(str(path.relative_to(project)))
    return found


@pytest.fixture(scope="session")
def default_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The default render, synced once; tests must not change it (copy it to change it)."""
    project = render(tmp_path_factory.mktemp("default") / "acme-orders")
    yield sync(project)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server, started on first request (sessions that never ask pay nothing)
    and shared by the session: each test makes its own database with ``create_database``. A test
    that stops it, for an outage, must start it again before it ends (``try``/``finally``)."""
    with PostgresServer() as server:
        yield server
