"""Liveness and readiness probes: cheap, unauthenticated, left out of the public schema."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request

from .errors import UnavailableError
from .models import ApiModel

router = APIRouter(prefix="/health", include_in_schema=False)


class HealthStatus(ApiModel):
    status: Literal["alive", "ready"]


@router.get("/live")
async def live() -> HealthStatus:
    """The process answers; nothing else is checked, so a busy dependency never restarts it."""
    return HealthStatus(status="alive")


@router.get("/ready")
async def ready(request: Request) -> HealthStatus:
    """Ready once the lifespan resources are up, and no longer once shutdown begins."""
    lifecycle = request.app.state.lifecycle
    if not lifecycle.ready:
        raise UnavailableError(f"The service is {lifecycle.phase.value}.")
    return HealthStatus(status="ready")
