"""Real uvicorn processes of a rendered project, for the tests that need a real server.

An instance runs in production mode (the prebuilt manifest and OpenAPI document, lazy
routing, JSON logs) unless told otherwise. The reliability tests render their own copy of
the default project (the shared one must stay untouched), add test-only domains to it as a
user would (``new-domain``, then the user's own router code) and build it. Logs go to a
file, never to a pipe: a busy server would block on a full pipe nobody reads.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import httpx
import pytest

from .render import ENV_PREFIX, PACKAGE, render
from .run import free_port, project_python, sync, uv, uv_environment

# A test-only domain: the user's own code in the test's private render. Importing it takes
# ``import_delay`` seconds (a large domain, made slow on purpose so a burst of first
# requests really overlaps the import), and its handler sleeps as asked (a slow request
# still in flight when a drain begins). Each answer names the route object that served it:
# a domain mounted twice would show two different ones.
DOMAIN_ROUTER = '''\
"""Test-only domain {name}: a slow import and a handler that sleeps."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Annotated

from fastapi import APIRouter, Query, Request

from ...models import ApiModel

time.sleep({import_delay})

router = APIRouter(prefix="/{prefix}", tags=["{name}"])


class Answer(ApiModel):
    domain: str
    route: int
    pid: int
    slept: float


@router.get("/sleep")
async def sleep(
    request: Request, seconds: Annotated[float, Query(ge=0, le=30)] = 0
) -> Answer:
    await asyncio.sleep(seconds)
    return Answer(domain="{name}", route=id(request.scope["route"]), pid=os.getpid(), slept=seconds)
'''


def prepare_project(
    destination: Path, domains: Mapping[str, float] = {}, scaffolded: tuple[str, ...] = (), **answers: object
) -> Path:
    """Render (default answers unless given) and sync the project, add ``domains`` (name ->
    import delay) with the test router above and ``scaffolded`` domains as ``new-domain``
    makes them, then build."""
    project = sync(render(destination, **answers))
    names = [*domains, *scaffolded]
    if names:
        uv(project, "run", "--no-sync", "python", "-m", PACKAGE, "new-domain", *names)
    if scaffolded:
        add_migration(project, destination.parent, f"add {' and '.join(scaffolded)}")
    for name, import_delay in domains.items():
        router = project / "src" / PACKAGE / "domains" / name / "router.py"
        router.write_text(DOMAIN_ROUTER.format(name=name, prefix=prefix(name), import_delay=import_delay))
        # The scaffolded tests are for the scaffolded router this test replaced.
        shutil.rmtree(project / "tests" / "domains" / name)
    uv(project, "run", "--no-sync", "python", "-m", PACKAGE, "build")
    return project


def add_migration(project: Path, scratch: Path, message: str) -> None:
    """The step ``new-domain`` prints next (with a database): a migration for the new tables,
    written against a scratch database at the latest revision."""
    if not (project / "src" / PACKAGE / "migrations").is_dir():
        return
    env = {f"{ENV_PREFIX}ENVIRONMENT": "development", f"{ENV_PREFIX}DATABASE_URL": sqlite_url(scratch)}
    for command in (["upgrade"], ["revision", "-m", message]):
        result = run_service(project, "db", *command, cwd=scratch, env=env)
        assert result.returncode == 0, result.stderr


def prefix(domain: str) -> str:
    return domain.replace("_", "-")


def sqlite_url(directory: Path) -> str:
    """The database of the instances whose logs go to ``directory`` (they share it, as
    replicas share theirs)."""
    return f"sqlite:///{directory / 'service.sqlite3'}"


class Instance:
    """One ``python -m <package> serve`` process on its own port (a pod, in Kubernetes terms).

    As a deployment does, it first runs ``db upgrade`` (production never migrates by itself);
    unless told otherwise, the database is a SQLite file next to the logs.
    """

    def __init__(
        self, project: Path, log_directory: Path, *, env: Mapping[str, str] | None = None, migrate: bool = True
    ) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_directory / f"instance-{self.port}.log"
        environment = {
            **uv_environment(),
            f"{ENV_PREFIX}ENVIRONMENT": "production",
            f"{ENV_PREFIX}ALLOWED_HOSTS": '["127.0.0.1"]',
            f"{ENV_PREFIX}LOG_FORMAT": "json",
            f"{ENV_PREFIX}DATABASE_URL": sqlite_url(log_directory),
            **(env or {}),
        }
        if not (project / "src" / PACKAGE / "migrations").is_dir():
            del environment[f"{ENV_PREFIX}DATABASE_URL"]
        elif migrate:
            migrated = run_service(project, "db", "upgrade", cwd=log_directory, env=environment)
            assert migrated.returncode == 0, migrated.stderr
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                [str(project_python(project)), "-m", PACKAGE, "serve", "--port", str(self.port)],
                cwd=log_directory,  # no .env there: the environment says everything
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"instance on {self.port} exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            try:
                if httpx.get(f"{self.base_url}/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        pytest.fail(f"instance on {self.port} did not become ready:\n{self.log()[-4000:]}")

    def __enter__(self) -> Instance:
        """Wait until ready; leaving the block stops the process whatever happened."""
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        """Clean-up: kill the process if it still runs."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_entries(self) -> list[dict]:
        """The JSON log lines (anything else, e.g. a traceback printed raw, is kept as text)."""
        entries = []
        for line in self.log().splitlines():
            try:
                entries.append(json.loads(line))
            except ValueError:
                entries.append({"message": line, "level": "RAW"})
        return entries

    def problems_in_log(self) -> list[dict]:
        """Log entries at WARNING or above, and anything that is not a JSON line."""
        return [entry for entry in self.log_entries() if entry.get("level") in ("WARNING", "ERROR", "CRITICAL", "RAW")]


def run_service(
    project: Path,
    *arguments: str,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float = 60,
    wrapper: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m <package> ...`` in ``cwd`` with exactly the settings in ``env``
    (``wrapper`` runs it through another command, e.g. ``setpriv``)."""
    environment = {key: value for key, value in uv_environment().items() if not key.startswith(ENV_PREFIX)}
    environment.update(env)
    return subprocess.run(
        [*wrapper, str(project_python(project)), "-m", PACKAGE, *arguments],
        cwd=cwd,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
