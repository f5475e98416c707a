"""Run commands, and uv in a rendered project, failing the test with their output."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import pytest

from .render import ENV_PREFIX

_SCRATCH_DATA_HOME = Path(tempfile.gettempdir()) / f"template-tests-data-{os.getpid()}"


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
