"""Discovering the domains and validating their routes.

A domain is a package under ``domains/`` whose ``router`` module defines ``router``, an
``APIRouter`` carrying the domain's prefix. Scanning imports every domain once; the build
step runs it and stores the result, so production never has to.
"""

from __future__ import annotations

import ast
import contextvars
import importlib
import inspect
import pkgutil
import traceback
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from fastapi import APIRouter
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Host, Mount

from .paths import PathIndex, may_overlap, template_segments

# What a router without ``lifespan=`` has; with another FastAPI, every lifespan counts as declared.
_DEFAULT_LIFESPANS: tuple[type, ...]
try:
    from fastapi.routing import _DefaultLifespan
except ImportError:  # pragma: no cover
    _DEFAULT_LIFESPANS = ()
else:
    _DEFAULT_LIFESPANS = (_DefaultLifespan,)

ROUTER_MODULE = "router"
# Context variables the standard library sets on first use in whatever context it runs in
# (``decimal.getcontext()``): every request gets its own just the same, so they are no state
# a domain's import leaves behind.
_PER_CONTEXT_DEFAULTS = frozenset({"decimal_context"})
ROUTER_ATTRIBUTE = "router"
SERVICE_ROUTES = "the service's own routes"


@dataclass(frozen=True)
class RouteSpec:
    path: str
    methods: tuple[str, ...]
    name: str
    websocket: bool = False


@dataclass(frozen=True)
class DomainSpec:
    name: str
    module: str
    attribute: str
    prefix: str
    # A tuple once scanned; a build's catalog decodes each domain's routes on first use.
    routes: Sequence[RouteSpec]
    # Mounted when the app starts rather than on first use: its router has a lifespan
    # (eager runs it at startup) or routes whose own ``matches()`` decides what they serve.
    at_startup: bool = False


@dataclass(frozen=True)
class Catalog:
    domains: tuple[DomainSpec, ...]
    # Each domain's entries in the path index (``PathIndex.reduced``), which a build stores;
    # computed from the routes when not given.
    index: Mapping[str, Sequence[str]] | None = field(default=None, compare=False, hash=False)

    @property
    def route_count(self) -> int:
        return sum(len(domain.routes) for domain in self.domains)

    def path_index(self) -> PathIndex:
        index = self.index if self.index is not None else self.reduced_index()
        return PathIndex((template, name) for name, templates in index.items() for template in templates)

    def reduced_index(self) -> dict[str, list[str]]:
        return PathIndex((route.path, domain.name) for domain in self.domains for route in domain.routes).reduced()


@dataclass(frozen=True)
class Location:
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True)
class RouteProblem:
    location: Location
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class RouteValidationError(Exception):
    """The domains' routes cannot be served as they are; every problem is listed."""

    def __init__(self, problems: Sequence[RouteProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


@dataclass(frozen=True)
class _Declared:
    """A route as declared in the source, for validation messages."""

    domain: str
    spec: RouteSpec
    location: Location


def discover_domains(domains_package: str) -> list[str]:
    package = importlib.import_module(domains_package)
    return sorted(
        module.name
        for module in pkgutil.iter_modules(package.__path__)
        if module.ispkg and not module.name.startswith("_")
    )


def scan(domains_package: str, reserved: Iterable[RouteSpec] = ()) -> Catalog:
    """Import every domain and validate its routes against each other and ``reserved``
    (the service's own routes, such as health and docs)."""
    problems: list[RouteProblem] = []
    domains: list[DomainSpec] = []
    declared: list[_Declared] = [_Declared("the service", spec, Location(SERVICE_ROUTES, 0)) for spec in reserved]
    router_locations: dict[str, Location] = {}

    # Imported the way lazy routing imports them: on a worker thread, in an empty context.
    # A domain that needs the main thread (``signal.signal``), expects a running event loop
    # or sets a context variable while being imported then fails here, with its line,
    # rather than differently on its first request.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="domain-import") as worker:
        for name in discover_domains(domains_package):
            module_name = f"{domains_package}.{name}.{ROUTER_MODULE}"
            module, error = worker.submit(import_isolated, module_name).result()
            if isinstance(error, BaseException):
                # A KeyboardInterrupt raised on the worker thread, which never receives
                # signals, is the domain's own (a Ctrl-C lands on this thread, in
                # ``result()``, and ends the build).
                error = _import_problem(module_name, error)
            if error is not None:
                problems.append(error)
                continue
            assert module is not None
            router = getattr(module, ROUTER_ATTRIBUTE, None)
            router_location = _router_location(module)
            if not isinstance(router, APIRouter):
                problems.append(
                    RouteProblem(router_location, f"{module_name} must define `{ROUTER_ATTRIBUTE} = APIRouter(...)`")
                )
                continue
            refused = _unsupported(name, router, router_location)
            problems.extend(refused)

            contexts = list(iter_route_contexts(router.routes))
            routes = [
                (_route_spec(context), _endpoint_location(context.endpoint, router_location))
                for context in contexts
                if not isinstance(context.original_route, Mount | Host)  # refused above
            ]
            if not routes and not refused:
                problems.append(RouteProblem(router_location, f"domain {name!r} has no routes"))
                continue
            router_locations[name] = router_location
            declared.extend(_Declared(name, spec, location) for spec, location in routes)
            domains.append(
                DomainSpec(
                    name=name,
                    module=module_name,
                    attribute=ROUTER_ATTRIBUTE,
                    prefix=router.prefix,
                    routes=tuple(spec for spec, _ in routes),
                    at_startup=declares_lifespan(router.lifespan_context) or _custom_matching(contexts),
                )
            )

    problems.extend(_prefix_overlaps(domains, router_locations))
    problems.extend(_route_conflicts(declared))
    if problems:
        raise RouteValidationError(problems)
    return Catalog(tuple(domains))


def import_isolated(module_name: str) -> tuple[ModuleType | None, RouteProblem | BaseException | None]:
    """Import ``module_name`` in an empty context; returns the module, or the problem (a
    ``KeyboardInterrupt`` is returned as is: only the caller knows whether it is a Ctrl-C)."""
    context = contextvars.Context()
    try:
        module = context.run(importlib.import_module, module_name)
    except KeyboardInterrupt as exc:
        return None, exc
    except BaseException as exc:  # even ``sys.exit()`` in a domain must fail the build, not end it
        return None, _import_problem(module_name, exc)
    names = ", ".join(sorted(variable.name for variable in context if variable.name not in _PER_CONTEXT_DEFAULTS))
    if names:
        module = importlib.import_module(module_name)
        return None, RouteProblem(
            _call_location("set", _router_location(module)),
            f"{module_name} sets context variables while it is imported ({names}); a lazily "
            "mounted domain is imported in a fresh context, where requests would not see them: "
            "set them in a dependency or in lifespan.py",
        )
    return module, None


def declares_lifespan(lifespan: object) -> bool:
    """Whether a router (or one it includes) was given ``lifespan=``: FastAPI merges every
    included router's lifespan into the app's, so eager routing runs it at startup."""
    if isinstance(lifespan, _DEFAULT_LIFESPANS):
        return False  # only runs ``on_startup``/``on_shutdown``, refused on their own
    if not callable(lifespan):
        return True
    merged = inspect.unwrap(lifespan)
    if getattr(merged, "__name__", "") == "merged_lifespan" and getattr(merged, "__closure__", None):
        return any(declares_lifespan(cell.cell_contents) for cell in merged.__closure__)
    return True


def _custom_matching(contexts: Sequence[object]) -> bool:
    """Routes that override ``matches()`` can refuse a request their path matches: only
    their own code can tell, so the domain is mounted before the first request."""
    return any(
        isinstance(route := getattr(context, "original_route", None), APIRoute)
        and type(route).matches is not APIRoute.matches
        for context in contexts
    )


def _unsupported(name: str, router: APIRouter, location: Location) -> list[RouteProblem]:
    """What a domain router may not do, because lazy and eager routing would differ."""
    problems = []
    if getattr(router, "on_startup", None) or getattr(router, "on_shutdown", None):
        problems.append(
            RouteProblem(
                location,
                f"domain {name!r} declares startup or shutdown handlers; process-wide resources belong in lifespan.py",
            )
        )
    mounts = 0
    for route in _included_routes(router):
        if isinstance(route, Mount):
            mounts += 1
            problems.append(
                RouteProblem(
                    _call_location("mount", location, mounts),
                    f"domain {name!r} mounts an application at {route.path!r}: FastAPI serves a mount of an "
                    f"included router without the router's prefix (at {route.path!r}, not "
                    f"{router.prefix + route.path!r}), outside the paths the domain owns, where lazy routing "
                    "cannot find it; mount it on the app in app.py, or serve it from a route",
                )
            )
        elif isinstance(route, Host):
            problems.append(
                RouteProblem(
                    _call_location("host", location),
                    f"domain {name!r} routes by host ({route.host!r}): lazy routing finds a domain from the "
                    "path alone; route by host on the app in app.py",
                )
            )
    if any(getattr(included, "_low_priority_routes", None) for included in _routers(router)):
        problems.append(
            RouteProblem(
                _call_location("frontend", location),
                f"domain {name!r} registers routes outside `router.routes` (router.frontend(...)); "
                "FastAPI tries them after every other route of the app, which lazy routing cannot "
                "reproduce for one domain; serve the frontend from app.py",
            )
        )
    return problems


def _routers(router: APIRouter) -> Iterator[APIRouter]:
    yield router
    for route in router.routes:
        included = getattr(route, "original_router", None)  # FastAPI keeps included routers as a tree
        if isinstance(included, APIRouter):
            yield from _routers(included)


def _included_routes(router: APIRouter) -> Iterator[object]:
    for included in _routers(router):
        yield from (route for route in included.routes if getattr(route, "original_router", None) is None)


def _call_location(method: str, fallback: Location, occurrence: int = 1) -> Location:
    """The line of the ``occurrence``-th ``<something>.<method>(...)`` call in the file."""
    try:
        tree = ast.parse(Path(fallback.file).read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return fallback
    lines = sorted(
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == method
    )
    return Location(fallback.file, lines[occurrence - 1]) if len(lines) >= occurrence else fallback


def _route_spec(context: object) -> RouteSpec:
    methods = getattr(context, "methods", None) or ()
    return RouteSpec(
        path=str(getattr(context, "path", "")),
        methods=tuple(sorted(methods)),
        name=str(getattr(context, "name", "")),
        websocket=not methods,
    )


def _prefix_overlaps(domains: Sequence[DomainSpec], locations: dict[str, Location]) -> list[RouteProblem]:
    """Two domains may not share a prefix, nor may one prefix extend another: each request
    path must lead to exactly one domain without importing any."""
    by_prefix: dict[tuple[str, ...], list[DomainSpec]] = defaultdict(list)
    for domain in domains:
        if domain.prefix:
            by_prefix[template_segments(domain.prefix)].append(domain)
    problems = []
    for segments, owners in by_prefix.items():
        first = owners[0]
        for domain in owners[1:]:
            problems.append(
                RouteProblem(
                    locations[domain.name],
                    f"domain {domain.name!r} has the same prefix {domain.prefix!r} as domain {first.name!r}",
                )
            )
        for length in range(1, len(segments)):
            for outer in by_prefix.get(segments[:length], ()):
                problems.append(
                    RouteProblem(
                        locations[first.name],
                        f"prefix {first.prefix!r} of domain {first.name!r} lies inside "
                        f"prefix {outer.prefix!r} of domain {outer.name!r}",
                    )
                )
    return problems


def _route_conflicts(declared: Sequence[_Declared]) -> list[RouteProblem]:
    """Duplicate routes anywhere, and routes of different domains that could both match
    one request path (lazy dispatch must know the domain from the path alone)."""
    problems = []
    first_by_key: dict[tuple[str, tuple[str, ...]], _Declared] = {}
    for route in declared:
        shape = template_segments(route.spec.path)
        for method in route.spec.methods or ("WEBSOCKET",):
            key = (method, shape)
            first = first_by_key.setdefault(key, route)
            if first is not route:
                problems.append(
                    RouteProblem(
                        route.location,
                        f"duplicate route {method} {route.spec.path} (domain {route.domain!r}); "
                        f"already declared at {first.location} (domain {first.domain!r})",
                    )
                )

    # Compare only routes that share a first segment (or have a parameter there).
    buckets: dict[str, list[tuple[tuple[str, ...], _Declared]]] = defaultdict(list)
    for route in declared:
        shape = template_segments(route.spec.path)
        buckets[shape[0] if shape and "{" not in shape[0] else "{"].append((shape, route))
    reported: set[frozenset[int]] = set()
    for bucket, members in buckets.items():
        candidates = members + (buckets.get("{", []) if bucket != "{" else [])
        for shape, route in members:
            for other_shape, other in candidates:
                pair = frozenset((id(route), id(other)))
                if other.domain == route.domain or pair in reported:
                    continue
                if shape == other_shape and set(route.spec.methods) & set(other.spec.methods):
                    continue  # reported as a duplicate above
                if may_overlap(shape, other_shape):
                    reported.add(pair)
                    # Reported where the code to change is: in a domain, not the service.
                    first, second = (other, route) if route.location.file == SERVICE_ROUTES else (route, other)
                    problems.append(
                        RouteProblem(
                            first.location,
                            f"route {first.spec.path} (domain {first.domain!r}) can match the same "
                            f"requests as {second.spec.path} at {second.location} (domain {second.domain!r})",
                        )
                    )
    return problems


def _import_problem(module_name: str, exc: BaseException) -> RouteProblem:
    if isinstance(exc, SyntaxError) and exc.filename:
        return RouteProblem(Location(exc.filename, exc.lineno or 0), f"SyntaxError: {exc.msg}")
    frames = traceback.extract_tb(exc.__traceback__)
    package_root = module_name.split(".")[0]
    # The innermost frame in the service's own code is where the mistake is.
    own = [frame for frame in frames if f"/{package_root}/" in frame.filename.replace("\\", "/")]
    frame = (own or frames)[-1] if (own or frames) else None
    location = Location(frame.filename, frame.lineno or 0) if frame else Location(module_name, 0)
    message = f"cannot import {module_name}: {type(exc).__name__}: {exc}"
    if "main thread" in str(exc) or "event loop" in str(exc):
        message += (
            " (a domain is imported on a worker thread, with no event loop, as lazy routing imports it: "
            "do this in lifespan.py)"
        )
    return RouteProblem(location, message)


def _endpoint_location(endpoint: object, fallback: Location) -> Location:
    function = inspect.unwrap(endpoint) if callable(endpoint) else None
    code = getattr(function, "__code__", None)
    if code is None:
        return fallback
    return Location(code.co_filename, code.co_firstlineno)


def _router_location(module: object) -> Location:
    file = getattr(module, "__file__", None) or "<unknown>"
    try:
        tree = ast.parse(Path(file).read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return Location(file, 1)
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(target, ast.Name) and target.id == ROUTER_ATTRIBUTE for target in targets):
                return Location(file, node.lineno)
    return Location(file, 1)
