"""Dependencies shared by every domain, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

import httpx2
from fastapi import Depends, Request

from .settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_http_client(request: Request) -> httpx2.AsyncClient:
    return request.app.state.resources.http_client


AppSettings = Annotated[Settings, Depends(get_settings)]
HttpClient = Annotated[httpx2.AsyncClient, Depends(get_http_client)]
