"""The markdown report: tables of medians with ratios to the floor, plus the run's context."""

from __future__ import annotations

import datetime
import os
import platform
from collections.abc import Iterable, Sequence
from pathlib import Path

from .harness import (
    ALL_KINDS,
    DB_FLOOR,
    DB_LAZY,
    EAGER,
    FLOOR,
    KIND_LABELS,
    LAZY,
    LAZYROUTER,
    Metric,
    Registry,
    Results,
)
from .workspace import Workspace


def machine() -> dict[str, str]:
    cpu = "unknown"
    memory = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": memory,
        "kernel": platform.release(),
    }


def _client(versions: dict[str, str]) -> str:
    """The outbound HTTP client the service depends on (httpx, or its successor httpx2)."""
    found = [f"{name} {versions[name]}" for name in ("httpx2", "httpx") if name in versions]
    return ", ".join(found) or "no httpx"


def _format(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "us":
        return f"{value:,.0f} µs"
    if unit == "ms":
        return f"{value:,.0f} ms" if value >= 100 else f"{value:,.1f} ms"
    if unit == "MiB":
        return f"{value:,.0f} MiB"
    if unit == "count":
        return f"{value:,.0f}"
    return str(value)


def _ratio(value: float | None) -> str:
    return "" if value is None else f" ({value:.2f}x)"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _ratio_cell(value: float | None) -> str:
    return _ratio(value).strip(" ()") or "n/a"


def _counts(results: Results) -> list[int]:
    return sorted({config.domains for config in results.configs.values() if not config.is_floor})


def _kinds(results: Results, *, floors: bool = False) -> list[str]:
    """The kinds present, in report order (a plugin's own after ours); floors only if asked."""
    present = {config.kind: config.is_floor for config in results.configs.values()}
    ordered = [*ALL_KINDS, *sorted(set(present) - set(ALL_KINDS))]
    return [kind for kind in ordered if kind in present and (floors or not present[kind])]


def _reported(results: Results, kind: str, key: str) -> bool:
    """Whether any configuration of ``kind`` has ``key``, or failed to produce it: a column
    that could only say n/a (a measurement that does not apply to the kind) is left out."""
    return any(
        results.values(config_id, key) or results.failed(config_id, key)
        for config_id, config in results.configs.items()
        if config.kind == kind
    )


def _cell(results: Results, config_id: str, metric: Metric, *, ratio: bool) -> str:
    median = results.median(config_id, metric.key)
    if median is None:
        if not results.failed(config_id, metric.key):
            return "n/a"
        return "does not start" if config_id in results.default_start_failures else "failed"
    text = _format(median, metric.unit)
    if ratio and metric.ratio:
        text += _ratio(results.ratio(config_id, metric.key))
    return text


def metric_table(results: Results, metric: Metric, *, with_floor: bool, service_d0: bool = False) -> list[str]:
    """One row per D, one column per kind; with ``with_floor``, the floors too and every cell
    with its ratio to its own floor."""
    kinds = [kind for kind in _kinds(results, floors=with_floor) if _reported(results, kind, metric.key)]
    floors = {config.kind for config in results.configs.values() if config.is_floor}
    header = ["D", *(KIND_LABELS.get(kind, kind) for kind in kinds)]
    counts = _counts(results)
    if service_d0 and 0 in counts:
        header.append("lazy / service at D=0")
    rows = []
    for count in counts:
        row = [str(count)]
        for kind in kinds:
            row.append(_cell(results, kind if kind in floors else f"{kind}@{count}", metric, ratio=with_floor))
        if service_d0 and 0 in counts:
            row.append(_ratio_cell(results.ratio(f"{LAZY}@{count}", metric.key, f"{LAZY}@0")))
        rows.append(row)
    return _table(header, rows)


def headline(results: Results) -> list[str]:
    """The issue's claim: lazy cold start vs the floor and vs the service at D=0."""
    lines = []
    for key, label, unit in (
        ("uvicorn_ready_ms", "uvicorn, process start to /health/ready", "ms"),
        ("process_ready_ms", "bare process, start to lifespan complete", "ms"),
        # CPU time is what the load of a shared machine disturbs least.
        ("process_cpu_ms", "bare process, CPU time to lifespan complete", "ms"),
        ("rss_ready_mib", "peak RSS at ready (bare process)", "MiB"),
    ):
        rows = []
        for count in _counts(results):
            lazy = f"{LAZY}@{count}"
            rows.append(
                [
                    str(count),
                    _format(results.median(lazy, key), unit),
                    _ratio_cell(results.ratio(lazy, key)),
                    _ratio_cell(results.ratio(lazy, key, f"{LAZY}@0")),
                    _ratio_cell(results.ratio(f"{EAGER}@{count}", key)),
                    _ratio_cell(results.ratio(f"{LAZYROUTER}@{count}", key)),
                ]
            )
        lines.append(f"**{label}** (floor median {_format(results.median(FLOOR, key), unit)}):")
        lines.append("")
        lines += _table(
            ["D", "lazy (median)", "lazy / floor", "lazy / service D=0", "eager / floor", "lazyrouter / floor"], rows
        )
        lines.append("")
    return lines


DATABASE_CLAIM = (
    ("uvicorn_ready_ms", "uvicorn, process start to /health/ready", "ms"),
    ("process_ready_ms", "bare process, start to lifespan complete", "ms"),
    ("process_cpu_ms", "bare process, CPU time to lifespan complete", "ms"),
    ("rss_ready_mib", "peak RSS at ready (bare process)", "MiB"),
)


def database_claim(results: Results) -> list[str]:
    """The default render (database=sqlite) against its own floor, and what the database
    layer adds to the same service at the same D (database=none), all from the same rounds."""
    counts = [count for count in _counts(results) if f"{DB_LAZY}@{count}" in results.configs]
    if not counts:
        return []
    lines = [
        "The tables above are the services rendered with `database=none`. The template's default",
        "render (`database=sqlite`) also opens an async SQLAlchemy engine (aiosqlite) in the",
        "lifespan with a `SELECT 1`, and its readiness checks that the database is at the code's",
        "migration head (read from the build in production). It is measured against its own",
        "floor, the empty app plus the same engine, in the same interleaved rounds; the last",
        "column is the same-round ratio to the `database=none` service at the same D.",
        "",
    ]
    for key, label, unit in DATABASE_CLAIM:
        rows = []
        for count in counts:
            mine = f"{DB_LAZY}@{count}"
            rows.append(
                [
                    str(count),
                    _format(results.median(mine, key), unit),
                    _ratio_cell(results.ratio(mine, key)),
                    _ratio_cell(results.ratio(mine, key, f"{DB_LAZY}@0")),
                    _ratio_cell(results.ratio(mine, key, f"{LAZY}@{count}")),
                ]
            )
        floor = _format(results.median(DB_FLOOR, key), unit)
        over_empty = _ratio_cell(results.ratio(DB_FLOOR, key, FLOOR))
        lines.append(f"**{label}** (database floor median {floor}; database floor / empty floor {over_empty}):")
        lines.append("")
        header = ["D", "lazy, sqlite (median)", "/ database floor", "/ sqlite service D=0", "/ database=none, same D"]
        lines += _table(header, rows)
        lines.append("")
    return lines


def openapi_table(results: Results) -> list[str]:
    rows = []
    for count in _counts(results):
        for kind in _kinds(results):
            config_id = f"{kind}@{count}"
            if config_id not in results.configs:
                continue
            operations = results.median(config_id, "openapi_operations")
            expected = results.median(config_id, "openapi_expected")
            complete = "n/a" if operations is None else f"{operations:,.0f} / {expected or 0:,.0f}"
            runtime = results.median(config_id, "openapi_runtime_ms")
            runtime_ops = results.median(config_id, "openapi_runtime_operations")
            runtime_text = (
                "not measured"
                if runtime is None
                else (f"{_format(runtime, 'ms')} ({runtime_ops or 0:,.0f} operations)")
            )
            rows.append(
                [
                    str(count),
                    KIND_LABELS.get(kind, kind),
                    _format(results.median(config_id, "openapi_first_ms"), "ms"),
                    complete,
                    _format((results.median(config_id, "openapi_bytes") or 0) / 1024, "count") + " KiB",
                    runtime_text if kind == EAGER else "",
                ]
            )
    floor_ms = _format(results.median(FLOOR, "openapi_first_ms"), "ms")
    return [
        f"Floor (empty app, FastAPI's own generation): {floor_ms}.",
        "",
        *_table(
            [
                "D",
                "configuration",
                "first /openapi.json (HTTP)",
                "operations listed / expected",
                "size",
                "eager: runtime generation, once",
            ],
            rows,
        ),
    ]


def _venv(versions: dict[str, str]) -> str:
    text = (
        f"Python {versions.get('python', '?')}, FastAPI {versions.get('fastapi', '?')},"
        f" Starlette {versions.get('starlette', '?')},"
        f" pydantic {versions.get('pydantic', '?')} (core {versions.get('pydantic-core', '?')}),"
        f" uvicorn {versions.get('uvicorn', '?')}, {_client(versions)},"
        f" pydantic-settings {versions.get('pydantic-settings', '?')}"
    )
    extra = [
        (name, label)
        for name, label in (("sqlalchemy", "SQLAlchemy"), ("aiosqlite", "aiosqlite"), ("alembic", "Alembic"))
        if name in versions
    ]
    return text + "".join(f", {label} {versions[name]}" for name, label in extra)


def render_report(
    results: Results,
    registry: Registry,
    workspace: Workspace,
    *,
    command: str,
    options_text: str,
    chart: str | None = None,
) -> str:
    info = machine()
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    service_versions = workspace.versions.get("service", {})
    lr_versions = workspace.versions.get("lazyrouter", {})
    duration = (results.finished or results.started) - results.started
    metrics = registry.metrics
    lines = [
        "# Startup benchmarks",
        "",
        "Generated by `benchmarks/run.py`; the method, the configurations and how to read",
        "the numbers are described after the tables. **Ratios are the claim**: absolute times",
        "depend on the machine and its load; every configuration is measured in the same",
        "interleaved rounds, and a ratio is the median over rounds of (configuration / its floor",
        "in the same round). The services are rendered with `database=none` against the empty",
        "FastAPI floor; the default render (`database=sqlite`) has a headline and columns of its",
        "own, against a floor with the same database engine.",
        "",
        "## This run",
        "",
        f"- Date: {now}; duration {duration / 60:.1f} min",
        f"- Command: `{command}`",
        f"- Options: {options_text}",
        f"- Machine: {info['nproc']} CPUs, {info['cpu']}, {info['memory']} RAM, Linux {info['kernel']}",
        "- Load average (1, 5, 15 min): "
        + "; ".join(f"{when} {a:.2f} / {b:.2f} / {c:.2f}" for when, (a, b, c) in results.load),
        f"- Service venv: {_venv(service_versions)}",
    ]
    sqlite_versions = workspace.versions.get("service-sqlite")
    if sqlite_versions and sqlite_versions is not service_versions:
        lines.append(f"- Service venv, database=sqlite: {_venv(sqlite_versions)}")
    if lr_versions:
        lines.append(
            f"- fastapi-lazyrouter venv: fastapi-lazyrouter {lr_versions.get('fastapi-lazyrouter', '?')},"
            f" FastAPI {lr_versions.get('fastapi', '?')}, Starlette {lr_versions.get('starlette', '?')},"
            f" pydantic {lr_versions.get('pydantic', '?')}, uvicorn {lr_versions.get('uvicorn', '?')}"
        )
    elif workspace.lazyrouter_error:
        lines.append("- fastapi-lazyrouter: could not be installed; its columns are empty (see the run's output)")
    builds = [
        f"{service.label}: {service.build_seconds:.0f} s, OpenAPI {service.openapi_bytes / 1024:,.0f} KiB"
        for _, service in sorted(workspace.services.items())
        if service.build_seconds is not None and service.openapi_bytes is not None
    ]
    if builds:
        lines.append("- `python -m bench_service build` (incl. full OpenAPI generation): " + "; ".join(builds))
    if registry.plugins:
        lines.append("- Plugins: " + ", ".join(f"`{name}.py`" for name in registry.plugins))
    lines += [f"- Note: {note}" for note in registry.notes]
    lines.append("")

    lines += ["## Headline: lazy cold start", ""]
    if chart:
        lines += [f"![Cold start against the number of domains, median per configuration]({chart})", ""]
    lines += headline(results)
    claim = database_claim(results)
    if claim:
        lines += ["## Headline: the default render (database=sqlite) against its floor", "", *claim]

    sections = [
        ("Cold start", "cold", True, True),
        ("Where the in-process start goes (medians)", "split", True, False),
        ("First requests to cold domains (medians)", "first", False, False),
        ("Warm request latency (medians of the per-run medians)", "warm", False, False),
        ("Memory (peak RSS, medians)", "memory", True, False),
    ]
    for title, section, with_floor, d0 in sections:
        lines += [f"## {title}", ""]
        for metric in metrics.values():
            if metric.section != section or not any(results.values(cid, metric.key) for cid in results.configs):
                continue
            lines += [f"**{metric.label}**", ""]
            lines += metric_table(results, metric, with_floor=with_floor, service_d0=d0)
            lines.append("")
    lines += ["## /openapi.json", "", *openapi_table(results), ""]

    known = {key for key, metric in metrics.items() if metric.section != "other"}
    plugin_sections = sorted(
        {m.section for m in metrics.values()} - {"cold", "split", "first", "warm", "memory", "openapi"}
    )
    for section in plugin_sections:
        lines += [f"## {section}", ""]
        for metric in metrics.values():
            if metric.section == section and any(results.values(cid, metric.key) for cid in results.configs):
                lines += [f"**{metric.label}**", "", *metric_table(results, metric, with_floor=metric.ratio), ""]
    unknown = sorted({k for cid in results.samples for k in results.samples[cid]} - set(metrics) - known)
    unknown = [k for k in unknown if not k.endswith(("_ok", "_status"))]
    if unknown:
        lines += ["## Other metrics", ""]
        for key in unknown:
            lines += [f"**{key}**", "", *metric_table(results, Metric(key, key, "count"), with_floor=False), ""]

    lines += ["## Checks", "", *checks(results), ""]
    lines += ["## Time spent per configuration", ""]
    lines += _table(
        ["configuration", "seconds"],
        [
            [results.configs[cid].label, f"{seconds:,.0f}"]
            for cid, seconds in sorted(results.seconds.items(), key=lambda item: _order(results, item[0]))
        ],
    )
    lines.append("")
    lines.append(METHOD)
    return "\n".join(lines)


METHOD = """## Method

### Running it

```sh
python3 -m venv .venv-tests && .venv-tests/bin/pip install -r tests/requirements.txt  # or bash tests/run.sh
.venv-tests/bin/python benchmarks/run.py --domains 0,10,200,1000 --rounds 7 \\
    --recursion-limit 10000 --output docs/benchmarks.md
```

`--workdir DIR --reuse` keeps the rendered services between runs (they are re-rendered when
the template or the generator changed); `--json FILE` writes every sample; `--logs DIR`
keeps the children's stderr; `--configs floor,lazy` runs a subset (of `floor`, `lazy`,
`eager`, `lazyrouter`, `floor-sqlite`, `lazy-sqlite`; only the variants they need are
rendered); `--recursion-limit` is explained under "Checks" (without it the eager service and
fastapi-lazyrouter at D=1000 report "does not start"). The full run takes about 25 minutes
on 2 cores: about 6 rendering and building the eight services (the two D=1000 builds most
of it), the rest measuring, mostly the eager and fastapi-lazyrouter configurations at
D=1000. The CI smoke test (`tests/test_benchmarks.py`) runs every configuration, the
database variant included, at D=0 and D=3 for one round and asserts
completeness only (every number present, finite and positive), never a time.
`--chart FILE.svg` also writes the cold-start chart (plain SVG) and embeds it in the report.
`benchmarks/profile_startup.py` breaks a lazy production start down piece by piece
(manifest, source walk, catalog, path index, lifespan, heaviest imports) for one rendered
service; `benchmarks/startup_steps.py WORKDIR` gives the CPU time of each step of a
cold start, floor against service, in a workspace kept with `--workdir`;
`benchmarks/compare_renders.py BEFORE AFTER` measures two kept builds of one variant and D
(from two commits of the template) side by side against one floor, in the same rounds.

### What is measured

- **Services.** For each D the template is rendered with real Copier (`project_name="Bench
  Service"`, `example_domain=false`, the template's working tree), synced with real uv on
  the same pyenv Python, grown by `benchmarks/domains.py` to D domains, built with
  the service's own `python -m bench_service build`, and byte-compiled (the venv synced with
  `UV_COMPILE_BYTECODE=1` and the sources with `compileall`, as an image ships them).
  It is rendered twice per D: with `database=none` (and the `lambda`
  target the Lambda plugin needs), the service as it was before the database layer, for
  every comparison with the empty FastAPI floor; and as the template's default render,
  `database=sqlite` (no deploy target: Copier refuses SQLite with `lambda`), for the
  database variant. Every other answer is the default (`opentelemetry` included: on, and
  inert without `OTEL_EXPORTER_OTLP_ENDPOINT`, which the children never get). The variant
  gets `BENCH_SERVICE_DATABASE_URL=sqlite:////<its dir>/bench_service.sqlite3`, a file of
  its own, emptied and migrated with the service's own `python -m bench_service db
  upgrade` before any measurement, as a deploy step would (in production the service
  never migrates itself and its readiness is 503 until the database is at the code's
  migration head). Each domain is a package like the scaffold's (`router`, `schemas`,
  `service`, `dependencies`) but of realistic weight: 5 endpoints (list with query
  parameters and a class dependency, create with a nested body, get, patch, delete) and 11
  models deriving from the service's `ApiModel` (nested models, lists, optionals, a dict,
  two enums, field constraints and patterns, a field validator and a model validator). A
  domain has no `models.py` (no SQLAlchemy table): it keeps its entries on the app, so the
  database variant's requests never touch the database.
- **Configurations**, all on the same interpreter (`benchmarks/floors.py` has both
  floors):
  - *empty FastAPI (floor)*: `FastAPI(lifespan=<trivial>)` with typed settings (a
    pydantic-settings `Settings`, read in the factory) and one `GET /health/ready`
    route (excluded from the schema) for the readiness poll; run in the `database=none`
    service's venv. The floor of the lazy, eager and fastapi-lazyrouter configurations.
  - *service, lazy + build*: `ENVIRONMENT=production`, `ROUTING=lazy`: the manifest is
    loaded, no domain is imported at startup, `/openapi.json` serves the built bytes. At
    D=0 this is the second baseline, "the service at D=0" (our own fixed cost: settings,
    middleware, error handlers, the outbound HTTP client in the lifespan).
  - *service, eager + build*: `ENVIRONMENT=production`, `ROUTING=eager`, same build. This
    is the fair eager comparison: the only difference from lazy is the routing mode (every
    domain imported and included by `create_app`). Because the build is present, eager
    `/openapi.json` also serves the prebuilt bytes; what an eager app *without* a build
    would pay for the document is measured separately, once, as *runtime generation*
    (`bench_service.openapi.generate_document(app)` in-process on the eager app: FastAPI's
    own generator plus the problem schema), up to `--eager-openapi-max-domains` (default
    200; at D=1000 it is skipped: minutes and gigabytes per run).
  - *fastapi-lazyrouter*: PyPI `fastapi-lazyrouter==0.1.0rc4`. It fails on FastAPI 0.165
    (`TypeError: ... 'max_body_size'`), so it gets its own venv with the FastAPI its own
    lock file pins (`fastapi==0.119.1`; Starlette resolves below 0.49) and the service's
    pydantic and uvicorn versions. Its app (`lr_d<D>/app.py`) is a copy of the same
    generated domains with one change, `router = LazyApiRouter(prefix=..., tags=[...])`
    instead of `APIRouter` (the library defers only routers of its class), a `models.ApiModel`
    with the service's configuration (`defer_build=True`), a `NotFoundError` mapped to 404,
    `app.add_middleware(LazyApiRouterMiddleware)`, and every router imported at module top
    and passed to `app.include_router` (the README's "manual usage"). The domains'
    `dependencies.py` has no `from __future__ import annotations` in either variant:
    FastAPI 0.119 cannot resolve string annotations of a class dependency.
  - *empty FastAPI + SQLAlchemy engine (database floor)*: the empty floor plus the engine
    the default render opens: `create_async_engine("sqlite+aiosqlite:///<file>")` in the
    lifespan, one `SELECT 1` on a connection, `engine.dispose()` at shutdown; its own file;
    run in the `database=sqlite` service's venv. Its readiness route stays trivial.
  - *service, lazy + build, database=sqlite*: the default render, `ENVIRONMENT=production`,
    `ROUTING=lazy`, measured against the database floor. Besides what the lazy service
    does, its lifespan opens the engine (WAL and foreign keys on each connection) and
    checks it with `SELECT 1`, and `/health/ready` reads `alembic_version` and compares it
    with the code's migration heads (Alembic's script directory, imported on the first
    probe) before its first 200.
- **Per round, for every configuration** (round-robin, the starting configuration rotating
  each round, after one unmeasured warm-up start of each):
  1. *uvicorn session*: each configuration is served as it ships. The service runs its own
     `serve` command (`python -m bench_service serve --host 127.0.0.1 --port N`, what its
     image runs: the CLI, logging set up, the service's `uvicorn.Server` subclass, one
     worker, h11, access log off), through `benchmarks/driver.py main` so that the recursion
     limit applies to it as to the others; the floor and fastapi-lazyrouter, which have no
     command of their own, run under `benchmarks/driver.py serve`, which builds the app with
     the configuration's factory and runs `uvicorn.Server` with the same options (what
     `uvicorn module:app` does). The parent polls `GET /health/ready` every 2 ms on fresh connections;
     **cold start = process spawn to the first 200**, which for the service also means the
     lifespan resources are up (readiness is gated on them). Then, over one keep-alive HTTP
     connection: `POST <first domain>` with a nested body (the first request to a cold
     domain: import + mount for lazy, first validation for all), `POST <last domain>`
     (a second cold domain), and `GET /openapi.json` (time to the whole body; operations
     counted against D x 5). Peak RSS is the server's `VmHWM` at the end of the session.
  2. *bare process*: `driver.py startup` imports the app module, calls the factory and
     drives the ASGI lifespan startup, then prints a marker; **cold start = process spawn to
     the marker** (no server, no socket). The driver reports the in-process split (import,
     `create_app`, lifespan startup = first ASGI call, which also builds the middleware
     stack) and `VmHWM` at ready. In the same process, through direct ASGI calls (no client
     library): the two cold-domain POSTs, then the median of 200 sequential warm
     `GET <domain>/1` on the first and on the last domain, with only those 2 loaded.
- **Heavy rounds** (`--heavy-rounds`, default 1): a fresh bare process that also loads every
  domain (one `GET <prefix>` each, timed as a whole), then measures warm latency on the first
  and last domain again, with all domains loaded; for eager, the runtime OpenAPI generation.
- **CPU time** (`time.process_time()` at ready: every thread of the process, interpreter
  start included) is reported next to the wall times because the machine is shared: other
  work stretches wall time several-fold but CPU time only a little.
- The children run without the machine's `SSL_CERT_FILE`/`SSL_CERT_DIR` (set machine-wide
  here): with them, the outbound client loads that bundle at startup, which an image does
  not (about 16 ms).
- **Peak RSS** is `VmHWM` from `/proc/<pid>/status`, not `ru_maxrss`: Linux carries the
  parent's RSS at fork into the child's `ru_maxrss` across `exec`, so every child would
  report at least the harness's own size.
- **Ratios**: for each round, configuration / its floor measured in that round (the
  database floor for the database variant, the empty floor for every other); the table
  shows the median of those per-round ratios next to the median absolute value. "lazy /
  service at D=0" is the same against `service, lazy + build, D=0`; in the database
  headline, "/ sqlite service D=0" is against the database variant at D=0 and
  "/ database=none, same D" against `service, lazy + build` at the same D.

### Reading the numbers

- The machine has 2 cores shared with other work; the load average at start and end is
  printed above. Interleaving and ratios are the defence against drift; absolute times
  from different runs are not comparable.
- `import fastapi` dominates an empty app's start; the service's own fixed cost (its D=0
  ratio) comes mostly from the outbound HTTP client (importing `httpx2`, and `httpcore2`
  when the lifespan creates it) and from its own modules ("Where the fixed cost goes").
- The database variant imports none of its domains' modules at startup, models included:
  its modules at ready are the same at every D (the synthetic domains have no models
  module, and the lazy service imports a domain's package only on its first request).
  What it adds to the `database=none` service is SQLAlchemy and aiosqlite at import, the
  engine's first connection in the lifespan, and Alembic's import on the first readiness
  probe (the uvicorn measurement only: the bare process never probes).
- The eager service at D=1000 fails the Lambda measurement (its handler runs the lifespan
  with the runtime's own recursion limit); the failed environment is killed at once, as
  Lambda would, so that it spends no CPU while the next configuration is timed.
- fastapi-lazyrouter defers building routes but not importing the domains: every router
  module (and its models) is imported at startup, which is why it grows with D; its
  `/openapi.json` lists only the domains mounted so far (2 after the first requests).
- Eager warm latency grows with D because the app's routes are scanned linearly; lazy
  dispatch finds the domain by a segment-trie lookup.
- FastAPI 0.165 builds an included router's effective routes on the first request that
  scans them: an eager app's first request to its *last* domain builds every domain's
  routes on the way (the eager "second cold domain" column), not only its own.
- Eager FastAPI merges the app's lifespan with each included router's, one nesting level per
  `include_router` (FastAPI PR #15424, "Discard default lifespans before merging", was closed
  unmerged). Past about 490 included routers (493 measured with FastAPI 0.165 and 0.119.1,
  calling the bare lifespan context; a server's call stack leaves a little less room), the
  lifespan startup raises `RecursionError` with Python's default recursion limit: the eager service and
  fastapi-lazyrouter (which includes every router at startup too) cannot start at D=1000.
  The warm-up start of every configuration runs with the default limit and lists these
  under "Checks"; `--recursion-limit N` raises the limit in the measured children (all
  configurations alike; it costs nothing when unused) so that they can be timed anyway.
  The lazy service never includes a domain into the app's router and is not affected.

### Plugging in a measurement

`harness.PLUGINS` names optional modules of this directory (`lambda_cold_start`). If the
file exists, `run.py` imports it and calls its `register(registry)`, which can add render
answers (`registry.answers`), measurements (`registry.add_measurement(m)`: an object with
`name`, `heavy`, `applies_to(config)` and `measure(config, context) -> dict`), metric
descriptions for the report (`registry.add_metric(Metric(key, label, unit, ratio, section))`,
one table per new section) and extra configurations (`registry.add_configurations(hook)`).
A measurement's numbers are interleaved, aggregated and reported like the built-in ones.
"""


def _order(results: Results, config_id: str) -> tuple[int, int, str]:
    config = results.configs[config_id]
    kinds = ALL_KINDS
    return (config.domains, kinds.index(config.kind) if config.kind in kinds else len(kinds), config.kind)


def checks(results: Results) -> list[str]:
    """What the smoke test asserts, in words: every request answered as expected."""
    lines = []
    if results.default_start_failures:
        lines.append("Configurations that do not start with Python's default recursion limit (warm-up start):")
        lines.append("")
        for config_id, message in sorted(results.default_start_failures.items()):
            label = results.configs[config_id].label if config_id in results.configs else config_id
            lines.append(f"- {label}: {message}")
        lines.append("")
        lines.append("Every configuration, in the measured rounds:")
        lines.append("")
    for config_id, config in sorted(results.configs.items(), key=lambda item: _order(results, item[0])):
        oks = {key: results.values(config_id, key) for key in results.samples.get(config_id, {}) if key.endswith("_ok")}
        failed = sorted(key for key, values in oks.items() if not all(values))
        errors = results.errors.get(config_id, [])
        status = "ok" if not failed and not errors else "PROBLEMS"
        detail = []
        if failed:
            detail.append("not ok: " + ", ".join(failed))
        if errors:
            detail.append(f"{len(errors)} failed measurement(s), first: " + errors[0][:300])
        lines.append(f"- {config.label}: {status}" + (f" ({'; '.join(detail)})" if detail else ""))
    return lines
