"""Process-wide resources, created once before traffic and closed after the last request.

To add a resource (a database pool, a cache client), give ``Resources`` a field, open the
resource in ``open_resources`` inside ``opening("<name>")`` and expose it through a
dependency in ``dependencies.py``; it is closed in reverse order on shutdown.

Failure policy: fail fast. A resource that cannot be opened stops the startup with a log
line naming it; uvicorn then exits with status 3 and the orchestrator restarts the process
(with back-off), while readiness never reported ready. Serving without the resource would
only turn every request that needs it into a 500.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass

import anyio.to_thread
import httpx2
from fastapi import FastAPI

from .routing.lazy import prepare_lazy_loading
from .settings import Settings

logger = logging.getLogger(__name__)


class Phase(enum.Enum):
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    STOPPED = "stopped"


class Lifecycle:
    """Where the app is in its life; readiness is true only while it is ``READY``."""

    def __init__(self) -> None:
        self.phase = Phase.STARTING

    @property
    def ready(self) -> bool:
        return self.phase is Phase.READY

    def begin_draining(self) -> None:
        """Called as soon as shutdown begins, so load balancers stop sending traffic."""
        if self.phase is not Phase.STOPPED:
            self.phase = Phase.DRAINING


@dataclass(frozen=True)
class Resources:
    http_client: httpx2.AsyncClient


class ResourceError(Exception):
    """A lifespan resource could not be opened; the service does not start."""

    def __init__(self, name: str, cause: BaseException) -> None:
        super().__init__(f"resource {name!r} could not be opened ({type(cause).__name__}: {cause})")
        self.name = name


@contextmanager
def opening(name: str) -> Iterator[None]:
    """Wraps the opening of one resource: a failure becomes a ``ResourceError`` naming it."""
    try:
        yield
    except Exception as exc:
        raise ResourceError(name, exc) from exc


@asynccontextmanager
async def open_resources(settings: Settings) -> AsyncIterator[Resources]:
    async with AsyncExitStack() as stack:
        with opening("http_client"):
            http_client = await stack.enter_async_context(
                httpx2.AsyncClient(timeout=settings.http_timeout, follow_redirects=False)
            )
        yield Resources(http_client=http_client)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    lifecycle: Lifecycle = app.state.lifecycle
    lifecycle.phase = Phase.STARTING
    async with AsyncExitStack() as stack:
        try:
            resources = await stack.enter_async_context(open_resources(app.state.settings))
        except ResourceError as exc:
            logger.critical("startup failed: %s; stopping", exc)
            raise
        app.state.resources = resources
        lifecycle.phase = Phase.READY
        logger.info("service ready")
        # Once ready, off the request path: pay what the first request to a cold domain
        # would otherwise pay on top of importing it (a worker thread, one-off imports).
        warm_up = asyncio.create_task(anyio.to_thread.run_sync(prepare_lazy_loading))
        try:
            yield
        finally:
            lifecycle.begin_draining()
            logger.info("service shutting down")
            await warm_up
    lifecycle.phase = Phase.STOPPED
