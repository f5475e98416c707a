"""The default render served by real uvicorn over a real socket."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import free_port, project_python, uv_environment


def wait_until_ready(base_url: str, process: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}: {process.stderr.read() if process.stderr else ''}")
        try:
            if httpx.get(f"{base_url}/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail("server did not become ready")


@pytest.fixture
def server(default_project: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    process = subprocess.Popen(
        [str(project_python(default_project)), "-m", "acme_orders", "serve", "--port", str(port)],
        cwd=default_project,
        env=uv_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base_url, process)
        yield base_url, process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_serves_health_and_problem_details(server: tuple[str, subprocess.Popen[str]]) -> None:
    base_url, _ = server
    assert httpx.get(f"{base_url}/health/live").json() == {"status": "alive"}
    missing = httpx.get(f"{base_url}/no/such/thing")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["request_id"] == missing.headers["x-request-id"]
    created = httpx.post(f"{base_url}/items", json={"name": "mug", "price": "3.50"})
    assert created.status_code == 201
    assert httpx.get(f"{base_url}/items/{created.json()['id']}").json() == created.json()


@pytest.mark.slow
def test_sigterm_stops_cleanly(server: tuple[str, subprocess.Popen[str]]) -> None:
    _, process = server
    process.send_signal(signal.SIGTERM)
    # uvicorn drains, runs the lifespan shutdown, then re-raises the signal it caught, so a
    # clean stop ends with "terminated by SIGTERM" (143 in a shell), never by SIGKILL.
    assert process.wait(timeout=30) == -signal.SIGTERM
    log = process.stderr.read() if process.stderr else ""
    assert "service shutting down" in log
    assert "Application shutdown complete" in log
