"""A service grown to 200 domains with ``new-domain``, built, and served in production mode."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from conftest import ENV_PREFIX, free_port, project_python, render, sync, uv, uv_environment
from test_serve import wait_until_ready

DOMAINS = [f"domain_{index:03d}" for index in range(200)]


@pytest.mark.slow
def test_two_hundred_domains(tmp_path: Path) -> None:
    project = sync(render(tmp_path / "big"))
    uv(project, "run", "--no-sync", "python", "-m", "acme_orders", "new-domain", *DOMAINS)
    built = uv(project, "run", "--no-sync", "python", "-m", "acme_orders", "build").stdout
    assert built.startswith("Built 201 domains, 605 routes")
    # Two of the scaffolded domains' own tests, as a user would run them.
    uv(
        project,
        "run",
        "--no-sync",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/domains/domain_000",
        "tests/domains/domain_199",
    )

    port = free_port()
    env = {**uv_environment(), f"{ENV_PREFIX}ENVIRONMENT": "production"}
    process = subprocess.Popen(
        [str(project_python(project)), "-m", "acme_orders", "serve", "--port", str(port)],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base_url, process)
        with httpx.Client(base_url=base_url) as client:
            paths = client.get("/openapi.json").json()["paths"]
            for domain in DOMAINS:
                prefix = "/" + domain.replace("_", "-")
                assert prefix in paths
                assert f"{prefix}/{{{domain}_id}}" in paths
            for domain in DOMAINS:
                prefix = "/" + domain.replace("_", "-")
                response = client.get(prefix)
                assert response.status_code == 200, (domain, response.text)
                assert response.json() == []
    finally:
        process.kill()
        process.wait()
