"""Running the app under uvicorn: one worker, graceful drain, readiness off at SIGTERM."""

from __future__ import annotations

import gc
import socket
from types import FrameType

import uvicorn
from fastapi import FastAPI

from .app import create_app
from .lifespan import Lifecycle
from .logs import configure_logging
from .settings import Settings, load_settings


class Server(uvicorn.Server):
    """Stops reporting ready the moment a shutdown signal arrives.

    uvicorn runs the lifespan shutdown only after in-flight requests finish, which is too
    late for readiness: probes must fail while the drain is still under way.
    """

    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle) -> None:
        super().__init__(config)
        self.lifecycle = lifecycle

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        # What startup allocated lives as long as the process: keep it out of every later
        # collection (and, in a forked worker, out of copy-on-write).
        gc.freeze()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.lifecycle.begin_draining()
        super().handle_exit(sig, frame)


def serve(app: FastAPI, settings: Settings, *, host: str, port: int) -> None:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        workers=1,
        root_path=settings.root_path,
        log_config=None,  # logging is configured once, by the service
        access_log=False,  # the timing middleware logs each request, with its id
        # uvicorn annotates int, but waits with asyncio, which takes fractional seconds.
        timeout_graceful_shutdown=settings.graceful_shutdown_timeout,  # type: ignore[arg-type]
        server_header=False,
    )
    Server(config, app.state.lifecycle).run()


def reloadable_app() -> FastAPI:
    """The app factory ``serve --reload`` runs in each process it restarts."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.effective_log_format)
    return create_app(settings)


def serve_with_reload(settings: Settings, *, host: str, port: int) -> None:
    """Development only: restart on code changes (the app is re-created from the environment)."""
    uvicorn.run(
        f"{__name__}:{reloadable_app.__name__}",
        factory=True,
        reload=True,
        root_path=settings.root_path,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=settings.graceful_shutdown_timeout,  # type: ignore[arg-type]
        server_header=False,
    )
