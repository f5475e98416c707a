"""The default render served by real uvicorn over a real socket."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import ENV_PREFIX, PACKAGE, free_port, uv_environment
from servers import Instance


@pytest.fixture
def server(default_project: Path, tmp_path: Path) -> Iterator[Instance]:
    # Development mode: the default render has no build, as right after `copier copy`.
    with Instance(default_project, tmp_path, env={f"{ENV_PREFIX}ENVIRONMENT": "development"}) as instance:
        yield instance


@pytest.mark.slow
def test_serves_health_and_problem_details(server: Instance) -> None:
    base_url = server.base_url
    assert httpx.get(f"{base_url}/health/live").json() == {"status": "alive"}
    missing = httpx.get(f"{base_url}/no/such/thing")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["request_id"] == missing.headers["x-request-id"]
    created = httpx.post(f"{base_url}/items", json={"name": "mug", "price": "3.50"})
    assert created.status_code == 201
    assert httpx.get(f"{base_url}/items/{created.json()['id']}").json() == created.json()


@pytest.mark.slow
def test_sigterm_stops_cleanly(server: Instance) -> None:
    server.terminate()
    # uvicorn drains, runs the lifespan shutdown, then re-raises the signal it caught, so a
    # clean stop ends with "terminated by SIGTERM" (143 in a shell), never by SIGKILL.
    assert server.process.wait(timeout=30) == -signal.SIGTERM
    messages = [entry["message"] for entry in server.log_entries()]
    assert "service shutting down" in messages
    assert "Application shutdown complete." in messages


def serve_in_a_terminal(project: Path, directory: Path, *arguments: str) -> tuple[subprocess.Popen[str], str]:
    """``uv run python -m <package> serve`` as started from a shell: a process group of its
    own (the terminal's foreground group, which Ctrl-C signals as a whole)."""
    port = free_port()
    environment = {
        **uv_environment(),
        f"{ENV_PREFIX}ENVIRONMENT": "development",
        f"{ENV_PREFIX}LOG_FORMAT": "json",
        f"{ENV_PREFIX}DATABASE_URL": f"sqlite:///{directory / 'service.sqlite3'}",
    }
    command = ["uv", "run", "--project", str(project), "python", "-m", PACKAGE, "serve", "--port", str(port)]
    process = subprocess.Popen(
        [sys.executable, "-m", *command, *arguments],
        cwd=directory,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{base_url}/health/ready", timeout=1).status_code == 200:
                return process, base_url
        except httpx.TransportError:
            time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    _, stderr = process.communicate(timeout=30)
    pytest.fail(f"serve {' '.join(arguments)} did not become ready:\n{stderr[-4000:]}")


def ctrl_c(process: subprocess.Popen[str]) -> str:
    """What a terminal does on Ctrl-C: SIGINT to the whole foreground group. Returns stderr."""
    os.killpg(process.pid, signal.SIGINT)
    try:
        _, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    return stderr


@pytest.mark.slow
@pytest.mark.parametrize("mode", [(), ("--reload",)], ids=["serve", "serve-reload"])
def test_ctrl_c_stops_cleanly_without_a_traceback(default_project: Path, tmp_path: Path, mode: tuple[str, ...]) -> None:
    process, base_url = serve_in_a_terminal(default_project, tmp_path, *mode)
    request_id = "ctrl-c-test-request"
    assert httpx.get(f"{base_url}/health/live", headers={"x-request-id": request_id}).status_code == 200
    stderr = ctrl_c(process)
    assert process.returncode == 0, stderr[-4000:]
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr[-4000:]
    messages = [json.loads(line)["message"] for line in stderr.splitlines() if line.startswith("{")]
    assert "service shutting down" in messages and "Application shutdown complete." in messages
    # Each request is logged once, by the service's access logger (with its id), in either
    # mode: `--reload` used to add uvicorn's own access line.
    mentions = [line for line in stderr.splitlines() if request_id in line]
    assert len(mentions) == 1, mentions
    assert json.loads(mentions[0])["logger"] == "access"
