"""Mounting domain routers on the first request under their paths.

``LazyDomains`` is one route in the app's router that stands for every domain. It finds the
domain of a request with a segment-trie lookup (no scan of other domains' routes), imports
and mounts the domain once, off the event loop, then dispatches to that domain's routes
only. Its state lives on the route object, so two apps in one process are independent.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import warnings
from collections.abc import Sequence
from typing import Any

import anyio
import anyio.to_thread
from fastapi import APIRouter, FastAPI
from starlette._utils import get_route_path
from starlette.convertors import Convertor
from starlette.datastructures import URLPath
from starlette.routing import BaseRoute, Match, NoMatchFound, compile_path, replace_params
from starlette.types import Receive, Scope, Send

from .catalog import DomainSpec
from .paths import PathIndex

# A request no route matches: building the domain's routes also builds their matchers.
_WARM_UP_SCOPE: Scope = {"type": "http", "method": "GET", "path": "/\x00", "root_path": "", "headers": []}


def prepare_lazy_loading() -> None:
    """Import what FastAPI imports when it builds its first route (``pydantic.v1``, to
    recognise old models: about 15 ms), so that the first domain mounted does not pay it."""
    with warnings.catch_warnings(), contextlib.suppress(ImportError):
        warnings.simplefilter("ignore")
        import pydantic.v1  # noqa: F401


def import_router(domain: DomainSpec) -> APIRouter:
    router = getattr(importlib.import_module(domain.module), domain.attribute)
    if not isinstance(router, APIRouter):
        raise TypeError(f"{domain.module}.{domain.attribute} is not an APIRouter")
    return router


def include_eagerly(app: FastAPI, domains: Sequence[DomainSpec]) -> None:
    for domain in domains:
        app.include_router(import_router(domain))


class LazyDomains(BaseRoute):
    def __init__(self, app: FastAPI, domains: Sequence[DomainSpec]) -> None:
        self._app = app
        self._domains = {domain.name: domain for domain in domains}
        self._index = PathIndex((route.path, domain.name) for domain in domains for route in domain.routes)
        self._mounted: dict[str, list[BaseRoute]] = {}
        self._locks: dict[str, anyio.Lock] = {}
        self._url_formats: dict[str, list[tuple[str, dict[str, Convertor[object]], bool]]] | None = None

    @property
    def mounted(self) -> frozenset[str]:
        return frozenset(self._mounted)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] not in ("http", "websocket"):
            return Match.NONE, {}
        if self._index.lookup(get_route_path(scope)) is None:
            return Match.NONE, {}
        return Match.FULL, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = self._index.lookup(get_route_path(scope))
        assert name is not None, "handle() is only called after matches()"
        routes = await self._routes_of(name)
        partial: tuple[BaseRoute, Scope] | None = None
        for route in routes:
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                scope.update(child_scope)
                await route.handle(scope, receive, send)
                return
            if match is Match.PARTIAL and partial is None:
                partial = (route, child_scope)
        if partial is not None:
            route, child_scope = partial
            scope.update(child_scope)
            await route.handle(scope, receive, send)
            return
        await self._app.router.default(scope, receive, send)

    def routes_for(self, scope: Scope) -> list[BaseRoute]:
        """The routes of the domain the path belongs to, if it is mounted (for a 405's ``Allow``)."""
        name = self._index.lookup(get_route_path(scope))
        return self._mounted.get(name, []) if name is not None else []

    async def _routes_of(self, name: str) -> list[BaseRoute]:
        routes = self._mounted.get(name)
        if routes is not None:
            return routes
        lock = self._locks.setdefault(name, anyio.Lock())
        async with lock:
            routes = self._mounted.get(name)
            if routes is None:
                # In a worker thread: importing a large domain must not stall the event loop.
                routes = await anyio.to_thread.run_sync(self.build_routes, self._domains[name])
                self._mounted[name] = routes
        return routes

    def build_routes(self, domain: DomainSpec) -> list[BaseRoute]:
        # A detached copy of the app's router carries everything an include inherits
        # (dependencies, responses, default response class, the dependency-overrides
        # provider), so the domain is built exactly as ``app.include_router`` would build
        # it, without touching the live route list that other requests are iterating.
        host = copy.copy(self._app.router)
        host.routes = []
        host.include_router(import_router(domain))
        for route in host.routes:
            route.matches(dict(_WARM_UP_SCOPE))
        return host.routes

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        # Answered from the catalog, so ``url_for`` works for domains not loaded yet.
        if self._url_formats is None:
            self._url_formats = {}
            for domain in self._domains.values():
                for route in domain.routes:
                    _, path_format, convertors = compile_path(route.path)
                    self._url_formats.setdefault(route.name, []).append((path_format, convertors, route.websocket))
        for path_format, convertors, websocket in self._url_formats.get(name, ()):
            if set(path_params) != set(convertors):
                continue
            path, _ = replace_params(path_format, convertors, dict(path_params))
            return URLPath(path=path, protocol="websocket" if websocket else "http")
        raise NoMatchFound(name, path_params)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(domains={len(self._domains)}, mounted={len(self._mounted)})"
