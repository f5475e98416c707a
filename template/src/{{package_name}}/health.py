"""Liveness and readiness probes: cheap, unauthenticated, left out of the public schema.

Plain Starlette routes: probes need no validation or schema, and FastAPI's route setup
would add its first-route cost (tens of milliseconds) to every cold start.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .errors import UnavailableError

# Answered whatever the request's Host: probes come from the kubelet or the container
# runtime, addressed to the pod's IP.
PATHS = ("/health/live", "/health/ready")


async def live(request: Request) -> JSONResponse:
    """The process answers; nothing else is checked, so a busy dependency never restarts it."""
    return JSONResponse({"status": "alive"})


async def ready(request: Request) -> JSONResponse:
    """Ready once the lifespan resources are up and answer (a database that went away, or
    that lacks a migration, makes it not ready), and no longer once shutdown begins."""
    lifecycle = request.app.state.lifecycle
    if not lifecycle.ready:
        raise UnavailableError(f"The service is {lifecycle.phase.value}.")
    if await request.app.state.resources.check() is not None:
        # The reason is in the log: it can name hosts and versions a probe need not see.
        raise UnavailableError("A resource the service needs is unavailable.")
    # Still ready: the other domains serve, and every replica runs the same code. The names
    # tell the operator which domains answer 503 (the errors are in the log).
    lazy_domains = getattr(request.app.state, "lazy_domains", None)
    unavailable = sorted(lazy_domains.unavailable) if lazy_domains is not None else []
    return JSONResponse({"status": "ready", **({"unavailable_domains": unavailable} if unavailable else {})})


def routes() -> list[Route]:
    return [
        Route(PATHS[0], live, methods=["GET"], name="health_live"),
        Route(PATHS[1], ready, methods=["GET"], name="health_ready"),
    ]
