"""CPU time of each step of a cold start, floor against service, in a benchmark workspace.

    python benchmarks/startup_steps.py WORKDIR [--domains 0,1000] [--runs 7]

WORKDIR is a ``run.py --workdir`` kept from a run (``--keep``): its ``floor`` package and its
``service-none-d<D>`` services. Each run starts one fresh process per configuration
(interleaved), which imports, creates the app and runs the lifespan startup step by step,
reading ``time.process_time()`` around each step: CPU time, which the load of a shared
machine disturbs far less than wall time. Prints the median of each step, and of the
resident memory at ready (``VmRSS`` once the lifespan startup is complete) and at the end
(``VmHWM``, the peak, once the work started after ready, the warm-up, is done too).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Steps = list[tuple[str, float]]


def _memory_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(field)


def _import(name: str) -> Any:
    """``import name``, each parent package first, through the import statement's machinery:
    ``-X importtime`` reports only what goes that way (not ``importlib.import_module``'s
    own module), and ``import_breakdown.py`` reads it from these same steps."""
    parts = name.split(".")
    for end in range(1, len(parts) + 1):
        __import__(".".join(parts[:end]))
    return sys.modules[name]


def _child(kind: str, on_ready: Callable[[], None] | None = None) -> tuple[Steps, dict[str, int]]:
    """One cold start step by step; ``on_ready`` is called once the lifespan startup is
    complete, before the shutdown (``import_breakdown.py`` marks the boundary there)."""
    marks: Steps = [("interpreter start", time.process_time())]

    def step(name: str, function: Any) -> Any:
        start = time.process_time()
        result = function()
        marks.append((name, time.process_time() - start))
        return result

    step("import fastapi", lambda: _import("fastapi"))
    step("import uvicorn", lambda: _import("uvicorn"))
    step("import pydantic_settings", lambda: _import("pydantic_settings"))
    memory: dict[str, int] = {}
    if kind == "service":
        step("import bench_service.settings", lambda: _import("bench_service.settings"))
        step("import bench_service.telemetry", lambda: _import("bench_service.telemetry"))
        module = step("import the rest of bench_service.app", lambda: _import("bench_service.app"))
        settings = step("load_settings()", _import("bench_service.settings").load_settings)
        app = step("create_app(settings)", lambda: module.create_app(settings))
    else:
        module = step("import bench_floor.app", lambda: _import("bench_floor.app"))
        app = step("create_app()", module.create_app)

    async def lifespan() -> None:
        to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        task = asyncio.ensure_future(app(scope, to_app.get, from_app.put))
        start = time.process_time()
        await to_app.put({"type": "lifespan.startup"})
        await from_app.get()
        marks.append(("lifespan startup", time.process_time() - start))
        memory["rss at ready"] = _memory_kib("VmRSS")
        if on_ready is not None:
            on_ready()
        await to_app.put({"type": "lifespan.shutdown"})
        await from_app.get()
        await task

    asyncio.run(lifespan())
    memory["peak rss at the end"] = _memory_kib("VmHWM")
    return marks, memory


def child_environment(workdir: Path) -> dict[str, str]:
    """As the harness runs its children: production, and no machine-wide CA override."""
    env = {key: value for key, value in os.environ.items() if key not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    env.update(
        BENCH_SERVICE_ENVIRONMENT="production",
        BENCH_SERVICE_ALLOWED_HOSTS='["127.0.0.1"]',  # production refuses to start without it
        BENCH_SERVICE_ROUTING="lazy",
        PYTHONPATH=str(workdir / "floor"),
    )
    return env


def _run(workdir: Path, kind: str, domains: int) -> tuple[Steps, dict[str, int]]:
    service = workdir / f"service-none-d{domains}"
    completed = subprocess.run(
        [str(service / ".venv" / "bin" / "python"), __file__, "--child", kind],
        cwd=service,
        env=child_environment(workdir),
        capture_output=True,
        text=True,
        check=True,
    )
    marks, memory = json.loads(completed.stdout.splitlines()[-1])
    return [(name, value) for name, value in marks], memory


MEMORY = ("rss at ready", "peak rss at the end")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("workdir", type=Path, nargs="?")
    parser.add_argument("--domains", default="0,1000", help="services to compare with the floor (default 0,1000)")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child)))
        return 0
    if args.workdir is None:
        parser.error("WORKDIR is required")
    configurations = [("floor", 0)] + [("service", int(count)) for count in args.domains.split(",")]
    samples: dict[tuple[str, int], list[tuple[Steps, dict[str, int]]]] = {
        configuration: [] for configuration in configurations
    }
    for _ in range(args.runs):
        for kind, domains in configurations:
            samples[(kind, domains)].append(_run(args.workdir.resolve(), kind, domains))
    floor_total = statistics.median(sum(value for _, value in run) for run, _ in samples[("floor", 0)])
    floor_memory = {key: statistics.median(memory[key] for _, memory in samples[("floor", 0)]) for key in MEMORY}
    for (kind, domains), runs in samples.items():
        print(f"\n{kind}" + (f", D={domains}" if kind == "service" else "") + ": CPU ms, median of each step")
        for index, (name, _) in enumerate(runs[0][0]):
            print(f"  {statistics.median(run[index][1] for run, _ in runs) * 1000:7.1f}  {name}")
        total = statistics.median(sum(value for _, value in run) for run, _ in runs)
        print(f"  {total * 1000:7.1f}  total ({total / floor_total:.2f}x the floor)")
        for key in MEMORY:
            kib = statistics.median(memory[key] for _, memory in runs)
            print(f"  {kib / 1024:7.1f}  MiB {key} ({kib / floor_memory[key]:.2f}x the floor)")
    print(f"\nload average at the end: {' / '.join(f'{value:.2f}' for value in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
