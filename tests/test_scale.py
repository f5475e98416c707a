"""A service grown to 200 domains with ``new-domain``, built, and served in production mode."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from support import PACKAGE, render, sync, uv
from support.servers import Instance, add_migration, prefix

DOMAINS = [f"domain_{index:03d}" for index in range(200)]


@pytest.mark.slow
def test_two_hundred_domains(tmp_path: Path) -> None:
    project = sync(render(tmp_path / "big"))
    uv(project, "run", "--no-sync", "python", "-m", PACKAGE, "new-domain", *DOMAINS)
    add_migration(project, tmp_path, "add 200 domains")
    built = uv(project, "run", "--no-sync", "python", "-m", PACKAGE, "build").stdout
    assert built.startswith("Built 201 domains, 605 routes")
    # Two of the scaffolded domains' own tests, as a user would run them.
    scaffolded_tests = ["tests/domains/domain_000", "tests/domains/domain_199"]
    uv(project, "run", "--no-sync", "pytest", "-q", "-p", "no:cacheprovider", *scaffolded_tests)

    with Instance(project, tmp_path) as instance, httpx.Client(base_url=instance.base_url) as client:
        paths = client.get("/openapi.json").json()["paths"]
        for domain in DOMAINS:
            assert f"/{prefix(domain)}" in paths
            assert f"/{prefix(domain)}/{{{domain}_id}}" in paths
        for domain in DOMAINS:
            response = client.get(f"/{prefix(domain)}")
            assert response.status_code == 200, (domain, response.text)
            assert response.json() == []
