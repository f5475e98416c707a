"""The default render served by real uvicorn over a real socket."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support import ENV_PREFIX
from support.servers import Instance


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
