"""Running the app under uvicorn: one worker, graceful drain, readiness off at SIGTERM."""

from __future__ import annotations

import gc
import resource
import signal
import socket
import time
from types import FrameType

import uvicorn
from fastapi import FastAPI

from .app import StartupError, create_app
from .lifespan import Lifecycle
from .logs import configure_logging
from .settings import ENV_PREFIX, Settings, load_settings

# Descriptors kept for what is not a client connection: the listening socket, the database
# pool and the outbound client's connections, logs, imported files.
RESERVED_DESCRIPTORS = 64
DEFAULT_MAX_CONNECTIONS = 10_000


def connection_limit(settings: Settings) -> int:
    """What ``MAX_CONNECTIONS`` says, or what the descriptor limit leaves: past it, accept()
    fails with EMFILE and nothing is served at all, so a 503 before it is the better answer."""
    if settings.max_connections is not None:
        return settings.max_connections
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return DEFAULT_MAX_CONNECTIONS
    # A quarter at most under a small limit, so that a few connections are still served.
    return max(1, min(DEFAULT_MAX_CONNECTIONS, soft - min(RESERVED_DESCRIPTORS, soft // 4)))


class Server(uvicorn.Server):
    """Stops reporting ready the moment a shutdown signal arrives.

    uvicorn runs the lifespan shutdown only after in-flight requests finish, which is too
    late for readiness: probes must fail while the drain is still under way.
    """

    # One Ctrl-C can arrive twice: the terminal signals the whole foreground process group,
    # and `uv run` may forward the SIGINT it got to its child as well. uvicorn takes a second
    # SIGINT for "force quit" (no drain, no lifespan shutdown), so only a later one counts.
    DUPLICATE_SIGINT_SECONDS = 1.0

    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle) -> None:
        super().__init__(config)
        self.lifecycle = lifecycle
        self._first_sigint: float | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        # What startup allocated lives as long as the process: keep it out of every later
        # collection (and, in a forked worker, out of copy-on-write).
        gc.freeze()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGINT:
            now = time.monotonic()
            if self._first_sigint is not None and now - self._first_sigint < self.DUPLICATE_SIGINT_SECONDS:
                return
            self._first_sigint = self._first_sigint or now
        self.lifecycle.begin_draining()
        super().handle_exit(sig, frame)


def serve(app: FastAPI, settings: Settings, *, host: str, port: int) -> None:
    check_bindable(host, port)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        workers=1,
        # h11, named so that installing httptools (uvicorn[standard]) does not switch parsers:
        # uvicorn enforces a request-head size limit with h11 only (docs/reliability.md).
        http="h11",
        root_path=settings.root_path,
        log_config=None,  # logging is configured once, by the service
        access_log=False,  # the timing middleware logs each request, with its id
        # uvicorn annotates int, but waits with asyncio, which takes fractional seconds.
        timeout_graceful_shutdown=settings.graceful_shutdown_timeout,  # type: ignore[arg-type]
        limit_concurrency=connection_limit(settings),
        backlog=settings.backlog,
        server_header=False,
    )
    Server(config, app.state.lifecycle).run()


def check_bindable(host: str, port: int) -> None:
    """Fail before the server starts, naming the setting, if ``host`` does not resolve:
    uvicorn would log a bare "Name or service not known" after the lifespan started."""
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) else "not a valid host name"
        raise StartupError(f"{ENV_PREFIX}HOST (or serve --host): {host!r} cannot be resolved ({reason})") from None


def reloadable_app() -> FastAPI:
    """The app factory ``serve --reload`` runs in each process it restarts."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.effective_log_format)
    return create_app(settings)


def serve_with_reload(settings: Settings, *, host: str, port: int) -> None:
    """Development only: restart on code changes (the app is re-created from the environment)."""
    check_bindable(host, port)
    uvicorn.run(
        f"{__name__}:{reloadable_app.__name__}",
        factory=True,
        reload=True,
        http="h11",
        root_path=settings.root_path,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=settings.graceful_shutdown_timeout,  # type: ignore[arg-type]
        limit_concurrency=connection_limit(settings),
        backlog=settings.backlog,
        server_header=False,
    )
