"""Mounting domain routers on the first request under their paths.

``LazyDomains`` is one route in the app's router that stands for every domain. It finds the
domain of a request with a segment-trie lookup (no scan of other domains' routes), imports
and mounts the domain once, off the event loop, then dispatches to that domain's routes
only. Its state lives on the route object, so two apps in one process are independent.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
import importlib
import logging
import math
import re
import time
import warnings
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
from fastapi import APIRouter, FastAPI
from fastapi.routing import iter_route_contexts
from starlette._utils import get_route_path
from starlette.convertors import Convertor
from starlette.datastructures import URLPath
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match, NoMatchFound, compile_path, replace_params
from starlette.types import Lifespan, Receive, Scope, Send

from ..background import yielding_to_requests
from .catalog import Catalog, DomainSpec, RouteSpec

logger = logging.getLogger(__name__)

# After a domain fails to import, requests to it are answered 503 for this long, doubling
# with each failed retry: a broken domain is not re-imported in a tight loop.
RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 60.0
# The files of the domains not mounted yet are verified this long after startup: not while
# the first readiness probes and requests arrive, which it would compete with (a domain's
# files are verified before it is imported anyway; this only reports a change early).
VERIFY_AFTER_SECONDS = 1.0


class DomainChanged(Exception):
    """The domain's code is not the code this process advertises (its routes or its files
    changed since the build)."""


@dataclass
class _Failure:
    error: str
    attempts: int
    retry_at: float


@dataclass(frozen=True)
class _Pattern:
    regex: re.Pattern[str]
    methods: frozenset[str]
    websocket: bool


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


def route_specs(routes: Sequence[BaseRoute]) -> tuple[RouteSpec, ...]:
    specs = []
    for context in iter_route_contexts(routes):
        methods = context.methods or ()
        specs.append(
            RouteSpec(
                path=context.path or "", methods=tuple(sorted(methods)), name=context.name or "", websocket=not methods
            )
        )
    return tuple(specs)


class LazyDomains(BaseRoute):
    """``verify``, given a domain's name, raises if the domain's files are not the ones
    the catalog was read from; it is called before each domain is imported and, after
    startup, for every domain not mounted yet (a build leaves the domains' files to it)."""

    def __init__(self, app: FastAPI, catalog: Catalog, verify: Callable[[str], None] | None = None) -> None:
        self._app = app
        self._domains = {domain.name: domain for domain in catalog.domains}
        self._index = catalog.path_index()
        self._verify = verify
        self._mounted: dict[str, list[BaseRoute]] = {}
        self._locks: dict[str, anyio.Lock] = {}
        self._patterns: dict[str, list[_Pattern]] = {}
        self._failures: dict[str, _Failure] = {}
        self._url_formats: dict[str, list[tuple[str, dict[str, Convertor[Any]], bool]]] | None = None

    @property
    def mounted(self) -> frozenset[str]:
        return frozenset(self._mounted)

    @property
    def unavailable(self) -> dict[str, str]:
        """The domains whose last import failed, with the error (for readiness and logs)."""
        return {name: failure.error for name, failure in self._failures.items()}

    @property
    def at_startup(self) -> tuple[DomainSpec, ...]:
        return tuple(domain for domain in self._domains.values() if domain.at_startup)

    @property
    def needs_lifespan(self) -> bool:
        """Whether ``lifespan()`` has work to do: domains to mount at startup, or files to verify."""
        return bool(self.at_startup) or self._verify is not None

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        """The answer the domain's own routes would give, so that the router's 405s and
        slash redirects are the same as eager's: from the routes once mounted, before that
        from the catalog's path templates (compiled with Starlette's own convertors)."""
        if scope["type"] not in ("http", "websocket"):
            return Match.NONE, {}
        path = get_route_path(scope)
        name = self._index.lookup(path)
        if name is None:
            return Match.NONE, {}
        routes = self._mounted.get(name)
        if routes is None:
            return self._catalog_match(name, scope, path), {}
        best = Match.NONE
        for route in routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return Match.FULL, {}
            if match is Match.PARTIAL:
                best = Match.PARTIAL
        return best, {}

    def _catalog_match(self, name: str, scope: Scope, path: str) -> Match:
        patterns = self._patterns.get(name)
        if patterns is None:
            patterns = self._patterns[name] = [
                _Pattern(compile_path(route.path)[0], frozenset(route.methods), route.websocket)
                for route in self._domains[name].routes
            ]
        best = Match.NONE
        for pattern in patterns:
            if pattern.websocket != (scope["type"] == "websocket") or not pattern.regex.match(path):
                continue
            if pattern.websocket or not pattern.methods or scope["method"] in pattern.methods:
                return Match.FULL
            best = Match.PARTIAL
        return best

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

    async def mount_all(self) -> list[BaseRoute]:
        """Mount every domain now (a SnapStart snapshot is prepared with all of them); their routes."""
        routes: list[BaseRoute] = []
        for name in self._domains:
            routes += await self._routes_of(name)
        return routes

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
            if routes is not None:
                return routes
            failure = self._failures.get(name)
            if failure is not None and time.monotonic() < failure.retry_at:
                raise _unavailable(failure)
            # In a worker thread, so that importing a large domain does not stall the event
            # loop; in an empty context, so that the module never sees (nor keeps) the
            # triggering request's context variables, its request id among them.
            outcome = await anyio.to_thread.run_sync(contextvars.Context().run, self._try_build_routes, name)
            if isinstance(outcome, BaseException):
                raise _unavailable(self._failed(name, outcome))
            if failure is not None:
                logger.warning("domain %r mounted after %d failed attempts", name, failure.attempts)
                del self._failures[name]
            self._mounted[name] = outcome
        return outcome

    def _try_build_routes(self, name: str) -> list[BaseRoute] | BaseException:
        # Caught here, on the worker thread: raised out of it, a ``SystemExit`` or
        # ``KeyboardInterrupt`` would end the event loop and the whole service with it.
        # A worker thread never receives signals, so either comes from the domain's code.
        try:
            with yielding_to_requests():
                return self.build_routes(self._domains[name])
        except BaseException as exc:
            return exc

    def _failed(self, name: str, exc: BaseException) -> _Failure:
        previous = self._failures.get(name)
        attempts = previous.attempts + 1 if previous else 1
        delay = min(RETRY_MAX_SECONDS, RETRY_FIRST_SECONDS * 2 ** (attempts - 1))
        error = f"{type(exc).__name__}: {exc}"
        failure = self._failures[name] = _Failure(error, attempts, time.monotonic() + delay)
        if previous is None or previous.error != error:
            # Once per distinct error: retries that fail alike add nothing to the log. A
            # changed domain's message says it all; another error needs its traceback.
            changed = isinstance(exc, DomainChanged)
            logger.error(
                "domain %r cannot be mounted%s; retrying in %.0f s at the earliest",
                name,
                f": {exc}" if changed else "",
                delay,
                exc_info=None if changed else exc,
            )
        return failure

    def build_routes(self, domain: DomainSpec) -> list[BaseRoute]:
        self._verify_files(domain.name)
        # A detached copy of the app's router carries everything an include inherits
        # (dependencies, responses, default response class, the dependency-overrides
        # provider), so the domain is built exactly as ``app.include_router`` would build
        # it, without touching the live route list that other requests are iterating.
        host = copy.copy(self._app.router)
        host.routes = []
        host.include_router(import_router(domain))
        # Walking the routes builds FastAPI's effective routes (prefixed, with their
        # matchers), so the first request does not pay for it; no request is made up.
        found = route_specs(host.routes)
        if set(found) != set(domain.routes):
            raise DomainChanged(
                f"domain {domain.name!r} no longer declares the routes this process serves and "
                "documents (its code changed since they were read); restart the service"
            )
        return host.routes

    def lifespan(self, original: Lifespan[Any]) -> Callable[[Any], Any]:
        """``original`` followed by mounting the domains that must be mounted at startup and
        entering their routers' lifespans, in the order and with the merged state of
        ``app.include_router`` (the app's state wins a name both set); then, off the
        request path, verifying the files of the domains not mounted yet."""

        @asynccontextmanager
        async def lifespan(app: Any) -> AsyncIterator[Mapping[str, Any] | None]:
            async with original(app) as original_state, AsyncExitStack() as stack:
                states = []
                for domain in self.at_startup:
                    outcome = await anyio.to_thread.run_sync(
                        contextvars.Context().run, self._try_build_routes, domain.name
                    )
                    if isinstance(outcome, BaseException):
                        raise RuntimeError(f"domain {domain.name!r} cannot be mounted at startup") from outcome
                    self._mounted[domain.name] = outcome
                    router = import_router(domain)
                    states.append(await stack.enter_async_context(router.lifespan_context(app)))
                if self._verify is not None:
                    verification = asyncio.create_task(self._refuse_changed_domains())
                    stack.push_async_callback(_cancelled, verification)
                if original_state is None and all(state is None for state in states):
                    yield None
                else:
                    merged: dict[str, Any] = {}
                    for state in reversed(states):
                        merged.update(state or {})
                    yield {**merged, **(original_state or {})}

        return lifespan

    async def _refuse_changed_domains(self) -> None:
        """Verify every domain not mounted yet, so that a domain whose files changed since
        the build is reported now (and answered 503 from now on), not at its first request."""
        # asyncio's own sleep: anyio's would import its asyncio backend on the event loop
        # right at startup (the warm-up thread imports it, off the loop).
        await asyncio.sleep(VERIFY_AFTER_SECONDS)
        changed = await anyio.to_thread.run_sync(self._changed_domains)
        for name, exc in changed.items():
            if name not in self._mounted:
                self._failed(name, exc)
        if changed:
            logger.critical(
                "the code of %d domain(s) differs from the build (%s); they answer 503 until the "
                "service is rebuilt and restarted",
                len(changed),
                ", ".join(sorted(changed)),
            )

    def _changed_domains(self) -> dict[str, DomainChanged]:
        changed = {}
        with yielding_to_requests():
            for name in [name for name in self._domains if name not in self._mounted]:
                try:
                    self._verify_files(name)
                except DomainChanged as exc:
                    changed[name] = exc
        return changed

    def _verify_files(self, name: str) -> None:
        if self._verify is None:
            return
        try:
            self._verify(name)
        except Exception as exc:
            raise DomainChanged(f"{exc}; rebuild and restart the service") from exc

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


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()  # a shutdown does not wait for the verification (a running one finishes)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _unavailable(failure: _Failure) -> HTTPException:
    # The service's handler answers it as problem+json with the request id; the error
    # itself is in the log, not in the response.
    retry_after = max(1, math.ceil(failure.retry_at - time.monotonic()))
    return HTTPException(
        503, "This part of the service cannot be loaded; retry later.", headers={"Retry-After": str(retry_after)}
    )
