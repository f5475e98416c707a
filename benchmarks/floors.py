"""The floors: the smallest apps each service variant is compared with.

Each floor has typed settings (a pydantic-settings ``Settings`` read from the environment
and ``.env`` in the factory), the readiness route the harness polls (excluded from the
schema) and a lifespan, and nothing a real service would not need at its smallest (the
floor the issue and the mission define):

- ``none``: an empty FastAPI app with a trivial lifespan, the floor of the services
  rendered with ``database=none``;
- ``sqlite``: the same app plus the engine the ``database=sqlite`` service opens (SQLAlchemy
  asyncio over aiosqlite, ``create_async_engine`` in the lifespan, a ``SELECT 1``, disposed
  at shutdown), the floor of those services. It reads the file's URL from ``DATABASE_URL_ENV``.
"""

from __future__ import annotations

from pathlib import Path

DATABASE_URL_ENV = "BENCH_FLOOR_DATABASE_URL"

_SETTINGS = '''

class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BENCH_FLOOR_", env_file=".env", extra="ignore", frozen=True)

    environment: str = "production"
    log_level: str = "INFO"'''

_EMPTY = (
    '''"""The floor: an empty FastAPI app with typed settings, a trivial lifespan and the
readiness route the harness polls (excluded from the schema)."""

from contextlib import asynccontextmanager

from fastapi import FastAPI
from pydantic_settings import BaseSettings, SettingsConfigDict
'''
    + _SETTINGS
    + """


@asynccontextmanager
async def lifespan(app):
    yield


def create_app() -> FastAPI:
    app = FastAPI(lifespan=lifespan)
    app.state.settings = Settings()

    @app.get("/health/ready", include_in_schema=False)
    async def ready() -> dict[str, str]:
        return {"status": "ready"}

    return app
"""
)

_SQLITE = (
    '''"""The database floor: the empty FastAPI app (typed settings included) plus an async
SQLAlchemy engine (aiosqlite) opened in the lifespan, checked with SELECT 1, disposed at shutdown."""

import os
from contextlib import asynccontextmanager

from fastapi import FastAPI
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
'''
    + _SETTINGS
    + f'''


@asynccontextmanager
async def lifespan(app):
    engine = create_async_engine(os.environ["{DATABASE_URL_ENV}"])
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        app.state.engine = engine
        yield
    finally:
        await engine.dispose()


def create_app() -> FastAPI:
    app = FastAPI(lifespan=lifespan)
    app.state.settings = Settings()

    @app.get("/health/ready", include_in_schema=False)
    async def ready() -> dict[str, str]:
        return {{"status": "ready"}}

    return app
'''
)

APPS = {"none": _EMPTY, "sqlite": _SQLITE}


def write_floor_package(root: Path, package: str, database: str) -> Path:
    """``root/package`` with the floor of the services rendered with ``database``."""
    directory = root / package
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "__init__.py").write_text("", encoding="utf-8")
    (directory / "app.py").write_text(APPS[database], encoding="utf-8")
    return directory
