"""Two builds of the service side by side against one floor, in the same interleaved rounds.

    python benchmarks/compare_renders.py BEFORE AFTER [--floor FLOOR_DIR] [--rounds 9]

``BEFORE`` and ``AFTER`` are rendered, built services as ``run.py --keep`` leaves them
(``<workdir>/service-<database>-d<D>``), typically from two commits of the template: keep
one workdir per commit, then compare the same variant and D. The floor is the one in
``AFTER``'s workdir (``<workdir>/floor``) unless ``--floor`` names another, and it runs in
``AFTER``'s venv. Each round measures the floor, then ``BEFORE``, then ``AFTER`` with the
harness's own sessions: under uvicorn (the service by its ``serve`` command) to the first
200 from ``/health/ready``, and as a bare process to lifespan complete (each session then
makes its usual requests to the generated domains, which this script does not report).
Prints the medians and the medians of the per-round ratios to the floor.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import types
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script: make ``benchmarks`` importable as a package (from the repository root).
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "benchmarks"

from . import floors, harness
from .workspace import ENV_PREFIX, FLOOR_PACKAGE, PACKAGE, bench_environment

METRICS = {
    "uvicorn_ready_ms": "uvicorn, process start to first 200 from /health/ready",
    "process_cpu_ms": "bare process, CPU time to lifespan complete",
    "import_ms": "import of the app module",
    "create_ms": "create_app()",
    "rss_ready_mib": "RSS at ready (bare process)",
}


def _database(service: Path) -> str:
    """``sqlite`` if the render has migrations (run.py renders only sqlite and none)."""
    return "sqlite" if (service / "src" / PACKAGE / "migrations").is_dir() else "none"


def _domains(service: Path) -> int:
    stamp = service / ".bench-stamp.json"
    return int(json.loads(stamp.read_text())["domains"]) if stamp.is_file() else 0


def service_configuration(service: Path) -> harness.Configuration:
    env = {
        f"{ENV_PREFIX}ENVIRONMENT": "production",
        f"{ENV_PREFIX}ALLOWED_HOSTS": '["127.0.0.1"]',
        f"{ENV_PREFIX}LOG_LEVEL": "WARNING",
    }
    if _database(service) != "none":
        # The file run.py migrated; it stays at the head of that render's migrations.
        env[f"{ENV_PREFIX}DATABASE_URL"] = f"sqlite:///{service / f'{PACKAGE}.sqlite3'}"
    return harness.Configuration(
        kind=harness.DB_LAZY if _database(service) != "none" else harness.LAZY,
        domains=_domains(service),
        python=service / ".venv" / "bin" / "python",
        cwd=service,
        target=f"{PACKAGE}.app:create_app",
        env=bench_environment(env),
        project=service,
        floor="floor",
        serve_command=(PACKAGE, "serve", "--host", "127.0.0.1", "--port"),
    )


def floor_configuration(root: Path, database: str, python: Path) -> harness.Configuration:
    package = FLOOR_PACKAGE if database == "none" else f"{FLOOR_PACKAGE}_{database}"
    env = {} if database == "none" else {floors.DATABASE_URL_ENV: f"sqlite+aiosqlite:///{root / f'{package}.sqlite3'}"}
    return harness.Configuration(
        kind="floor",
        domains=0,
        python=python,
        cwd=root,
        target=f"{package}.app:create_app",
        env=bench_environment(env),
        sys_path=(str(root),),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--floor", type=Path, help="the floor's directory (default: AFTER's workdir/floor)")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--recursion-limit", type=int, default=10000)
    args = parser.parse_args(argv)
    before, after = args.before.resolve(), args.after.resolve()
    if _database(before) != _database(after):
        parser.error("BEFORE and AFTER are different database variants")
    database = _database(after)
    floor_root = (args.floor or after.parent / "floor").resolve()
    configurations = {
        "floor": floor_configuration(floor_root, database, after / ".venv" / "bin" / "python"),
        "before": service_configuration(before),
        "after": service_configuration(after),
    }
    logs = after.parent / "logs"
    options = types.SimpleNamespace(start_timeout=600, recursion_limit=args.recursion_limit, logs=logs, warm_requests=1)
    context = types.SimpleNamespace(options=options, workspace=types.SimpleNamespace(root=after.parent))
    sessions = (harness.UvicornSession(), harness.BareProcessStartup())
    samples: dict[str, dict[str, list[float]]] = {name: {} for name in configurations}
    for number in range(1, args.rounds + 1):
        print(f"round {number}/{args.rounds}", file=sys.stderr)
        for name, configuration in configurations.items():
            for session in sessions:
                for key, value in session.measure(configuration, context).items():
                    if key in METRICS and isinstance(value, (int, float)):
                        samples[name].setdefault(key, []).append(float(value))
    print(f"database={database}, D={configurations['after'].domains}, {args.rounds} rounds\n")
    print("| figure | floor | before | after | before / floor | after / floor |\n|---|---|---|---|---|---|")
    for key, label in METRICS.items():
        floor = samples["floor"][key]
        cells = [f"{statistics.median(samples[name][key]):.1f}" for name in configurations]
        ratios = [
            f"{statistics.median(value / base for base, value in zip(floor, samples[name][key], strict=True)):.2f}x"
            for name in ("before", "after")
        ]
        print(f"| {label} | {' | '.join(cells)} | {' | '.join(ratios)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
