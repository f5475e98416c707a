"""Configurations, measurements and interleaved rounds.

A *configuration* is one app to measure (a floor, the service in lazy or eager mode at D
domains, fastapi-lazyrouter at D domains). A *measurement* runs against one configuration
and returns named numbers (metrics). Each round runs every measurement on every
configuration, round-robin, starting one configuration further each round, so that drift
in the machine's load hits all configurations alike; the report gives medians and, for
timings, the median of the per-round ratios to the configuration's floor measured in the
same round. There is one floor per database variant (``SERVICE_KINDS``): the services
rendered with ``database=none`` against the empty FastAPI app, the default render
(``database=sqlite``) against the same app plus the same engine.

Plugging in (``benchmarks/lambda_cold_start.py`` does this): a module in this
directory listed in ``PLUGINS`` and defining ``register(registry: Registry)`` may

- add answers for the rendered services (``registry.answers["deploy_targets"] = [...]``),
- add measurements (``registry.add_measurement(measurement)``): objects with ``name``,
  ``heavy`` (run in the heavy rounds only), ``applies_to(config) -> bool`` and
  ``measure(config, context) -> dict[str, float | int | str | None]``,
- describe their metrics for the report (``registry.add_metric(Metric(...))``); a metric
  the report does not know is still listed, in an "other metrics" table.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import os
import select
import signal
import statistics
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.client import HTTPConnection
from pathlib import Path
from typing import Any, Protocol

from . import domains as generator
from .workspace import ENV_PREFIX, PACKAGE, Workspace, bench_environment

DRIVER = Path(__file__).resolve().parent / "driver.py"
PLUGINS = ("lambda_cold_start",)

FLOOR, LAZY, EAGER, LAZYROUTER = "floor", "lazy", "eager", "lazyrouter"
DB_FLOOR, DB_LAZY = "floor-sqlite", "lazy-sqlite"
# In report order.
KIND_LABELS = {
    FLOOR: "empty FastAPI (floor)",
    LAZY: "service, lazy + build",
    EAGER: "service, eager + build",
    LAZYROUTER: "fastapi-lazyrouter",
    DB_FLOOR: "empty FastAPI + SQLAlchemy engine (database floor)",
    DB_LAZY: "service, lazy + build, database=sqlite",
}
ALL_KINDS = tuple(KIND_LABELS)


@dataclass(frozen=True)
class ServiceKind:
    database: str  # the variant the service is rendered with (workspace.VARIANT_ANSWERS)
    routing: str
    floor: str  # the floor its ratios are taken against


# Floor kind -> the variant whose floor it is (and whose venv it runs in).
FLOOR_DATABASES = {FLOOR: "none", DB_FLOOR: "sqlite"}
SERVICE_KINDS = {
    LAZY: ServiceKind("none", "lazy", FLOOR),
    EAGER: ServiceKind("none", "eager", FLOOR),
    DB_LAZY: ServiceKind("sqlite", "lazy", DB_FLOOR),
}


def databases_for(kinds: tuple[str, ...]) -> tuple[str, ...]:
    """The variants to render for these configurations ("none" first: the report's service venv)."""
    wanted = {FLOOR_DATABASES.get(kind) for kind in kinds} | {
        SERVICE_KINDS[kind].database for kind in kinds if kind in SERVICE_KINDS
    }
    return tuple(database for database in ("none", "sqlite") if database in wanted)


Value = float | int | str | None


@dataclass(frozen=True)
class Configuration:
    kind: str
    domains: int  # 0 for a floor, which has none
    python: Path
    cwd: Path
    target: str  # "module:factory" called with no argument
    env: Mapping[str, str] = field(default_factory=dict)
    sys_path: tuple[str, ...] = ()
    expected_operations: int = 0
    project: Path | None = None  # the rendered service, for measurements that need it
    floor: str = FLOOR  # the id of the configuration its ratios are against; a floor is its own
    # The module and arguments that serve it as it ships (``python -m <module> <arguments>
    # <port>``: the service's image runs its ``serve`` command); empty: the driver runs
    # ``target`` under uvicorn.Server.
    serve_command: tuple[str, ...] = ()

    @property
    def is_floor(self) -> bool:
        return self.floor == self.kind

    @property
    def id(self) -> str:
        return self.kind if self.is_floor else f"{self.kind}@{self.domains}"

    @property
    def label(self) -> str:
        return KIND_LABELS.get(self.kind, self.kind) + ("" if self.is_floor else f", D={self.domains}")

    @property
    def domain_list(self) -> list[generator.Domain]:
        return generator.domains(self.domains)


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str  # "ms", "us", "MiB", "count", "text"
    ratio: bool = False  # report the median per-round ratio to the floor
    section: str = "other"


class Measurement(Protocol):
    name: str
    heavy: bool

    def applies_to(self, config: Configuration) -> bool: ...

    def measure(self, config: Configuration, context: Context) -> dict[str, Value]: ...


@dataclass
class Options:
    rounds: int = 7
    heavy_rounds: int = 1
    warm_requests: int = 200
    eager_openapi_max_domains: int = 200
    start_timeout: float = 600
    logs: Path | None = None
    # None: Python's default. Eager FastAPI nests one lifespan context per include_router,
    # so a large eager app cannot even start with the default limit (see the report).
    recursion_limit: int | None = None


@dataclass
class Context:
    workspace: Workspace
    options: Options
    round: int = 0
    log: Callable[[str], None] = print


class Registry:
    def __init__(self) -> None:
        self.answers: dict[str, Any] = {}
        self.measurements: list[Measurement] = []
        self.metrics: dict[str, Metric] = {}
        self.configuration_hooks: list[Callable[[Workspace], list[Configuration]]] = []
        self.plugins: list[str] = []
        self.notes: list[str] = []

    def add_measurement(self, measurement: Measurement) -> None:
        self.measurements.append(measurement)

    def add_metric(self, metric: Metric) -> None:
        self.metrics[metric.key] = metric

    def add_configurations(self, hook: Callable[[Workspace], list[Configuration]]) -> None:
        """``hook(workspace)`` returns extra configurations to interleave with the others."""
        self.configuration_hooks.append(hook)


def load_plugins(registry: Registry) -> None:
    for name in PLUGINS:
        if not (Path(__file__).parent / f"{name}.py").is_file():
            continue
        module = importlib.import_module(f"{__package__}.{name}")
        register = getattr(module, "register", None)
        if register is None:
            registry.notes.append(f"plugin {name}.py defines no register(registry); not run")
            continue
        register(registry)
        registry.plugins.append(name)


# --- child processes ----------------------------------------------------------------------


def _driver_command(config: Configuration, context: Context, spec: dict[str, Any]) -> list[str]:
    # -I: the driver's directory is not put on sys.path and no PYTHON* variable applies.
    spec = {
        "target": config.target,
        "sys_path": list(config.sys_path),
        "recursion_limit": context.options.recursion_limit,
        **spec,
    }
    return [str(config.python), "-I", str(DRIVER), json.dumps(spec)]


def _log_path(context: Context, config: Configuration, what: str) -> Path:
    directory = context.options.logs or context.workspace.root / "logs"
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"{config.id.replace('@', '-')}.{what}.log"


def _last_error(path: Path) -> str:
    """The last line of a child's stderr that names an exception or an error."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        text = line.strip()
        if text and (text.split(":", 1)[0].endswith(("Error", "Exception")) or text.startswith("ERROR")):
            return text[:300]
    return lines[-1].strip()[:300] if lines else ""


def _wait(process: subprocess.Popen[Any], timeout: float) -> int:
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def peak_rss_kib(pid: int) -> int | None:
    """``VmHWM`` of a live process: the peak RSS of its address space since ``exec``.

    Not ``ru_maxrss`` from ``wait4``: Linux folds the parent's RSS at fork into the child's
    ``ru_maxrss`` across ``exec``, so every child would report at least the harness's size.
    """
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


class ChildFailed(Exception):
    pass


def _read_events(process: subprocess.Popen[bytes], deadline: float) -> Iterator[tuple[float, dict[str, Any]]]:
    """``(perf_counter at arrival, event)`` for each ``BENCH`` line of the child."""
    assert process.stdout is not None
    buffer = b""
    fd = process.stdout.fileno()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ChildFailed("timed out waiting for the child")
        ready, _, _ = select.select([fd], [], [], min(remaining, 1.0))
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        now = time.perf_counter()
        if not chunk:
            return
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.startswith(b"BENCH "):
                yield now, json.loads(line[6:])


def _domain_steps(config: Configuration) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Cold requests (create in the first, then the last domain) and warm GETs of what they made."""
    found = config.domain_list
    if not found:
        return [], []
    first, last = found[0], found[-1]
    cold = [
        {"key": "cold_first", "method": "POST", "path": first.prefix, "body": json.dumps(generator.create_body(first))},
        {"key": "cold_second", "method": "POST", "path": last.prefix, "body": json.dumps(generator.create_body(last))},
    ]
    warm = [{"key": "warm_first", "path": f"{first.prefix}/1"}, {"key": "warm_last", "path": f"{last.prefix}/1"}]
    return cold, warm


def run_startup_driver(
    config: Configuration, context: Context, spec: dict[str, Any], what: str
) -> tuple[float, dict[str, Any], dict[str, Any]]:
    """Spawn the driver in ``startup`` mode: (process start to ready in ms, ready event, result event)."""
    log_path = _log_path(context, config, what)
    stderr = log_path.open("wb")
    start = time.perf_counter()
    process = subprocess.Popen(
        _driver_command(config, context, {"mode": "startup", **spec}),
        cwd=config.cwd,
        env=dict(config.env),
        stdout=subprocess.PIPE,
        stderr=stderr,
    )
    ready_ms: float | None = None
    created_ms: float | None = None
    ready: dict[str, Any] = {}
    result: dict[str, Any] = {}
    failed: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + context.options.start_timeout
        for arrived, event in _read_events(process, deadline):
            if event["event"] == "created":
                created_ms = (arrived - start) * 1000
            elif event["event"] == "ready":
                ready_ms = (arrived - start) * 1000
                ready = event
            elif event["event"] == "failed":
                failed = event
            elif event["event"] == "result":
                result = event
                break
    finally:
        code = _wait(process, 60)
        stderr.close()
    if failed:
        reached = f"; process start to create_app() returned: {created_ms / 1000:.1f} s" if created_ms else ""
        raise ChildFailed(f"fails at {failed['stage']}: {failed['error'][-200:]}{reached}")
    if ready_ms is None or not result:
        raise ChildFailed(f"the driver exited with {code} before reporting: {_last_error(log_path)} ({log_path})")
    return ready_ms, ready, result


class _Http:
    def __init__(self, port: int) -> None:
        self.connection = HTTPConnection("127.0.0.1", port, timeout=120)

    def request(self, method: str, path: str, body: str | None = None) -> tuple[float, int, bytes]:
        headers = {"content-type": "application/json"} if body is not None else {}
        start = time.perf_counter()
        self.connection.request(method, path, body=body, headers=headers)
        response = self.connection.getresponse()
        content = response.read()
        return (time.perf_counter() - start) * 1000, response.status, content

    def close(self) -> None:
        self.connection.close()


def _poll_ready(port: int, process: subprocess.Popen[Any], deadline: float) -> float:
    """perf_counter when ``GET /health/ready`` first answered 200."""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ChildFailed(f"server exited with {process.returncode} before it was ready")
        connection = HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("GET", "/health/ready")
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                return time.perf_counter()
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.002)
    raise ChildFailed("server did not become ready in time")


def count_operations(document: bytes) -> int:
    methods = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
    paths = json.loads(document).get("paths", {})
    return sum(1 for item in paths.values() for method in item if method in methods)


# --- built-in measurements ------------------------------------------------------------------


class UvicornSession:
    """Real uvicorn on a real socket: process start to the first 200 from ``/health/ready``,
    then over HTTP the first request to a cold domain, to a second one, and the first
    ``/openapi.json``; the peak RSS of the server process at the end. Each configuration is
    served as it ships: the service by its own ``serve`` command, the others (which have
    none) under ``uvicorn.Server``, as ``uvicorn module:app`` would."""

    name = "uvicorn"
    heavy = False

    def applies_to(self, config: Configuration) -> bool:
        return True

    def measure(self, config: Configuration, context: Context) -> dict[str, Value]:
        from support import free_port

        port = free_port()
        log_path = _log_path(context, config, "uvicorn")
        stderr = log_path.open("wb")
        if config.serve_command:
            module, *arguments = config.serve_command
            spec = {"mode": "main", "module": module, "argv": [*arguments, str(port)]}
        else:
            spec = {"mode": "serve", "port": port}
        start = time.perf_counter()
        process = subprocess.Popen(
            _driver_command(config, context, spec),
            cwd=config.cwd,
            env=dict(config.env),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        out: dict[str, Value] = {}
        try:
            try:
                ready_at = _poll_ready(port, process, time.monotonic() + context.options.start_timeout)
            except ChildFailed as exc:
                stderr.flush()
                raise ChildFailed(f"{exc}: {_last_error(log_path)}") from None
            out["uvicorn_ready_ms"] = (ready_at - start) * 1000
            http = _Http(port)
            try:
                cold, _ = _domain_steps(config)
                for step in cold:
                    elapsed, status, _ = http.request(step["method"], step["path"], step["body"])
                    out[f"http_{step['key']}_ms"] = elapsed
                    out[f"http_{step['key']}_ok"] = int(status == 201)
                elapsed, status, document = http.request("GET", "/openapi.json")
                out["openapi_first_ms"] = elapsed
                out["openapi_status"] = status
                out["openapi_operations"] = count_operations(document) if status == 200 else None
                out["openapi_expected"] = config.expected_operations
                out["openapi_bytes"] = len(document)
            finally:
                http.close()
            rss = peak_rss_kib(process.pid)
            out["rss_uvicorn_peak_mib"] = rss / 1024 if rss else None
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            _wait(process, 60)
            stderr.close()
        return out


class BareProcessStartup:
    """A bare process (no server): process start to lifespan startup complete, with the
    in-process split (import, create_app, lifespan); then in the same process the first
    request to a cold domain and a second one, and warm latency with only those loaded,
    all through direct ASGI calls."""

    name = "process"
    heavy = False

    def applies_to(self, config: Configuration) -> bool:
        return True

    def measure(self, config: Configuration, context: Context) -> dict[str, Value]:
        cold, warm = _domain_steps(config)
        spec = {"cold": cold, "warm": warm, "warm_requests": context.options.warm_requests}
        ready_ms, ready, result = run_startup_driver(config, context, spec, "process")
        out: dict[str, Value] = {
            "process_ready_ms": ready_ms,
            "inprocess_ms": ready["inprocess_ms"],
            "process_cpu_ms": ready.get("cpu_ms"),
            "import_ms": ready["import_ms"],
            "create_ms": ready["create_ms"],
            "lifespan_ms": ready["lifespan_ms"],
            "interpreter_ms": ready["interpreter_ms"],
            "modules_at_ready": ready["modules"],
            "gc_startup_ms": ready.get("gc_ms"),
            "gc_full_collections": ready.get("gc_full"),
            "gc_create_lifespan_ms": ready.get("gc_create_lifespan_ms"),
            "rss_ready_mib": ready["rss_ready_kib"] / 1024,
        }
        for step in cold:
            out[f"inproc_{step['key']}_ms"] = result.get(f"{step['key']}_ms")
            out[f"inproc_{step['key']}_ok"] = int(result.get(f"{step['key']}_status") == 201)
        for step in warm:
            out[f"{step['key']}_few_us"] = result.get(f"{step['key']}_few_us")
            out[f"{step['key']}_few_ok"] = int(result.get(f"{step['key']}_few_status") == 200)
        return out


class AllDomainsLoaded:
    """Heavy: every domain loaded (one GET per domain), then warm latency again; for the
    eager service, FastAPI's runtime OpenAPI generation (what ``/openapi.json`` would cost
    without the build), capped at ``eager_openapi_max_domains``."""

    name = "all-loaded"
    heavy = True

    def applies_to(self, config: Configuration) -> bool:
        return not config.is_floor and config.domains > 0

    def measure(self, config: Configuration, context: Context) -> dict[str, Value]:
        cold, warm = _domain_steps(config)
        spec: dict[str, Any] = {
            "cold": cold,
            "warm": warm,
            "warm_requests": context.options.warm_requests,
            "load_all": [domain.prefix for domain in config.domain_list],
        }
        generate = config.kind == EAGER and config.domains <= context.options.eager_openapi_max_domains
        if generate:
            spec["generate_openapi"] = f"{PACKAGE}.openapi:generate_document"
        _, _, result = run_startup_driver(config, context, spec, "all-loaded")
        out: dict[str, Value] = {
            "load_all_ms": result.get("load_all_ms"),
            "domains_loaded": result.get("domains_loaded"),
            "rss_all_loaded_mib": (result.get("rss_all_loaded_kib") or 0) / 1024 or None,
        }
        for step in warm:
            out[f"{step['key']}_all_us"] = result.get(f"{step['key']}_all_us")
            out[f"{step['key']}_all_ok"] = int(result.get(f"{step['key']}_all_status") == 200)
        if generate:
            out["openapi_runtime_ms"] = result.get("openapi_runtime_ms")
            out["openapi_runtime_operations"] = result.get("openapi_runtime_operations")
            out["rss_after_runtime_openapi_mib"] = (result.get("rss_after_openapi_kib") or 0) / 1024 or None
        return out


BUILTIN_METRICS = [
    Metric("uvicorn_ready_ms", "process start to first 200 from /health/ready (uvicorn)", "ms", True, "cold"),
    Metric("process_ready_ms", "process start to lifespan startup complete (bare process)", "ms", True, "cold"),
    Metric("process_cpu_ms", "CPU time, process start to lifespan startup complete (bare process)", "ms", True, "cold"),
    Metric("inprocess_ms", "in-process import + create_app + lifespan", "ms", True, "cold"),
    Metric("import_ms", "import of the app module", "ms", False, "split"),
    Metric("create_ms", "create_app()", "ms", False, "split"),
    Metric("lifespan_ms", "lifespan startup (first ASGI call: builds the middleware stack too)", "ms", False, "split"),
    Metric("interpreter_ms", "interpreter start to driver's first line (in-process clock)", "ms", False, "split"),
    Metric("modules_at_ready", "modules in sys.modules at ready", "count", False, "split"),
    Metric("gc_startup_ms", "time in garbage collection, process start to ready", "ms", False, "split"),
    Metric("gc_create_lifespan_ms", "of which during create_app() + lifespan startup", "ms", False, "split"),
    Metric("gc_full_collections", "full (generation 2) collections, process start to ready", "count", False, "split"),
    Metric("http_cold_first_ms", "first request to a cold domain (POST, HTTP)", "ms", False, "first"),
    Metric("http_cold_second_ms", "first request to a second cold domain (POST, HTTP)", "ms", False, "first"),
    Metric("inproc_cold_first_ms", "first request to a cold domain (POST, in-process ASGI)", "ms", False, "first"),
    Metric("inproc_cold_second_ms", "second cold domain (POST, in-process ASGI)", "ms", False, "first"),
    Metric("warm_first_few_us", "warm GET, first domain, only 2 domains loaded", "us", False, "warm"),
    Metric("warm_last_few_us", "warm GET, last domain, only 2 domains loaded", "us", False, "warm"),
    Metric("warm_first_all_us", "warm GET, first domain, all domains loaded", "us", False, "warm"),
    Metric("warm_last_all_us", "warm GET, last domain, all domains loaded", "us", False, "warm"),
    Metric("load_all_ms", "loading every domain (one GET each, in-process)", "ms", False, "warm"),
    Metric("openapi_first_ms", "first /openapi.json response (HTTP)", "ms", False, "openapi"),
    Metric("openapi_operations", "operations in /openapi.json", "count", False, "openapi"),
    Metric("openapi_expected", "operations expected", "count", False, "openapi"),
    Metric("openapi_bytes", "size of /openapi.json", "count", False, "openapi"),
    Metric(
        "openapi_runtime_ms",
        "FastAPI runtime generation of the document (eager app, in-process)",
        "ms",
        False,
        "openapi",
    ),
    Metric("openapi_runtime_operations", "operations in the runtime-generated document", "count", False, "openapi"),
    Metric("rss_ready_mib", "peak RSS at ready (bare process)", "MiB", True, "memory"),
    Metric("rss_uvicorn_peak_mib", "peak RSS of the uvicorn process after the session", "MiB", True, "memory"),
    Metric("rss_all_loaded_mib", "peak RSS with every domain loaded", "MiB", False, "memory"),
    Metric("rss_after_runtime_openapi_mib", "peak RSS after runtime OpenAPI generation", "MiB", False, "memory"),
]


def default_registry() -> Registry:
    registry = Registry()
    for measurement in (UvicornSession(), BareProcessStartup(), AllDomainsLoaded()):
        registry.add_measurement(measurement)
    for metric in BUILTIN_METRICS:
        registry.add_metric(metric)
    return registry


# --- configurations -------------------------------------------------------------------------


def configurations(workspace: Workspace, kinds: tuple[str, ...] = ALL_KINDS) -> list[Configuration]:
    found: list[Configuration] = []
    base = bench_environment()
    for kind, database in FLOOR_DATABASES.items():
        floor = workspace.floors.get(database)
        if kind in kinds and floor is not None:
            found.append(
                Configuration(
                    kind=kind,
                    domains=0,
                    python=floor.python,
                    cwd=floor.root,
                    target=f"{floor.package}.app:create_app",
                    env={**base, **floor.env},
                    sys_path=(str(floor.root),),
                    floor=kind,
                )
            )
    for count in sorted({count for _, count in workspace.services}):
        for kind, spec in SERVICE_KINDS.items():
            service = workspace.services.get((spec.database, count))
            if kind not in kinds or service is None:
                continue
            env = {
                **base,
                **service.env,
                f"{ENV_PREFIX}ENVIRONMENT": "production",
                f"{ENV_PREFIX}ALLOWED_HOSTS": '["127.0.0.1"]',
                f"{ENV_PREFIX}ROUTING": spec.routing,
                f"{ENV_PREFIX}LOG_LEVEL": "WARNING",
            }
            found.append(
                Configuration(
                    kind=kind,
                    domains=count,
                    python=service.python,
                    cwd=service.root,
                    target=f"{PACKAGE}.app:create_app",
                    env=env,
                    expected_operations=count * generator.ENDPOINTS_PER_DOMAIN,
                    project=service.root,
                    floor=spec.floor,
                    serve_command=(PACKAGE, "serve", "--host", "127.0.0.1", "--port"),
                )
            )
        if LAZYROUTER in kinds and workspace.lazyrouter_python is not None and workspace.lazyrouter_root is not None:
            found.append(
                Configuration(
                    kind=LAZYROUTER,
                    domains=count,
                    python=workspace.lazyrouter_python,
                    cwd=workspace.lazyrouter_root,
                    target=f"lr_d{count}.app:create_app",
                    env=base,
                    sys_path=(str(workspace.lazyrouter_root),),
                    expected_operations=count * generator.ENDPOINTS_PER_DOMAIN,
                )
            )
    return found


# --- results ----------------------------------------------------------------------------------


@dataclass
class Results:
    # config id -> metric -> [(round, value)]
    samples: dict[str, dict[str, list[tuple[int, Value]]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    errors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    configs: dict[str, Configuration] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    started: float = field(default_factory=time.time)
    finished: float | None = None
    load: list[tuple[str, tuple[float, float, float]]] = field(default_factory=list)
    # config id -> why it does not start with Python's default recursion limit
    default_start_failures: dict[str, str] = field(default_factory=dict)
    # metric -> the measurement that produces it; config id -> measurements that failed
    metric_sources: dict[str, str] = field(default_factory=dict)
    failed_measurements: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def add(self, config: Configuration, round_index: int, values: Mapping[str, Value]) -> None:
        self.configs[config.id] = config
        for key, value in values.items():
            self.samples[config.id][key].append((round_index, value))

    def values(self, config_id: str, metric: str) -> list[float]:
        return [value for _, value in self.samples.get(config_id, {}).get(metric, []) if isinstance(value, int | float)]

    def failed(self, config_id: str, metric: str) -> bool:
        """Whether the measurement that produces ``metric`` failed for this configuration."""
        return self.metric_sources.get(metric) in self.failed_measurements.get(config_id, ())

    def median(self, config_id: str, metric: str) -> float | None:
        found = self.values(config_id, metric)
        return statistics.median(found) if found else None

    def ratio(self, config_id: str, metric: str, reference: str | None = None) -> float | None:
        """Median over rounds of (this configuration / the reference, same round); the
        reference defaults to the configuration's own floor."""
        if reference is None:
            config = self.configs.get(config_id)
            reference = config.floor if config is not None else FLOOR
        mine = {r: v for r, v in self.samples.get(config_id, {}).get(metric, []) if isinstance(v, int | float)}
        theirs = {r: v for r, v in self.samples.get(reference, {}).get(metric, []) if isinstance(v, int | float)}
        paired = [mine[r] / theirs[r] for r in mine if theirs.get(r)]
        return statistics.median(paired) if paired else None

    def to_json(self) -> dict[str, Any]:
        return {
            "samples": {cid: {k: v for k, v in metrics.items()} for cid, metrics in self.samples.items()},
            "errors": dict(self.errors),
            "default_start_failures": self.default_start_failures,
            "seconds": dict(self.seconds),
        }


def _rotate(items: list[Configuration], by: int) -> list[Configuration]:
    if not items:
        return items
    by %= len(items)
    return items[by:] + items[:by]


def _one_line(text: str, limit: int = 400) -> str:
    """A failure as one readable line: whitespace collapsed, the middle of long ones cut."""
    text = " ".join(text.split())
    return text if len(text) <= limit else f"{text[: limit // 3]} [...] {text[-(2 * limit) // 3 :]}"


def _measure(config: Configuration, measurement: Measurement, context: Context, results: Results, index: int) -> None:
    start = time.perf_counter()
    try:
        values = measurement.measure(config, context)
    except Exception as exc:
        message = _one_line(f"round {index + 1}: {measurement.name}: {exc}")
        results.errors[config.id].append(message)
        results.failed_measurements[config.id].add(measurement.name)
        context.log(f"    ! {config.id}: {message}")
        results.configs[config.id] = config
        return
    finally:
        results.seconds[config.id] += time.perf_counter() - start
    results.add(config, index, values)
    for key in values:
        results.metric_sources.setdefault(key, measurement.name)


def loadavg() -> tuple[float, float, float]:
    with contextlib.suppress(OSError):
        return os.getloadavg()
    return (0.0, 0.0, 0.0)


def run_rounds(configs: list[Configuration], registry: Registry, context: Context) -> Results:
    results = Results()
    for config in configs:
        results.configs[config.id] = config
    results.load.append(("start", loadavg()))
    regular = [m for m in registry.measurements if not m.heavy]
    heavy = [m for m in registry.measurements if m.heavy]

    # Warm-up, unmeasured (page cache, bytecode, first-run effects), with Python's default
    # recursion limit whatever --recursion-limit says: it records which apps can start at all.
    context.log("warm-up (unmeasured; Python's default recursion limit)")
    options = context.options
    context.options = dataclasses.replace(options, recursion_limit=None)
    try:
        for config in configs:
            try:
                run_startup_driver(config, context, {}, "warmup")
            except Exception as exc:
                results.default_start_failures[config.id] = _one_line(str(exc))
                context.log(f"    ! {config.id} does not start: {exc}")
    finally:
        context.options = options

    # (round index, rotation, measurements, label): the regular rounds, then the heavy ones.
    rounds, heavy_rounds = context.options.rounds, context.options.heavy_rounds
    schedule = [(index, index, regular, f"round {index + 1}/{rounds}") for index in range(rounds)]
    schedule += [
        (rounds + index, index, heavy, f"heavy round {index + 1}/{heavy_rounds}") for index in range(heavy_rounds)
    ]
    for index, rotation, measurements, label in schedule:
        context.round = index
        context.log(f"{label} (load {loadavg()[0]:.2f})")
        # Round-robin, the starting configuration rotating each round.
        for config in _rotate(configs, rotation):
            for measurement in measurements:
                if measurement.applies_to(config):
                    _measure(config, measurement, context, results, index)
    results.load.append(("end", loadavg()))
    results.finished = time.time()
    return results
