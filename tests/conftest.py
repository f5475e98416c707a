"""Fixtures of the template's tests; the helpers they share are in ``tests/support/``.

Rendering and syncing cost seconds, so projects that prove the same thing are shared: the
default project is rendered and synced once per session.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.postgres import PostgresServer
from support.render import render
from support.run import sync


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
